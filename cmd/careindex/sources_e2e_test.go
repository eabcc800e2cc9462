package main_test

// End-to-end tests of the other transports: the fixture region's deliveries
// fetched from an S3 bucket (a real versitygw on loopback) and its community
// export read from a MariaDB/MySQL database. Both must publish exactly what
// the folder and PostgreSQL transports publish (testdata/region.golden).

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/careindex/careindex/extractors/s3drop/s3test"
)

// careindexWithEnv runs the binary like region.careindex, with env
// ("NAME=value") added to its environment.
func (r *region) careindexWithEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := r.command(context.Background(), args...)
	cmd.Env = append(cmd.Env, env...) // later entries win
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

func (r *region) mustRunWithEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	res := r.careindexWithEnv(t, env, args...)
	if res.code != 0 {
		t.Fatalf("careindex %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res
}

// rewriteConfig applies edits to the region's config file. Each edit must
// match exactly want times, so a change to fixtures/region.yaml fails here
// rather than silently leaving a source on its old transport.
func (r *region) rewriteConfig(t *testing.T, edits ...configEdit) {
	t.Helper()
	b, err := os.ReadFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, e := range edits {
		if n := len(e.re.FindAllStringIndex(text, -1)); n != e.want {
			t.Fatalf("region.yaml: %q matches %d times, want %d", e.re, n, e.want)
		}
		text = e.re.ReplaceAllStringFunc(text, e.repl)
	}
	if err := os.WriteFile(r.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

type configEdit struct {
	re   *regexp.Regexp
	want int
	repl func(match string) string
}

// literal replaces old with new, want times.
func literal(old, new string, want int) configEdit {
	return configEdit{re: regexp.MustCompile(regexp.QuoteMeta(old)), want: want, repl: func(string) string { return new }}
}

func goldenRegion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "region.golden"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestS3Source(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	srv := s3test.Start(t)
	const bucket = "careindex-drops"
	srv.CreateBucket(t, bucket)

	// The GP's and the hospital's deliveries go to the bucket, and leave
	// the drop folders: whatever is published came through S3.
	uploads := map[string]string{"d81001": "*.csv", "rgt": "hospital_20261124.xlsx"}
	uploaded := 0
	for dir, glob := range uploads {
		files, err := filepath.Glob(filepath.Join(repoRoot(t), "fixtures", "drops", dir, glob))
		if err != nil || len(files) == 0 {
			t.Fatalf("fixtures/drops/%s/%s: %v (%d files)", dir, glob, err, len(files))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			srv.Put(t, bucket, dir+"/"+filepath.Base(f), b)
			uploaded++
		}
		if err := os.RemoveAll(filepath.Join(r.dir, "drops", dir)); err != nil {
			t.Fatal(err)
		}
	}
	if uploaded != 4 {
		t.Fatalf("uploaded %d fixture files, want 4 (three GP CSVs and the hospital workbook)", uploaded)
	}

	folderLine := regexp.MustCompile(`from: \{folder: \{path: drops/(d81001|rgt), pattern: ("[^"]*")\}\}`)
	r.rewriteConfig(t, configEdit{re: folderLine, want: 4, repl: func(m string) string {
		sub := folderLine.FindStringSubmatch(m)
		return "from: {s3: {bucket: " + bucket + ", prefix: " + sub[1] + "/, pattern: " + sub[2] +
			", endpoint: \"" + srv.Endpoint() + "\", path_style: true, access_key_env: TEST_S3_KEY, secret_key_env: TEST_S3_SECRET}}"
	}})

	const wrongSecret = "wrong-secret-for-the-e2e-test-7c1d0e"
	good := []string{"TEST_S3_KEY=" + srv.AccessKey, "TEST_S3_SECRET=" + srv.SecretKey}
	bad := []string{"TEST_S3_KEY=" + srv.AccessKey, "TEST_S3_SECRET=" + wrongSecret}
	want := goldenRegion(t)

	first := r.mustRunWithEnv(t, good, "run")
	if !strings.Contains(first.stdout, "Published version") {
		t.Errorf("run printed no summary:\n%s", first.stdout)
	}
	if got := r.dump(t); got != want {
		t.Fatalf("publishing from S3 differs from region.golden (same deliveries, different transport)\n--- want\n%s\n--- got\n%s", want, got)
	}
	version := r.liveVersion(t)

	t.Run("unchanged objects", func(t *testing.T) {
		res := r.mustRunWithEnv(t, good, "run")
		if !strings.Contains(res.stdout, "unchanged") {
			t.Errorf("a second run with the same objects was not reported unchanged:\n%s", res.stdout)
		}
		if got := r.liveVersion(t); got != version {
			t.Errorf("live version moved from %d to %d", version, got)
		}
		if got := r.dump(t); got != want {
			t.Errorf("published contents changed on a repeated run")
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		res := r.careindexWithEnv(t, bad, "run")
		if res.code != 1 {
			t.Fatalf("exit %d, want 1 (sources failed)\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		out := res.stdout + res.stderr
		if !strings.Contains(out, "rejected the credentials") {
			t.Errorf("the output does not say the credentials were rejected:\n%s", out)
		}
		for _, secret := range []string{wrongSecret, srv.SecretKey} {
			if strings.Contains(out, secret) {
				t.Errorf("the output prints a secret key:\n%s", out)
			}
		}
		run := r.lastRun(t)
		if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE run_id = $1 AND stale
			AND source_id IN ('d81001-patients', 'd81001-problems', 'rgt-patients', 'rgt-encounters')`, run); n != 4 {
			t.Errorf("%d of the 4 S3 sources are stale in run %d's ledger", n, run)
		}
		if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE run_id = $1 AND stale`, run); n != 4 {
			t.Errorf("%d sources are stale in run %d's ledger, want only the 4 S3 sources", n, run)
		}
		// The live version keeps the S3 sources' last good data; only the
		// stale flags of their organisations change.
		stale := strings.NewReplacer(
			"Riverside Surgery | gp_practice | true | false", "Riverside Surgery | gp_practice | true | true",
			"Cambridge University Hospitals | hospital | true | false", "Cambridge University Hospitals | hospital | true | true",
		).Replace(want)
		if stale == want {
			t.Fatal("region.golden's organisation lines are not as this test expects")
		}
		if got := r.dump(t); got != stale {
			t.Errorf("after the rejected credentials the published contents are not the last good data with D81001 and RGT stale\n--- want\n%s\n--- got\n%s", stale, got)
		}
	})

	t.Run("credentials fixed", func(t *testing.T) {
		r.mustRunWithEnv(t, good, "run")
		if got := r.dump(t); got != want {
			t.Errorf("after the credentials were fixed the published contents differ from region.golden\n--- want\n%s\n--- got\n%s", want, got)
		}
	})
}

// defaultTestMySQLDSN is the local MariaDB the tests use unless
// CAREINDEX_TEST_MYSQL_DSN says otherwise.
const defaultTestMySQLDSN = "root@tcp(127.0.0.1:3306)/"

// newMariaDBExport creates a database careindex_e2e_<random> on the test
// MariaDB/MySQL server, loads fixtures/exports/community.mysql.sql into it,
// drops it when the test ends and returns its DSN (go-sql-driver form). It
// fails the test, never skips it, when the server cannot be reached.
func newMariaDBExport(t *testing.T) string {
	t.Helper()
	base := os.Getenv("CAREINDEX_TEST_MYSQL_DSN")
	if base == "" {
		base = defaultTestMySQLDSN
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("CAREINDEX_TEST_MYSQL_DSN: %v", err)
	}
	redacted := cfg.Clone()
	if redacted.Passwd != "" {
		redacted.Passwd = "xxxxx"
	}
	open := func(c *mysql.Config) *sql.DB {
		conn, err := mysql.NewConnector(c)
		if err != nil {
			t.Fatalf("mysql connector: %v", err)
		}
		return sql.OpenDB(conn)
	}
	adminCfg := cfg.Clone()
	adminCfg.DBName = ""
	admin := open(adminCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		t.Fatalf("MariaDB/MySQL is not reachable at %s: %v\n"+
			"Start the local MariaDB (as root): start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd\n"+
			"It must accept root with an empty password on 127.0.0.1:3306, or point CAREINDEX_TEST_MYSQL_DSN "+
			"at another server (go-sql-driver form, e.g. user:password@tcp(host:3306)/).",
			redacted.FormatDSN(), err)
	}
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		t.Fatal(err)
	}
	name := "careindex_e2e_" + hex.EncodeToString(rb[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})

	script, err := os.ReadFile(filepath.Join(repoRoot(t), "fixtures", "exports", "community.mysql.sql"))
	if err != nil {
		t.Fatal(err)
	}
	loadCfg := cfg.Clone()
	loadCfg.DBName = name
	loadCfg.MultiStatements = true
	load := open(loadCfg)
	defer load.Close()
	if _, err := load.ExecContext(ctx, string(script)); err != nil {
		t.Fatalf("loading community.mysql.sql into %s: %v", name, err)
	}

	dsnCfg := cfg.Clone()
	dsnCfg.DBName = name
	return dsnCfg.FormatDSN()
}

func TestMariaDBSource(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	dsn := newMariaDBExport(t)

	// Remove the PostgreSQL export, so whatever RYV publishes came from
	// MariaDB.
	pg, err := sql.Open("postgres", r.exportDSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Exec(`DROP SCHEMA export CASCADE`); err != nil {
		t.Fatalf("dropping the PostgreSQL export: %v", err)
	}
	pg.Close()

	r.rewriteConfig(t,
		literal("driver: postgres", "driver: mysql", 2),
		configEdit{re: regexp.MustCompile(`dsn: "\$\{CAREINDEX_FIXTURE_EXPORT_DSN[^"\n]*"`), want: 2,
			repl: func(string) string { return "dsn: " + strconv.Quote(dsn) }},
		// MySQL has no to_char, and no schema inside a database.
		literal("to_char(birth_date, 'YYYY-MM-DD')", "DATE_FORMAT(birth_date, '%Y-%m-%d')", 1),
		literal("to_char(contact_date, 'YYYY-MM-DD')", "DATE_FORMAT(contact_date, '%Y-%m-%d')", 1),
		literal("FROM export.patients", "FROM patients", 1),
		literal("FROM export.contacts", "FROM contacts", 1),
	)

	r.mustRun(t, "run")
	want := goldenRegion(t)
	if got := r.dump(t); got != want {
		t.Fatalf("publishing from MariaDB differs from region.golden (same rows, different database)\n--- want\n%s\n--- got\n%s", want, got)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE source_id LIKE 'ryv-%' AND status = 'new' AND rows_in > 0`); n != 2 {
		t.Errorf("%d RYV sources loaded rows, want 2", n)
	}

	t.Run("unchanged export", func(t *testing.T) {
		version := r.liveVersion(t)
		res := r.mustRun(t, "run")
		if !strings.Contains(res.stdout, "unchanged") {
			t.Errorf("a second run on the same export was not reported unchanged:\n%s", res.stdout)
		}
		if got := r.liveVersion(t); got != version {
			t.Errorf("live version moved from %d to %d", version, got)
		}
	})
}
