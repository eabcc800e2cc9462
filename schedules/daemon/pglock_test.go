package daemon_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/pipeline"
)

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPGLocker(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, "careindex_lock")
	ctx := context.Background()
	one, two := daemon.NewPGLocker(openDB(t, dsn)), daemon.NewPGLocker(openDB(t, dsn))

	held, err := one.Lock(ctx, "extract gp-patients")
	if err != nil {
		t.Fatalf("first Lock = %v", err)
	}
	if _, err := two.Lock(ctx, "extract gp-patients"); !errors.Is(err, daemon.ErrLockHeld) {
		t.Fatalf("second Lock of a held key = %v, want ErrLockHeld", err)
	}
	if _, err := one.Lock(ctx, "extract gp-patients"); !errors.Is(err, daemon.ErrLockHeld) {
		t.Fatalf("Lock of a key held by the same locker = %v, want ErrLockHeld (one connection per lock)", err)
	}
	other, err := two.Lock(ctx, "publish")
	if err != nil {
		t.Fatalf("Lock of another key = %v", err)
	}
	other.Unlock(ctx)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := held.Unlock(cancelled); err != nil {
		t.Fatalf("Unlock with a cancelled context = %v", err)
	}
	again, err := two.Lock(ctx, "extract gp-patients")
	if err != nil {
		t.Fatalf("Lock after Unlock = %v", err)
	}

	// The holder dies: its connection goes, and with it the lock.
	admin := openDB(t, dsn)
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1`, 0x6a6f6273); err != nil {
		t.Fatal(err)
	}
	var after error
	for range 50 {
		var l interface{ Unlock(context.Context) error }
		if l, after = one.Lock(ctx, "extract gp-patients"); after == nil {
			l.Unlock(ctx)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after != nil {
		t.Fatalf("Lock after the holder's connection died = %v", after)
	}
	again.Unlock(ctx) // its connection is gone: must not hang or panic
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// End to end on PostgreSQL with the real pipeline: a scheduler that was
// down for three nights runs the extract once at start-up, and the ledger
// says it was a catch-up.
func TestCatchUpInTheLedger(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, "careindex_catchup")
	drops := filepath.Join(repoRoot(), "fixtures", "drops")
	dir := t.TempDir()
	// The drop folder holds the 23 November delivery at first; the 24
	// November one arrives while the scheduler is down.
	drop := filepath.Join(dir, "d81001")
	deliver := func(name string) {
		b, err := os.ReadFile(filepath.Join(drops, "d81001", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(drop, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(drop, 0o755); err != nil {
		t.Fatal(err)
	}
	deliver("patients_20261123.csv")
	y := `store: ` + dsn + `
objections:
  register: {path: ` + filepath.Join(drops, "objections") + `, pattern: "objections_*.csv"}
sources:
  - id: d81001-patients
    org: D81001
    org_type: gp_practice
    kind: persons
    from: {folder: {path: ` + drop + `, pattern: "patients_*.csv"}}
    columns: {local_id: PatientID, nhs_number: NHSNo, family_name: Surname, given_name: Forename, date_of_birth: DOB, sex: Gender, postcode: Postcode}
    date_formats: ["02/01/2006"]
    schedule: "30 1 * * *"
`
	path := filepath.Join(dir, "region.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	threeDaysAgo := func() time.Time { return time.Now().Add(-72 * time.Hour) }
	if _, err := pipeline.Run(ctx, pipeline.Options{Config: cfg, Store: st, Stage: pipeline.StageExtract, Sources: []string{"d81001-patients"}, Now: threeDaysAgo}); err != nil {
		t.Fatalf("first run: %v", err)
	}
	deliver("patients_20261124.csv")

	bodies := make(chan []byte, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer receiver.Close()
	hook := alert.NewWebhook(config.Webhook{URL: receiver.URL}, alert.WebhookOptions{})
	d, err := daemon.New(daemon.Options{Config: cfg, Store: st, Locker: daemon.NewPGLocker(openDB(t, dsn)), FreshnessEvery: -1, Notifier: hook})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, d)
	ledger := func() (n int, last, status string) {
		err := st.DB().QueryRow(`SELECT count(*), max(message) FILTER (WHERE run_id = (SELECT max(run_id) FROM careindex_ops.run)),
			max(status) FILTER (WHERE run_id = (SELECT max(run_id) FROM careindex_ops.run)) FROM careindex_ops.run`).Scan(&n, &last, &status)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	waitFor(t, func() bool { n, _, status := ledger(); return n == 2 && status != "running" })
	time.Sleep(300 * time.Millisecond)
	stop()
	n, msg, status := ledger()
	if n != 2 || status != "succeeded" || !strings.HasPrefix(msg, "catch-up of the run due ") {
		t.Errorf("ledger: %d runs, the last %s %q; want 2, the last a succeeded catch-up", n, status, msg)
	}

	// The delivery's reject rate (7 of 17) is over the default 10%: the
	// webhook hears of it, with counts and ids and no patient value.
	var body []byte
	select {
	case body = <-bodies:
	case <-time.After(10 * time.Second):
		t.Fatal("no alert reached the webhook")
	}
	var a alert.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	if a.Kind != alert.RejectRate || a.Source != "d81001-patients" || a.Counts == nil || a.Counts.RowsIn != 17 || a.Counts.Quarantined != 7 {
		t.Errorf("alert = %s", body)
	}
	for _, v := range patientValues(t, filepath.Join(drops, "d81001", "patients_20261124.csv")) {
		if strings.Contains(string(body), v) {
			t.Errorf("alert carries the patient value %q: %s", v, body)
		}
	}
}

// patientValues are the NHS numbers, names, dates of birth and postcodes
// of a fixture delivery.
func patientValues(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, row := range rows[1:] {
		for i, v := range row {
			if i >= 1 && i <= 6 && i != 5 && len(strings.TrimSpace(v)) >= 4 {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d patient values read from %s", len(out), path)
	}
	return out
}
