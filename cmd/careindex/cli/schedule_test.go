package cli_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/careindex/careindex/loader/pgstore/pgtest"
)

// binary is the careindex command, built once for the tests that run it
// as separate processes (two schedulers, one killed).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "careindex-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "careindex")
	build := exec.Command("go", "build", "-o", binary, "github.com/careindex/careindex/cmd/careindex")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building careindex:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// haConfig writes a configuration whose one source is extracted every
// three seconds (a six-field cron), against the store at dsn.
func haConfig(t *testing.T, dsn string) string {
	t.Helper()
	drops := filepath.Join(repoRoot(), "fixtures", "drops")
	y := `store: ` + dsn + `
timezone: Europe/London
objections:
  register: {path: ` + filepath.Join(drops, "objections") + `, pattern: "objections_*.csv"}
retry: {attempts: 2, backoff: 1s}
sources:
  - id: d81001-patients
    org: D81001
    org_name: Riverside Surgery
    org_type: gp_practice
    kind: persons
    from: {folder: {path: ` + filepath.Join(drops, "d81001") + `, pattern: "patients_*.csv"}}
    columns: {local_id: PatientID, nhs_number: NHSNo, family_name: Surname, given_name: Forename, date_of_birth: DOB, sex: Gender, postcode: Postcode}
    date_formats: ["02/01/2006"]
    schedule: "*/3 * * * * *"
    freshness: {warn_after: 26h, error_after: 50h}
`
	path := filepath.Join(t.TempDir(), "region.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// process is a careindex process whose JSON logs go to a file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan error, 1)}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(binary, append(args, "--log-format", "json")...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return p
}

// entries returns the process's log lines with msg.
func (p *process) entries(t *testing.T, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// addr waits for the process to log the address it serves on.
func (p *process) addr(t *testing.T) string {
	t.Helper()
	for range 200 {
		if es := p.entries(t, "serving health, metrics and the status page"); len(es) > 0 {
			return es[0]["addr"].(string)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never served", p.name)
	return ""
}

func (p *process) runIDs(t *testing.T) map[int64]bool {
	ids := map[int64]bool{}
	for _, e := range p.entries(t, "job finished") {
		ids[int64(e["run_id"].(float64))] = true
	}
	for _, e := range p.entries(t, "job failed") {
		ids[int64(e["run_id"].(float64))] = true
	}
	return ids
}

func (p *process) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s", p.name, within)
		return -1
	}
}

type ledgerRun struct {
	id      int64
	started time.Time
	status  string
	message string
}

func ledger(t *testing.T, db *sql.DB) []ledgerRun {
	t.Helper()
	rows, err := db.Query(`SELECT run_id, started_at, status, message FROM careindex_ops.run WHERE kind = 'extract' ORDER BY run_id`)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		t.Fatal(err)
	}
	defer rows.Close()
	var out []ledgerRun
	for rows.Next() {
		var r ledgerRun
		if err := rows.Scan(&r.id, &r.started, &r.status, &r.message); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Two schedulers on one store: every run time runs once, on one of them;
// when the one running the job is killed, the other runs the next run
// times. The ledger is the witness.
func TestTwoSchedulersOneKilled(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, "careindex_ha")
	cfg := haConfig(t, dsn)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	args := []string{"schedule", "--config", cfg, "--stop-timeout", "5s"}

	a := startProcess(t, "scheduler A", append(args, "--listen", "127.0.0.1:0")...)
	if code, body := httpGet(t, "http://"+a.addr(t)+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("scheduler A /healthz = %d %q", code, body)
	}
	waitUntil(t, 15*time.Second, func() bool { return len(ledger(t, db)) >= 2 })

	b := startProcess(t, "scheduler B", args...)
	time.Sleep(7 * time.Second) // two or three run times both schedulers contest
	if len(a.runIDs(t)) == 0 {
		t.Fatal("scheduler A ran nothing before the kill")
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	a.wait(t, 5*time.Second)
	time.Sleep(7 * time.Second) // B alone

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t, 20*time.Second); code != 0 {
		t.Errorf("scheduler B exited with %d after SIGTERM, want 0", code)
	}
	if len(b.entries(t, "stopped")) != 1 {
		t.Error("scheduler B did not log a graceful stop")
	}

	runs := ledger(t, db)
	perSlot := map[int64][]int64{}
	var first, last int64
	for i, r := range runs {
		slot := r.started.Unix() / 3
		perSlot[slot] = append(perSlot[slot], r.id)
		if i == 0 {
			first = slot
		}
		last = slot
		if r.status != "succeeded" && r.status != "abandoned" {
			t.Errorf("run %d is %s (%s), want succeeded (or abandoned, if A was killed in it)", r.id, r.status, r.message)
		}
	}
	missing := 0
	for slot := first; slot <= last; slot++ {
		switch n := len(perSlot[slot]); {
		case n > 1:
			t.Errorf("run time %s ran %d times: runs %v", time.Unix(slot*3, 0).Format("15:04:05"), n, perSlot[slot])
		case n == 0:
			missing++
		}
	}
	if missing > 1 {
		t.Errorf("%d of %d run times did not run", missing, last-first+1)
	}

	bRuns := b.runIDs(t)
	var afterKill []int64
	for _, r := range runs {
		if r.started.After(killed.Add(500 * time.Millisecond)) {
			afterKill = append(afterKill, r.id)
			if !bRuns[r.id] {
				t.Errorf("run %d after the kill is not in scheduler B's log", r.id)
			}
		}
	}
	if len(afterKill) < 2 {
		t.Errorf("%d runs after scheduler A was killed, want scheduler B to run at least 2", len(afterKill))
	}
	skips := len(b.entries(t, "run time skipped: another scheduler is running the job")) +
		len(b.entries(t, "run time skipped: the ledger shows it already ran"))
	// Where scheduler A ran a run time while B was already scheduling, B
	// must have stood aside for it (under load B may start late, after A's
	// runs of the overlap).
	var bStart time.Time
	if es := b.entries(t, "job scheduled"); len(es) > 0 {
		bStart, _ = time.Parse(time.RFC3339Nano, es[0]["ts"].(string))
	}
	aRuns := a.runIDs(t)
	contested := 0
	for _, r := range runs {
		if aRuns[r.id] && !bStart.IsZero() && r.started.After(bStart) {
			contested++
		}
	}
	if contested > 0 && skips == 0 {
		t.Errorf("scheduler B never stood aside for scheduler A, which ran %d run time(s) while both ran", contested)
	}
	t.Logf("%d runs over %d run times; A ran %d, B ran %d (%d after the kill); B stood aside %d times",
		len(runs), last-first+1, len(a.runIDs(t)), len(bRuns), len(afterKill), skips)

	// careindex serve shows the same ledger.
	s := startProcess(t, "serve", "serve", "--config", cfg, "--listen", "127.0.0.1:0")
	base := "http://" + s.addr(t)
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("serve /readyz = %d, want 200", code)
	}
	code, page := httpGet(t, base+"/")
	if code != 200 || !strings.Contains(page, "d81001-patients") || !strings.Contains(page, fmt.Sprintf(">%d<", runs[len(runs)-1].id)) {
		t.Errorf("serve / = %d, want the status page with the source and the last run %d", code, runs[len(runs)-1].id)
	}
	code, metrics := httpGet(t, base+"/metrics")
	if code != 200 || !strings.Contains(metrics, `careindex_source_freshness{source="d81001-patients",state="`) ||
		!strings.Contains(metrics, "careindex_store_up 1") {
		t.Errorf("serve /metrics = %d, want store-derived gauges:\n%s", code, metrics)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("serve exited with %d after SIGTERM, want 0", code)
	}
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s", within)
}

func TestScheduleNeedsSomethingScheduled(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, "careindex_nosched")
	cfg := haConfig(t, dsn)
	raw, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), `schedule: "*/3 * * * * *"`, "", 1)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "schedule", "--config", cfg).CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), "nothing is scheduled") {
		t.Errorf("schedule with nothing scheduled: %v\n%s", err, out)
	}
}
