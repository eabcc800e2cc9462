package sqlitestore

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// The kill tests run a child process (this test binary, with helperEnv
// set) that opens the store, does some work and dies at a chosen point.
const (
	helperEnv     = "SQLITESTORE_TEST_HELPER"
	helperPathEnv = "SQLITESTORE_TEST_PATH"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := helper(mode, os.Getenv(helperPathEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func stagePerson(ctx context.Context, s *Store, run int64, name string, pid int64, commit bool) (store.Delivery, error) {
	st, err := s.BeginDelivery(ctx, run, store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: name, Hash: name,
		ReceivedAt: time.Now()})
	if err != nil {
		return store.Delivery{}, err
	}
	p := store.StagedPerson{PatientID: pid, Person: record.Person{LocalID: fmt.Sprintf("L%d", pid), FamilyName: "F",
		Provenance: record.Provenance{SourceID: "gp", OrgCode: "A81001", File: name, Line: 2}}}
	if err := st.AddPersons(ctx, []store.StagedPerson{p}); err != nil {
		return store.Delivery{}, err
	}
	if err := st.AddRejects(ctx, []store.Reject{{SourceID: "gp", File: name, Line: 3, Reason: "bad"}}); err != nil {
		return store.Delivery{}, err
	}
	if !commit {
		return store.Delivery{}, nil
	}
	return st.Commit(ctx, 2)
}

// buildVersion builds (and finishes) a version of patient pid at A81001.
func buildVersion(ctx context.Context, s *Store, run, pid int64) (store.Version, error) {
	v, err := s.BeginVersion(ctx, run)
	if err != nil {
		return nil, err
	}
	for _, err := range []error{
		v.AddPatient(store.Patient{PatientID: pid, FamilyName: "F", Status: "shared"}),
		v.AddLocation(store.Location{PatientID: pid, OrgCode: "A81001", LocalID: fmt.Sprintf("L%d", pid)}),
	} {
		if err != nil {
			return nil, err
		}
	}
	return v, v.Finish(ctx)
}

func swapOf(run, version int64, d store.Delivery) store.Swap {
	return store.Swap{RunID: run, Version: version, Patients: 1, Locations: 1, Keep: 2, RegisterHash: "reg",
		Sources: []store.SourceOutcome{{SourceID: "gp", OrgCode: "A81001", Status: "new", DeliveryID: d.ID, Delivery: d.Name,
			RowsIn: 2, Loaded: 1, Quarantined: 1}},
		Rejects:  []store.Reject{{SourceID: "gp", File: "x", Line: 9, Reason: "no such person"}},
		Withheld: []store.WithheldCount{{Kind: "patient", Reason: "objection", Count: 1}}}
}

func helper(mode, path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path, zap.NewNop())
	if err != nil {
		return err
	}
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"gp"}, Started: time.Now()})
	if err != nil {
		return err
	}
	switch mode {
	case "hold":
		// Die with a delivery half staged and a version half built.
		if _, err := stagePerson(ctx, s, run, "half", 77, false); err != nil {
			return err
		}
		v, err := s.BeginVersion(ctx, run)
		if err != nil {
			return err
		}
		if err := v.AddPatient(store.Patient{PatientID: 77, Status: "shared"}); err != nil {
			return err
		}
		fmt.Printf("ready %d %d\n", run, v.Number())
		time.Sleep(time.Hour)
	case "swap":
		// Die in Swap, after the ledger commits and before the pointer moves.
		d, err := stagePerson(ctx, s, run, "d2", 2, true)
		if err != nil {
			return err
		}
		v, err := buildVersion(ctx, s, run, 2)
		if err != nil {
			return err
		}
		fmt.Printf("ready %d %d %d\n", run, v.Number(), d.ID)
		testHookAfterOpsCommit = func() { os.Exit(3) }
		if err := s.Swap(ctx, swapOf(run, v.Number(), d)); err != nil {
			return err
		}
		return errors.New("the swap finished")
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// startHelper starts a child in mode and returns it once it is ready, with
// the numbers it printed.
func startHelper(t *testing.T, mode, path string) (*exec.Cmd, []int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper %s: %v", mode, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ready" {
		t.Fatalf("helper %s said %q", mode, line)
	}
	var nums []int64
	for _, s := range f[1:] {
		var n int64
		fmt.Sscan(s, &n)
		nums = append(nums, n)
	}
	return cmd, nums
}

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// publishOne publishes patient pid from a delivery of its own.
func publishOne(t *testing.T, s *Store, pid int64) (version int64, d store.Delivery) {
	t.Helper()
	ctx := context.Background()
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"gp"}, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if d, err = stagePerson(ctx, s, run, fmt.Sprintf("d%d", pid), pid, true); err != nil {
		t.Fatal(err)
	}
	v, err := buildVersion(ctx, s, run, pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Swap(ctx, swapOf(run, v.Number(), d)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
	return v.Number(), d
}

func queryString(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(q, args...).Scan(&s); err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return s.String
}

func queryInt(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func runStatus(t *testing.T, s *Store, run int64) store.RunSummary {
	t.Helper()
	st, err := s.Status(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Runs {
		if r.RunID == run {
			return r
		}
	}
	t.Fatalf("run %d not in the ledger", run)
	return store.RunSummary{}
}

// A process killed with a run open, a delivery half staged and a version
// half built leaves the live version as it was; its locks go with it, and
// the next runs clean up after it.
func TestKilledRun(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := openTest(t, path)
	v1, d1 := publishOne(t, s, 1)

	cmd, nums := startHelper(t, "hold", path)
	childRun, childVersion := nums[0], nums[1]
	// While it lives, it holds the publish lock and its source's.
	for _, info := range []store.RunInfo{{Kind: "publish"}, {Kind: "extract", Sources: []string{"gp"}}} {
		if _, err := s.StartRun(ctx, info); !errors.Is(err, ErrBusy) {
			t.Fatalf("StartRun(%+v) beside a live run: %v, want ErrBusy", info, err)
		}
	}
	other, err := s.StartRun(ctx, store.RunInfo{Kind: "extract", Sources: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := runStatus(t, s, childRun); r.Status != store.RunRunning {
		t.Fatalf("the live child's run is %s", r.Status)
	}
	if err := s.FinishRun(ctx, other, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	run, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"gp"}})
	if err != nil {
		t.Fatalf("StartRun after the holder died: %v", err)
	}
	if r := runStatus(t, s, childRun); r.Status != store.RunAbandoned || r.FinishedAt == nil {
		t.Fatalf("the dead child's run: %+v", r)
	}
	if live, _, _ := s.Live(ctx); live.Version != v1 {
		t.Fatalf("live version %d, want %d", live.Version, v1)
	}
	if cur, _, _ := s.CurrentDelivery(ctx, "gp"); cur.ID != d1.ID {
		t.Fatalf("current delivery %d, want %d", cur.ID, d1.ID)
	}
	if n := queryInt(t, s.db, `SELECT count(*) FROM ops.delivery WHERE status = 'staging'`); n != 1 {
		t.Fatalf("%d deliveries staging, want the child's", n)
	}
	// The next version and delivery clear away what the child left.
	v3, err := buildVersion(ctx, s, run, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st := queryString(t, s.db, `SELECT state FROM main.version WHERE version = ?`, childVersion); st != "abandoned" {
		t.Fatalf("the child's version is %q", st)
	}
	d3, err := stagePerson(ctx, s, run, "d3", 3, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, s.db, `SELECT count(*) FROM ops.delivery WHERE status = 'staging'`); n != 0 {
		t.Fatalf("%d deliveries still staging", n)
	}
	if err := s.Swap(ctx, swapOf(run, v3.Number(), d3)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
}

// A process killed inside Swap, after the ledger went to the ops file and
// before the live pointer moved, leaves the live version as it was; the
// next publishing run removes the ledger of the swap that never happened
// and the delivery it was publishing is pending again.
func TestKilledInSwap(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := openTest(t, path)
	v1, d1 := publishOne(t, s, 1)

	cmd, nums := startHelper(t, "swap", path)
	childRun, childVersion, d2 := nums[0], nums[1], nums[2]
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("the child ended with %v, want exit status 3 from inside Swap", err)
	}

	// Readers see v1 whole.
	viewer, err := sql.Open("sqlite", ViewerDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	if n := queryInt(t, viewer, `SELECT count(*) FROM patient WHERE patient_id = 1`); n != 1 {
		t.Fatal("the live version lost its patient")
	}
	if n := queryInt(t, viewer, `SELECT count(*) FROM patient`); n != 1 {
		t.Fatalf("%d patients live", n)
	}
	if live, _, _ := s.Live(ctx); live.Version != v1 {
		t.Fatalf("live version %d, want %d", live.Version, v1)
	}
	if cur, _, _ := s.CurrentDelivery(ctx, "gp"); cur.ID != d1.ID {
		t.Fatalf("current delivery %d, want %d", cur.ID, d1.ID)
	}
	// The ledger of the swap was written…
	if n := queryInt(t, s.db, `SELECT count(*) FROM ops.version_meta WHERE version = ?`, childVersion); n != 1 {
		t.Fatal("the child did not get as far as the ledger")
	}
	// …and the next publishing run removes it.
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "publish"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM ops.version_meta WHERE version = ?1`,
		`SELECT count(*) FROM ops.version_delivery WHERE version = ?1`,
		`SELECT count(*) FROM ops.quarantine WHERE version = ?1`,
		`SELECT count(*) FROM ops.withheld_summary WHERE version = ?1`,
		`SELECT count(*) FROM ops.run WHERE published_version = ?1`,
	} {
		if n := queryInt(t, s.db, q, childVersion); n != 0 {
			t.Fatalf("%s: %d rows left", q, n)
		}
	}
	r := runStatus(t, s, childRun)
	if r.Status != store.RunAbandoned || len(r.Sources) != 0 || r.Version != 0 {
		t.Fatalf("the child's run: %+v", r)
	}
	pending, ok, err := s.PendingDelivery(ctx, "gp")
	if err != nil || !ok || pending.ID != d2 {
		t.Fatalf("pending delivery %+v %v %v, want %d", pending, ok, err, d2)
	}
	// The run publishes the pending delivery.
	v, err := buildVersion(ctx, s, run, 2)
	if err != nil {
		t.Fatal(err)
	}
	if st := queryString(t, s.db, `SELECT state FROM main.version WHERE version = ?`, childVersion); st != "abandoned" {
		t.Fatalf("the child's version is %q", st)
	}
	if err := s.Swap(ctx, swapOf(run, v.Number(), pending)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
	if cur, _, _ := s.CurrentDelivery(ctx, "gp"); cur.ID != d2 {
		t.Fatalf("current delivery %d, want %d", cur.ID, d2)
	}
	if n := queryInt(t, viewer, `SELECT count(*) FROM patient WHERE patient_id = 2`); n != 1 {
		t.Fatal("the new version is not live")
	}
}

// A swap that fails between its two commits (here its context ends there)
// removes the ledger it wrote: no outcomes, no version metadata, and the
// delivery it was publishing is pending again.
func TestFailedSwapLeavesNoLedger(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := openTest(t, path)
	v1, _ := publishOne(t, s, 1)
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"gp"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := stagePerson(ctx, s, run, "d2", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	v, err := buildVersion(ctx, s, run, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	testHookAfterOpsCommit = cancel
	defer func() { testHookAfterOpsCommit = nil }()
	if err := s.Swap(ctx2, swapOf(run, v.Number(), d)); err == nil {
		t.Fatal("the swap went ahead after its context ended")
	}
	testHookAfterOpsCommit = nil
	if live, _, _ := s.Live(ctx); live.Version != v1 {
		t.Fatalf("live version %d, want %d", live.Version, v1)
	}
	for _, q := range []string{
		`SELECT count(*) FROM ops.version_meta WHERE version = ?1`,
		`SELECT count(*) FROM ops.version_delivery WHERE version = ?1`,
		`SELECT count(*) FROM ops.quarantine WHERE version = ?1`,
		`SELECT count(*) FROM ops.withheld_summary WHERE version = ?1`,
		`SELECT count(*) FROM ops.run WHERE published_version = ?1`,
	} {
		if n := queryInt(t, s.db, q, v.Number()); n != 0 {
			t.Fatalf("%s: %d rows left", q, n)
		}
	}
	if r := runStatus(t, s, run); len(r.Sources) != 0 {
		t.Fatalf("outcomes of a swap that failed: %+v", r.Sources)
	}
	if p, ok, _ := s.PendingDelivery(ctx, "gp"); !ok || p.ID != d.ID {
		t.Fatalf("pending delivery %+v %v, want %d", p, ok, d.ID)
	}
	// The version can still be swapped in.
	if err := s.Swap(ctx, swapOf(run, v.Number(), d)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
}
