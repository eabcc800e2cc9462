package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/careindex/careindex/loader/pgstore/pgtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// binary is the careindex command built once for these tests.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "careindex-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "careindex")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building careindex:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// region is a private copy of the fixture region with its own store and
// export database.
type region struct {
	dir       string // copy of fixtures/
	config    string
	storeDSN  string
	exportDSN string
	db        *sql.DB
}

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// copyTree copies src to dst; the copies get fresh modification times.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying fixtures: %v", err)
	}
}

func newRegion(t *testing.T) *region {
	t.Helper()
	r := &region{dir: t.TempDir()}
	copyTree(t, filepath.Join(repoRoot(t), "fixtures"), r.dir)
	r.config = filepath.Join(r.dir, "region.yaml")
	r.storeDSN = pgtest.NewDatabase(t, "careindex_e2e")
	r.exportDSN = pgtest.NewDatabase(t, "careindex_export")
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatalf("psql is not installed: the fixture export database is loaded with psql -f (apt-get install postgresql-client)")
	}
	out, err := exec.Command("psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", filepath.Join(r.dir, "exports", "community.sql"), r.exportDSN).CombinedOutput()
	if err != nil {
		t.Fatalf("loading community.sql: %v\n%s", err, out)
	}
	db, err := sql.Open("postgres", r.storeDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
	return r
}

type result struct {
	code           int
	stdout, stderr string
}

func (r *region) careindex(t *testing.T, args ...string) result {
	t.Helper()
	cmd := r.command(context.Background(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running careindex: %v", err)
	}
	return res
}

func (r *region) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{}, args...)
	if len(args) > 0 && args[0] != "validate" {
		full = append(full, "--config", r.config, "--store", r.storeDSN)
	}
	cmd := exec.CommandContext(ctx, binary, full...)
	cmd.Env = append(os.Environ(), "CAREINDEX_FIXTURE_EXPORT_DSN="+r.exportDSN, "CAREINDEX_STORE=")
	return cmd
}

func (r *region) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	res := r.careindex(t, args...)
	if res.code != 0 {
		t.Fatalf("careindex %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res
}

// dump renders the published store as sorted text lines.
func (r *region) dump(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	queries := []struct{ title, q string }{
		{"patient", `SELECT patient_id, COALESCE(nhs_number,'-'), COALESCE(family_name,'-'), COALESCE(given_name,'-'),
			COALESCE(to_char(date_of_birth,'YYYY-MM-DD'),'-'), COALESCE(sex,'-'), COALESCE(postcode,'-'), COALESCE(gp_practice,'-'), status
			FROM careindex.patient ORDER BY patient_id`},
		{"record_location", `SELECT patient_id, org_code, local_id FROM careindex.record_location ORDER BY patient_id, org_code, local_id`},
		{"care_item", `SELECT patient_id, org_code, kind, code_system, code, display, COALESCE(to_char(start_date,'YYYY-MM-DD'),'-'),
			COALESCE(to_char(end_date,'YYYY-MM-DD'),'-'), status FROM careindex.care_item ORDER BY patient_id, org_code, kind, code, start_date`},
		{"organisation", `SELECT org_code, name, org_type, last_delivery_at IS NOT NULL, stale FROM careindex.organisation ORDER BY org_code`},
	}
	for _, q := range queries {
		fmt.Fprintf(&b, "# %s\n", q.title)
		b.WriteString(queryLines(t, r.db, q.q))
	}
	return b.String()
}

// ledger renders the newest run's per-source counts and quarantine.
func (r *region) ledger(t *testing.T, runID int64) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# run_source: source status rows_in loaded quarantined withheld merged stale\n")
	b.WriteString(queryLines(t, r.db, fmt.Sprintf(`SELECT source_id, status, rows_in, loaded, quarantined, withheld, merged, stale
		FROM careindex_ops.run_source WHERE run_id = %d ORDER BY source_id`, runID)))
	b.WriteString("# quarantine: source file line reason\n")
	b.WriteString(queryLines(t, r.db, `SELECT source_id, file, line, reason FROM careindex_ops.quarantine ORDER BY source_id, file, line`))
	b.WriteString("# review: source local_id reason\n")
	b.WriteString(queryLines(t, r.db, `SELECT source_id, local_id, reason FROM careindex_ops.review ORDER BY source_id, local_id`))
	return b.String()
}

func queryLines(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer rows.Close()
	return rowsText(t, rows)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test ./cmd/careindex -run %s -update rewrites it after review)\n--- want\n%s\n--- got\n%s",
			name, t.Name(), want, got)
	}
}

func (r *region) scalar(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := r.db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (r *region) liveVersion(t *testing.T) int64 {
	return r.scalar(t, `SELECT COALESCE((SELECT version FROM careindex_data.live), 0)`)
}

func (r *region) lastRun(t *testing.T) int64 {
	return r.scalar(t, `SELECT max(run_id) FROM careindex_ops.run`)
}

func TestFixtureRegion(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	first := r.mustRun(t, "run")
	if !strings.Contains(first.stdout, "Published version") {
		t.Errorf("run printed no summary:\n%s", first.stdout)
	}
	golden(t, "region.golden", r.dump(t))
	golden(t, "region-ledger.golden", r.ledger(t, r.lastRun(t)))

	// Every source balances, every run.
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE rows_in <> loaded + quarantined + withheld + merged`); n != 0 {
		t.Errorf("%d run_source rows do not balance", n)
	}
	// No withheld patient carries anything but the marker.
	if n := r.scalar(t, `SELECT count(*) FROM careindex.patient p WHERE status = 'withheld' AND (family_name IS NOT NULL
		OR date_of_birth IS NOT NULL OR EXISTS (SELECT 1 FROM careindex.record_location l WHERE l.patient_id = p.patient_id)
		OR EXISTS (SELECT 1 FROM careindex.care_item i WHERE i.patient_id = p.patient_id))`); n != 0 {
		t.Errorf("%d withheld patients carry data", n)
	}

	t.Run("second run changes nothing", func(t *testing.T) {
		before, version := r.dump(t), r.liveVersion(t)
		res := r.mustRun(t, "run")
		if !strings.Contains(res.stdout, "unchanged") {
			t.Errorf("second run was not reported unchanged:\n%s", res.stdout)
		}
		if got := r.liveVersion(t); got != version {
			t.Errorf("live version moved from %d to %d", version, got)
		}
		if after := r.dump(t); after != before {
			t.Errorf("published contents changed on a repeated run")
		}
	})

	t.Run("status", func(t *testing.T) {
		res := r.mustRun(t, "status", "--json")
		var st struct {
			Live *struct {
				Version int64 `json:"Version"`
			} `json:"live"`
			Runs []struct {
				Status  string `json:"status"`
				Sources []struct {
					SourceID string `json:"SourceID"`
				} `json:"sources"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, res.stdout)
		}
		if st.Live == nil || st.Live.Version != r.liveVersion(t) {
			t.Errorf("status --json live version wrong: %s", res.stdout)
		}
		if len(st.Runs) < 2 || st.Runs[0].Status != "unchanged" || st.Runs[1].Status != "succeeded" || len(st.Runs[1].Sources) != 8 {
			t.Errorf("status --json runs wrong: %s", res.stdout)
		}
		text := r.mustRun(t, "status")
		for _, want := range []string{"Live version", "d81001-patients", "Recent runs"} {
			if !strings.Contains(text.stdout, want) {
				t.Errorf("status output lacks %q:\n%s", want, text.stdout)
			}
		}
	})
}

func TestReaderRole(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	ctx := context.Background()
	conn, err := r.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET ROLE careindex_reader`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `RESET ROLE`)
	var n int
	for _, table := range []string{"patient", "record_location", "care_item", "organisation", "publication"} {
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM careindex.`+table).Scan(&n); err != nil {
			t.Errorf("reader cannot read careindex.%s: %v", table, err)
		}
	}
	denied := []string{
		`INSERT INTO careindex.patient (patient_id, status) VALUES (1, 'shared')`,
		`UPDATE careindex.patient SET family_name = 'X'`,
		`DELETE FROM careindex.care_item`,
		`SELECT count(*) FROM careindex_ops.run`,
		`SELECT count(*) FROM careindex_ops.quarantine`,
		`SELECT count(*) FROM careindex_ops.staged_person`,
		`SELECT count(*) FROM careindex_data.patient`,
		`UPDATE careindex_data.live SET version = 1`,
		`CREATE TABLE careindex.x (i int)`,
		`CREATE TABLE public.x (i int)`,
	}
	for _, q := range denied {
		if _, err := conn.ExecContext(ctx, q); err == nil {
			t.Errorf("reader was allowed: %s", q)
		} else if !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: want permission denied, got %v", q, err)
		}
	}
}

func TestRegisterMissingPublishesNothing(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	if err := os.RemoveAll(filepath.Join(r.dir, "drops", "objections")); err != nil {
		t.Fatal(err)
	}
	res := r.careindex(t, "run")
	if res.code != 3 {
		t.Fatalf("exit %d, want 3 (blocked)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "objection register missing") {
		t.Errorf("the error does not say why:\n%s", res.stderr)
	}
	if v := r.liveVersion(t); v != 0 {
		t.Errorf("version %d was published without a register", v)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run WHERE status = 'blocked'`); n != 1 {
		t.Errorf("the blocked run is not in the ledger")
	}
}

func TestRegisterStaleKeepsLiveVersion(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	before, version := r.dump(t), r.liveVersion(t)
	// A new GP delivery arrives, but the register is two days old.
	old := time.Now().Add(-48 * time.Hour)
	matches, _ := filepath.Glob(filepath.Join(r.dir, "drops", "objections", "*.csv"))
	for _, m := range matches {
		if err := os.Chtimes(m, old, old); err != nil {
			t.Fatal(err)
		}
	}
	res := r.careindex(t, "run")
	if res.code != 3 || !strings.Contains(res.stderr, "objection register stale") {
		t.Fatalf("exit %d, want 3 with a stale register message\n%s", res.code, res.stderr)
	}
	if r.liveVersion(t) != version || r.dump(t) != before {
		t.Errorf("the live version changed although the register is stale")
	}
}

func TestFailedSourceStaysStale(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	locations := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'RGT'`)
	if locations == 0 {
		t.Fatal("fixture publishes no RGT records")
	}
	// The hospital's next workbook is corrupt.
	if err := os.WriteFile(filepath.Join(r.dir, "drops", "rgt", "hospital_20261125.xlsx"), []byte("not a workbook"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := r.careindex(t, "run")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1 (a source failed)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'RGT'`); got != locations {
		t.Errorf("RGT has %d record locations after its failed delivery, want the last good %d", got, locations)
	}
	if stale := r.scalar(t, `SELECT count(*) FROM careindex.organisation WHERE org_code = 'RGT' AND stale`); stale != 1 {
		t.Errorf("RGT is not flagged stale")
	}
	if stale := r.scalar(t, `SELECT count(*) FROM careindex.organisation WHERE org_code <> 'RGT' AND stale`); stale != 0 {
		t.Errorf("%d other organisations are flagged stale", stale)
	}
}

func TestRollback(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	first, firstVersion := r.dump(t), r.liveVersion(t)
	// The GP sends a new delivery without its second patient.
	src := filepath.Join(r.dir, "drops", "d81001", "patients_20261124.csv")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimRight(string(b), "\r\n"), "\n")
	if err := os.WriteFile(filepath.Join(r.dir, "drops", "d81001", "patients_20261125.csv"), []byte(strings.Join(append(lines[:2:2], lines[3:]...), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mustRun(t, "run", "--source", "d81001-patients")
	if r.liveVersion(t) == firstVersion || r.dump(t) == first {
		t.Fatal("the new delivery was not published")
	}
	secondVersion := r.liveVersion(t)
	res := r.mustRun(t, "rollback")
	if !strings.Contains(res.stdout, "rolled back") {
		t.Errorf("rollback output: %s", res.stdout)
	}
	// The rollback republishes version 1's deliveries as a new version.
	if v := r.liveVersion(t); v == firstVersion || v == secondVersion || r.dump(t) != first {
		t.Errorf("rollback did not restore the contents of version %d (live is %d)", firstVersion, v)
	}
	// Nothing further back was kept.
	if res := r.careindex(t, "rollback"); res.code == 0 {
		t.Errorf("a second rollback succeeded with nothing to roll back to")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	ok := exec.Command(binary, "validate", "--config", filepath.Join(root, "fixtures", "region.yaml"))
	if out, err := ok.CombinedOutput(); err != nil {
		t.Fatalf("fixture region invalid: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`store: mysql://nope
objections: {register: {path: x}}
sources:
  - id: Bad_ID
    org: "!!"
    kind: people
    from: {folder: {path: x, pattern: "*.csv"}}
  - id: ok-source
    org: D81001
    kind: care_items
    from: {sql: {query: "select 1"}}
    schedule: "every night"
`), 0o644)
	cmd := exec.Command(binary, "validate", "--config", bad)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("invalid config: err %v, want exit 2\n%s", err, out)
	}
	for _, want := range []string{"store:", `"Bad_ID"`, "org:", "kind:", "from.sql.dsn", "schedule:", "columns.local_id", "item_kind"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	// run refuses it the same way.
	run := exec.Command(binary, "run", "--config", bad)
	if err := run.Run(); !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("run accepted an invalid config: %v", err)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"validate", "--help"}, {"status", "--help"}, {"rollback", "--help"}} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Errorf("careindex %v: %v", args, err)
		}
		if !strings.Contains(string(out), "Usage") {
			t.Errorf("careindex %v printed no usage:\n%s", args, out)
		}
	}
	if err := exec.Command(binary, "frobnicate").Run(); err == nil {
		t.Errorf("an unknown command exited 0")
	}
}

// validNHS returns the i-th valid NHS number of a synthetic range.
func validNHS(i int) string {
	for base := 400000000 + i*11; ; base++ {
		d := fmt.Sprintf("%09d", base)
		sum := 0
		for k := 0; k < 9; k++ {
			sum += int(d[k]-'0') * (10 - k)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check == 10 {
			continue
		}
		return d + fmt.Sprint(check)
	}
}

func TestKilledRunLeavesLiveVersion(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	before, version := r.dump(t), r.liveVersion(t)

	// A large GP delivery, so that the run is still building its version
	// when it is killed.
	const n = 200000
	var b strings.Builder
	b.WriteString("PatientID,NHSNo,Surname,Forename,DOB,Gender,Postcode,SFlag\r\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "G%07d,%s,SURNAME%d,GIVEN,%02d/%02d/19%02d,F,CB1 1AA,N\r\n", i, validNHS(i), i%997, 1+i%28, 1+i%12, 30+i%60)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "drops", "d81001", "patients_20261125.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := r.command(ctx, "run")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	for !killed {
		select {
		case err := <-done:
			t.Fatalf("the run finished (%v) before it reached the publish stage; make the delivery larger\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if r.scalar(t, `SELECT count(*) FROM careindex_data.version WHERE state = 'building'`) > 0 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	<-done
	if got := r.liveVersion(t); got != version {
		t.Fatalf("live version moved from %d to %d after the killed run", version, got)
	}
	if r.dump(t) != before {
		t.Fatal("the published contents changed after the killed run")
	}

	// The next run completes the work and records the killed one.
	r.mustRun(t, "run")
	if got := r.liveVersion(t); got == version {
		t.Fatal("the next run did not publish")
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'D81001' AND local_id LIKE 'G%'`); got != n {
		t.Errorf("%d of the %d new GP records published", got, n)
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex_ops.run WHERE status = 'abandoned'`); got != 1 {
		t.Errorf("%d abandoned runs in the ledger, want 1", got)
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex_data.version WHERE state = 'building'`); got != 0 {
		t.Errorf("%d half-built versions left", got)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE rows_in <> loaded + quarantined + withheld + merged`); n != 0 {
		t.Errorf("%d run_source rows do not balance", n)
	}
}

func TestLogsCarryNoPatientData(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	res := r.mustRun(t, "run", "--log-format", "json", "--log-level", "debug")
	// A second run with a failing source and a dry run log more paths.
	os.WriteFile(filepath.Join(r.dir, "drops", "rgt", "hospital_20261125.xlsx"), []byte("corrupt"), 0o644)
	second := r.careindex(t, "run", "--log-format", "json", "--log-level", "debug")
	dry := r.careindex(t, "run", "--dry-run", "--log-format", "json")
	logs := res.stderr + second.stderr + dry.stderr + res.stdout + second.stdout + dry.stdout
	if !strings.Contains(logs, `"run_id"`) {
		t.Fatalf("no structured logs captured:\n%s", logs)
	}

	// Every identifier and name that was staged or quarantined.
	var values []string
	rows, err := r.db.Query(`SELECT nhs_number, family_name, given_name FROM careindex_ops.staged_person
		UNION SELECT nhs_number, '', '' FROM careindex_ops.nhs_link`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, b, c string
		rows.Scan(&a, &b, &c)
		values = append(values, a, b, c)
	}
	rows.Close()
	raws, err := r.db.Query(`SELECT raw FROM careindex_ops.quarantine`)
	if err != nil {
		t.Fatal(err)
	}
	for raws.Next() {
		var raw string
		raws.Scan(&raw)
		for _, f := range strings.FieldsFunc(raw, func(c rune) bool { return c == ',' || c == '|' || c == '\t' }) {
			values = append(values, strings.Trim(f, `" `))
		}
	}
	raws.Close()
	lower := strings.ToLower(logs)
	checked := 0
	for _, v := range values {
		v = strings.ToLower(strings.TrimSpace(v))
		if len(v) < 4 || strings.ContainsAny(v, "/-") || v == "active" || v == "resolved" || v == "completed" {
			continue
		}
		checked++
		if strings.Contains(lower, v) {
			t.Errorf("a patient value (%q) appears in the logs", v)
		}
	}
	if checked < 30 {
		t.Fatalf("only %d values checked: the scan is not looking at the fixture data", checked)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	res := r.mustRun(t, "run", "--dry-run")
	if !strings.Contains(res.stdout, "Dry run") || !strings.Contains(res.stdout, "d81001-patients") {
		t.Errorf("dry run summary:\n%s", res.stdout)
	}
	// The store was never even migrated.
	if n := r.scalar(t, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'careindex%'`); n != 0 {
		t.Errorf("a dry run created %d careindex schemas", n)
	}
	// The dry run counts agree with a real run's extract-time counts.
	if !strings.Contains(res.stdout, "17") {
		t.Errorf("dry run did not count the GP's 17 rows:\n%s", res.stdout)
	}
}

func TestUnknownSourceIsUsageError(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	res := r.careindex(t, "run", "--source", "no-such-source")
	if res.code != 2 || !strings.Contains(res.stderr, "no-such-source") {
		t.Errorf("exit %d, want 2 naming the source:\n%s", res.code, res.stderr)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pa55"
	dir := t.TempDir()
	copyTree(t, filepath.Join(repoRoot(t), "fixtures"), dir)
	cfg := filepath.Join(dir, "region.yaml")
	for _, args := range [][]string{
		{"run", "--config", cfg, "--store", "postgres://careindex:" + secret + "@127.0.0.1:1/careindex?sslmode=disable&connect_timeout=2"},
		{"status", "--config", cfg, "--store", "postgres://careindex:" + secret + "@127.0.0.1:1/careindex?sslmode=disable&connect_timeout=2"},
		{"validate", "--config", cfg, "--store", "mysql://careindex:" + secret + "@127.0.0.1:1/careindex"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "EXPORT_PASSWORD="+secret)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("careindex %s succeeded against a closed port", args[0])
		}
		if strings.Contains(string(out), secret) {
			t.Errorf("careindex %s printed the password:\n%s", args[0], out)
		}
	}
}

func TestExtractOnlyThenPublish(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	res := r.mustRun(t, "run", "--extract-only")
	if r.liveVersion(t) != 0 {
		t.Fatal("an extract-only run published")
	}
	if !strings.Contains(res.stdout, "pending") {
		t.Errorf("extract-only summary shows no pending rows:\n%s", res.stdout)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE pending > 0`); n != 8 {
		t.Errorf("%d sources have pending rows, want 8", n)
	}
	r.mustRun(t, "publish")
	if r.liveVersion(t) == 0 {
		t.Fatal("publish did not publish the pending deliveries")
	}
	got := r.dump(t)
	want, err := os.ReadFile(filepath.Join("testdata", "region.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("extract then publish differs from a full run:\n%s", got)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE rows_in <> loaded + quarantined + withheld + merged + pending`); n != 0 {
		t.Errorf("%d ledger rows do not balance", n)
	}
	if res := r.mustRun(t, "publish"); !strings.Contains(res.stdout, "unchanged") {
		t.Errorf("a second publish with nothing new was not unchanged:\n%s", res.stdout)
	}
}

func TestComplianceReport(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	text := r.mustRun(t, "report", "compliance")
	// Run ids and times differ between runs; the golden file has them masked.
	mask := func(s string) string {
		lines := strings.Split(s, "\n")
		if strings.HasPrefix(lines[0], "Compliance report:") {
			lines[0] = "Compliance report: (run, version and time masked)"
		}
		return strings.Join(lines, "\n")
	}
	golden(t, "compliance.golden", mask(text.stdout))
	csvOut := r.mustRun(t, "report", "compliance", "--format", "csv")
	var csvMasked []string
	for i, line := range strings.Split(strings.TrimSpace(csvOut.stdout), "\n") {
		if i > 0 {
			_, rest, _ := strings.Cut(line, ",")
			_, rest, _ = strings.Cut(rest, ",")
			line = "RUN,VERSION," + rest
		}
		csvMasked = append(csvMasked, line)
	}
	golden(t, "compliance.csv.golden", strings.Join(csvMasked, "\n")+"\n")
	js := r.mustRun(t, "report", "compliance", "--format", "json")
	var rep struct {
		RunID     int64 `json:"run_id"`
		Overrides []struct {
			Reason       string `json:"reason"`
			AuthorisedBy string `json:"authorised_by"`
		} `json:"overrides"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &rep); err != nil {
		t.Fatalf("report json: %v\n%s", err, js.stdout)
	}
	if rep.RunID != r.lastRun(t) || len(rep.Overrides) != 1 || rep.Overrides[0].Reason != "safeguarding" {
		t.Errorf("json report: %+v", rep)
	}
	for _, out := range []string{text.stdout, csvOut.stdout, js.stdout} {
		if strings.Contains(out, "5002977278") || strings.Contains(strings.ToUpper(out), "PENNINGTON") {
			t.Errorf("the report carries patient identifiers:\n%s", out)
		}
	}
	if res := r.careindex(t, "report", "compliance", "--run", "999"); res.code == 0 {
		t.Errorf("a report on a run that published nothing succeeded")
	}
}

func TestAuditFindsLeaks(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	if res := r.careindex(t, "audit"); res.code != 0 {
		t.Fatalf("audit of a fresh publish: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// A new objection arrives (all sharing, for the shared patient
	// 6278534940) and a new sensitive code; nothing is republished yet.
	reg := filepath.Join(r.dir, "drops", "objections", "objections_20261125.csv")
	old, _ := os.ReadFile(filepath.Join(r.dir, "drops", "objections", "objections_20261124.csv"))
	os.WriteFile(reg, append(old, []byte("6278534940,all,2026-11-01,\n")...), 0o644)
	codes, _ := os.ReadFile(filepath.Join(r.dir, "sensitive_codes.csv"))
	os.WriteFile(filepath.Join(r.dir, "sensitive_codes.csv"), append(codes, []byte("35489007,mental_health_test\n")...), 0o644)

	res := r.careindex(t, "audit", "--json")
	if res.code != 5 {
		t.Fatalf("audit exit %d, want 5 (leaks)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var out struct {
		Leaks []struct {
			PatientID int64  `json:"patient_id"`
			What      string `json:"what"`
		} `json:"leaks"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, res.stdout)
	}
	pid := r.scalar(t, `SELECT patient_id FROM careindex.patient WHERE nhs_number = '6278534940'`)
	var objecting, sensitiveLeak bool
	for _, l := range out.Leaks {
		if l.PatientID == pid && strings.Contains(l.What, "objects to all sharing") {
			objecting = true
		}
		if strings.Contains(l.What, "mental_health_test") {
			sensitiveLeak = true
		}
	}
	if !objecting || !sensitiveLeak {
		t.Errorf("audit missed a leak: %+v", out.Leaks)
	}
	if strings.Contains(res.stdout+res.stderr, "6278534940") {
		t.Errorf("audit output carries an NHS number")
	}
	// The next run publishes under the new rules; the audit is clean again.
	r.mustRun(t, "run")
	if res := r.careindex(t, "audit"); res.code != 0 {
		t.Errorf("audit after republishing: exit %d\n%s", res.code, res.stdout)
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex.patient WHERE patient_id = $1 AND status = 'withheld'`, pid); got != 1 {
		t.Errorf("the new objection did not withhold the patient at the next publish")
	}
}

func TestRollbackAppliesCurrentRegister(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	pid := r.scalar(t, `SELECT patient_id FROM careindex.patient WHERE nhs_number = '6278534940'`)
	// Night 2: a new GP delivery and a new objection for a shared patient.
	src := filepath.Join(r.dir, "drops", "d81001", "patients_20261124.csv")
	b, _ := os.ReadFile(src)
	os.WriteFile(filepath.Join(r.dir, "drops", "d81001", "patients_20261125.csv"), b[:len(b)-2], 0o644)
	old, _ := os.ReadFile(filepath.Join(r.dir, "drops", "objections", "objections_20261124.csv"))
	os.WriteFile(filepath.Join(r.dir, "drops", "objections", "objections_20261125.csv"), append(old, []byte("6278534940,all,2026-11-01,\n")...), 0o644)
	r.mustRun(t, "run")
	if got := r.scalar(t, `SELECT count(*) FROM careindex.patient WHERE patient_id = $1 AND status = 'withheld'`, pid); got != 1 {
		t.Fatal("the objection was not applied")
	}
	// Rolling back to night 1's deliveries must not re-expose the patient.
	r.mustRun(t, "rollback")
	if got := r.scalar(t, `SELECT count(*) FROM careindex.patient WHERE patient_id = $1 AND status = 'withheld'`, pid); got != 1 {
		t.Error("rollback re-exposed a patient who objected after the previous version was published")
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE patient_id = $1`, pid); got != 0 {
		t.Error("rollback published record locations of an objecting patient")
	}
	if res := r.careindex(t, "audit"); res.code != 0 {
		t.Errorf("audit after rollback: exit %d\n%s", res.code, res.stdout)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source rs JOIN careindex_ops.run r USING (run_id)
		WHERE r.kind = 'rollback' AND rs.rows_in <> rs.loaded + rs.quarantined + rs.withheld + rs.merged`); n != 0 {
		t.Errorf("the rollback's ledger does not balance")
	}
}

func TestRulesFailClosed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		break_ func(dir string)
		want   string
	}{
		{"unreadable code list", func(dir string) { os.Remove(filepath.Join(dir, "sensitive_codes.csv")) }, "sensitive code list unreadable"},
		{"partly invalid register", func(dir string) {
			p := filepath.Join(dir, "drops", "objections", "objections_20261124.csv")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, []byte("6278534940,all,not-a-date,\n")...), 0o644)
		}, "objection register unreadable"},
		{"invalid override", func(dir string) {
			p := filepath.Join(dir, "drops", "overrides", "overrides_20261124.csv")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, []byte("6278534940,because,someone,2026-01-01,,all\n")...), 0o644)
		}, "override register unreadable"},
		{"broken refset", func(dir string) {
			os.WriteFile(filepath.Join(dir, "refsets", "der2_Refset_SimpleFull_GPSummaryExclusions_20261001.txt"), []byte("not\ta refset\n"), 0o644)
		}, "sensitive code list unreadable"},
		{"unreadable withheld items", func(dir string) { os.Remove(filepath.Join(dir, "withheld_items.csv")) }, "sensitive code list unreadable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRegion(t)
			r.mustRun(t, "run")
			before, version := r.dump(t), r.liveVersion(t)
			os.WriteFile(filepath.Join(r.dir, "drops", "d81001", "patients_20261125.csv"), []byte("PatientID,NHSNo,Surname,Forename,DOB,Gender,Postcode,SFlag\r\n"), 0o644)
			tc.break_(r.dir)
			res := r.careindex(t, "run")
			if res.code != 3 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, want 3 saying %q:\n%s", res.code, tc.want, res.stderr)
			}
			if r.liveVersion(t) != version || r.dump(t) != before {
				t.Error("the live version changed")
			}
			if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run WHERE status = 'blocked'`); n != 1 {
				t.Errorf("%d blocked runs in the ledger, want 1", n)
			}
		})
	}
}

func TestShrunkSnapshotHeldForReview(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.mustRun(t, "run")
	before := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'D81001'`)
	// The GP's next file has the header only: it would wipe the practice.
	os.WriteFile(filepath.Join(r.dir, "drops", "d81001", "patients_20261125.csv"),
		[]byte("\ufeffPatientID,NHSNo,Surname,Forename,DOB,Gender,Postcode,SFlag\r\n"), 0o644)
	res := r.careindex(t, "run")
	if res.code != 1 || !strings.Contains(res.stderr, "held for review") {
		t.Fatalf("exit %d, want 1 with the delivery held:\n%s", res.code, res.stderr)
	}
	if got := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'D81001'`); got != before {
		t.Fatalf("the held delivery changed the index: %d GP records, want %d", got, before)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.organisation WHERE org_code = 'D81001' AND stale`); n != 1 {
		t.Error("the GP practice is not flagged stale while its delivery is held")
	}
	// An operator who confirms the practice really is empty accepts it.
	r.mustRun(t, "accept", "--source", "d81001-patients")
	r.mustRun(t, "publish")
	if got := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'D81001'`); got != 0 {
		t.Errorf("after accepting the empty delivery the GP still has %d records", got)
	}
	if res := r.careindex(t, "accept", "--source", "d81001-patients"); res.code == 0 {
		t.Error("accept with nothing held succeeded")
	}
}
