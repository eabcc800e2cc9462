package main_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/careindex/careindex/loader/sqlitestore"
)

// demo runs the README's first command: the demo region into the default
// embedded store, in a fresh working directory.
func demo(t *testing.T) (dir, cfg string, run func(args ...string) (string, string, int)) {
	t.Helper()
	dir = t.TempDir()
	fixtures := filepath.Join(dir, "fixtures")
	copyTree(t, filepath.Join(repoRoot(t), "fixtures"), fixtures)
	cfg = filepath.Join(fixtures, "demo.yaml")
	run = func(args ...string) (string, string, int) {
		cmd := exec.Command(binary, append(args, "--config", cfg)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	return dir, cfg, run
}

// sqliteDump renders the published contract of a SQLite store, opened the
// way a viewer opens it: read-only.
func sqliteDump(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", sqlitestore.ViewerDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []struct{ title, q string }{
		{"patient", `SELECT patient_id, COALESCE(nhs_number,'-'), COALESCE(family_name,'-'), COALESCE(given_name,'-'),
			COALESCE(date_of_birth,'-'), COALESCE(sex,'-'), COALESCE(postcode,'-'), COALESCE(gp_practice,'-'), status
			FROM patient ORDER BY patient_id`},
		{"record_location", `SELECT patient_id, org_code, local_id FROM record_location ORDER BY patient_id, org_code, local_id`},
		{"care_item", `SELECT patient_id, org_code, kind, code_system, code, display, COALESCE(start_date,'-'),
			COALESCE(end_date,'-'), status FROM care_item ORDER BY patient_id, org_code, kind, code, start_date`},
		{"organisation", `SELECT org_code, name, org_type, CASE WHEN last_delivery_at IS NOT NULL THEN 'true' ELSE 'false' END,
			CASE WHEN stale THEN 'true' ELSE 'false' END FROM organisation ORDER BY org_code`},
	} {
		b.WriteString("# " + q.title + "\n")
		b.WriteString(queryLines(t, db, q.q))
	}
	return b.String()
}

func TestDemoOnEmbeddedStore(t *testing.T) {
	t.Parallel()
	dir, _, run := demo(t)
	out, errOut, code := run("run")
	if code != 0 {
		t.Fatalf("demo run: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"d81001-patients", "rows in", "quarantined", "withheld", "Published version 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the run summary lacks %q:\n%s", want, out)
		}
	}
	db := filepath.Join(dir, "careindex.db")
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("the default store is not at ./careindex.db: %v", err)
	}
	status, _, code := run("status")
	if code != 0 || !strings.Contains(status, "Live version 1") || !strings.Contains(status, "rgt-patients") {
		t.Errorf("status does not read the same store:\n%s", status)
	}
	// A second run changes nothing.
	before := sqliteDump(t, db)
	out, _, code = run("run")
	if code != 0 || !strings.Contains(out, "unchanged") || sqliteDump(t, db) != before {
		t.Errorf("a repeated run changed something:\n%s", out)
	}
	// A viewer opens the published file read-only and sees no ops data.
	v, err := sql.Open("sqlite", sqlitestore.ViewerDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Exec(`DELETE FROM data_patient`); err == nil {
		t.Error("a viewer could write to the published file")
	}
	var n int
	if err := v.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('run', 'run_source', 'quarantine', 'staged_person')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the published file holds ops tables (%d, %v)", n, err)
	}
	// Rollback and audit work on the embedded store too.
	if _, errOut, code := run("audit"); code != 0 {
		t.Errorf("audit: exit %d\n%s", code, errOut)
	}
	if _, _, code := run("rollback"); code == 0 {
		t.Error("rollback with a single version succeeded")
	}
}

func TestBackendsPublishTheSame(t *testing.T) {
	t.Parallel()
	dir, cfg, run := demo(t)
	if out, errOut, code := run("run"); code != 0 {
		t.Fatalf("sqlite run: exit %d\n%s\n%s", code, out, errOut)
	}
	lite := sqliteDump(t, filepath.Join(dir, "careindex.db"))

	r := newRegion(t)
	r.config = cfg
	r.mustRun(t, "run")
	pg := r.dump(t)
	if lite != pg {
		t.Errorf("SQLite and PostgreSQL published different contents\n--- sqlite\n%s\n--- postgres\n%s", lite, pg)
	}
	for _, q := range []string{
		`SELECT source_id, rows_in, loaded, quarantined, withheld, merged FROM run_source ORDER BY source_id`,
	} {
		liteDB, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "careindex.db-ops")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		a := queryLines(t, liteDB, q)
		liteDB.Close()
		b := queryLines(t, r.db, strings.Replace(q, "FROM run_source", "FROM careindex_ops.run_source", 1))
		if a != b {
			t.Errorf("ledgers differ\n--- sqlite\n%s\n--- postgres\n%s", a, b)
		}
	}
}

func TestEmbeddedStoreKilledRun(t *testing.T) {
	t.Parallel()
	dir, cfg, run := demo(t)
	if _, errOut, code := run("run"); code != 0 {
		t.Fatalf("first run: %s", errOut)
	}
	db := filepath.Join(dir, "careindex.db")
	before := sqliteDump(t, db)
	var b strings.Builder
	b.WriteString("PatientID,NHSNo,Surname,Forename,DOB,Gender,Postcode,SFlag\r\n")
	for i := 0; i < 200000; i++ {
		b.WriteString("G" + validNHS(i)[:7] + "," + validNHS(i) + ",SURNAME,GIVEN,01/02/1970,F,CB1 1AA,N\r\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "fixtures", "drops", "d81001", "patients_20261125.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", "--config", cfg, "--log-format", "json")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the process as soon as it starts building the new version.
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "delivery staged") {
		n, err := stderr.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("the run ended before staging: %v\n%s", err, seen.String())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := sqliteDump(t, db); got != before {
		t.Fatal("the killed run changed the published store")
	}
	if out, errOut, code := run("run"); code != 0 {
		t.Fatalf("the next run: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := sqliteDump(t, db); got == before || !strings.Contains(got, "G") {
		t.Error("the next run did not complete the work")
	}
}
