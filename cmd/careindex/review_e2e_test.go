package main_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/lib/pq"
	_ "modernc.org/sqlite"

	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/loader/sqlitestore"
	"github.com/careindex/careindex/loader/store"
)

// The review queue end to end: a night that makes a possible match (a
// social care record without an NHS number that resembles a GP patient)
// and a held record (a social care record whose NHS number is a GP
// patient's, with another date of birth); a person links the first and
// separates the second; the same deliveries run again publish the
// decisions; a changed delivery the night after keeps them.

const reviewConfig = `store: sqlite:unused.db
timezone: Europe/London
objections:
  register: {path: register, pattern: "objections_*.csv"}
  max_age: 876000h
matching: {enabled: true}
sources:
  - id: d81001-patients
    org: D81001
    org_name: Riverside Surgery
    org_type: gp_practice
    kind: persons
    from: {folder: {path: drops/gp, pattern: "patients_*.csv"}}
    format: {type: csv}
    columns: {local_id: PatientID, nhs_number: NHSNo, family_name: Surname, given_name: Forename, date_of_birth: DOB, sex: Sex,
              postcode: Postcode}
    date_formats: ["2006-01-02"]
    mode: snapshot
  - id: la505-clients
    org: LA505
    org_name: Fenland Adult Social Care
    org_type: social_care
    kind: persons
    from: {folder: {path: drops/social, pattern: "clients_*.csv"}}
    format: {type: csv}
    columns: {local_id: ClientID, nhs_number: NHSNo, family_name: Surname, given_name: Forename, date_of_birth: DOB, sex: Sex,
              postcode: Postcode}
    date_formats: ["2006-01-02"]
    mode: snapshot
  - id: la505-care
    org: LA505
    org_name: Fenland Adult Social Care
    org_type: social_care
    kind: care_items
    item_kind: social_care
    code_system: LOCAL
    from: {folder: {path: drops/social, pattern: "care_*.csv"}}
    format: {type: csv}
    columns: {local_id: ClientID, item_id: ItemID, code: Code, display: Service, start_date: Start}
    date_formats: ["2006-01-02"]
    mode: snapshot
`

const (
	gpPatients = `PatientID,NHSNo,Surname,Forename,DOB,Sex,Postcode
GP1,9434765919,Abernathy,Margaret,1948-05-17,F,LS6 2AB
GP2,5002977278,Oyelaran,Desmond,1952-07-02,M,LS2 9JT
GP3,7931098021,Pennington,Hattie,1960-03-14,F,LS8 1AA
`
	// C2 resembles GP1 (no NHS number): a possible match. C3 carries
	// GP2's NHS number with another date of birth: held.
	socialClients = `ClientID,NHSNo,Surname,Forename,DOB,Sex,Postcode
C1,7931098021,Pennington,Hattie,1960-03-14,F,LS8 1AA
C2,,Abernethy,Margaret,1948-05-17,,BD7 3QQ
C3,5002977278,Oyelaran,Desmond,1975-01-30,M,LS2 9JT
`
	socialCare = `ClientID,ItemID,Code,Service,Start
C1,S1,HC01,Home care,2026-01-05
C2,S2,MW02,Meals,2026-02-10
C3,S3,DP03,Direct payment,2026-03-15
`
	// The next night: C2 moved house, and a new client arrived.
	socialClients2 = socialClients + `C4,,Quennell,Rosalind,1990-12-01,F,PE13 2RT
`
)

// reviewStore is one backend under the review test.
type reviewStore struct {
	dsn string
	// reader queries the published views as a viewer does (the reader
	// role on PostgreSQL; the published file, read-only, on SQLite).
	reader func(t *testing.T, q string) string
	prefix string // qualifies the published views
}

func newReviewStore(t *testing.T, backend string, dir string) reviewStore {
	t.Helper()
	if backend == "sqlite" {
		path := filepath.Join(dir, "review.db")
		return reviewStore{dsn: "sqlite:" + path, reader: func(t *testing.T, q string) string {
			db, err := sql.Open("sqlite", sqlitestore.ViewerDSN(path))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			return queryLines(t, db, q)
		}}
	}
	dsn := pgtest.NewDatabase(t, "careindex_review")
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return reviewStore{dsn: dsn, prefix: "careindex.", reader: func(t *testing.T, q string) string {
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SET ROLE careindex_reader`); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(ctx, `RESET ROLE`)
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("as careindex_reader: %s: %v", q, err)
		}
		defer rows.Close()
		return rowsText(t, rows)
	}}
}

// rowsText renders rows one line each, columns separated by " | ".
func rowsText(t *testing.T, rows *sql.Rows) string {
	t.Helper()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			parts[i] = fmt.Sprint(v)
		}
		b.WriteString(strings.Join(parts, " | ") + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReviewDecisions(t *testing.T) {
	t.Parallel()
	// The decisions take effect at the next run, or at a publish that
	// extracts nothing.
	for _, tc := range []struct{ backend, next string }{{"sqlite", "publish"}, {"postgres", "run"}} {
		t.Run(tc.backend, func(t *testing.T) {
			t.Parallel()
			testReviewDecisions(t, tc.backend, tc.next)
		})
	}
}

func testReviewDecisions(t *testing.T, backend, next string) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.yaml", reviewConfig)
	write("register/objections_20261124.csv", "nhs_number,scope,recorded,withdrawn\n")
	write("drops/gp/patients_20261124.csv", gpPatients)
	write("drops/social/clients_20261124.csv", socialClients)
	write("drops/social/care_20261124.csv", socialCare)
	st := newReviewStore(t, backend, dir)
	r := &region{dir: dir, config: filepath.Join(dir, "config.yaml"), storeDSN: st.dsn}
	// Patient values that must never appear in logs or in the review
	// commands' output.
	values := []string{"Abernethy", "ABERNETHY", "Abernathy", "ABERNATHY", "Margaret", "MARGARET", "Oyelaran", "OYELARAN", "Desmond",
		"DESMOND", "9434765919", "5002977278", "500 297 7278", "1948-05-17", "1975-01-30", "BD7 3QQ", "LS2 9JT"}
	noValues := func(what, out string) {
		t.Helper()
		for _, v := range values {
			if strings.Contains(out, v) {
				t.Errorf("%s carries a patient value (%q):\n%s", what, v, out)
			}
		}
	}
	run := func(args ...string) result {
		t.Helper()
		res := r.mustRun(t, append(args, "--log-format", "json")...)
		noValues("the logs of careindex "+args[0], res.stderr)
		return res
	}
	located := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for _, l := range strings.Split(strings.TrimSpace(st.reader(t, `SELECT org_code, local_id, patient_id FROM `+st.prefix+`record_location`)), "\n") {
			f := strings.Split(l, " | ")
			if len(f) == 3 {
				out[f[0]+"/"+f[1]] = mustInt(t, f[2])
			}
		}
		return out
	}
	balanced := func(night string) store.RunSummary {
		t.Helper()
		var status store.Status
		if err := json.Unmarshal([]byte(r.mustRun(t, "status", "--json", "--runs", "1").stdout), &status); err != nil {
			t.Fatal(err)
		}
		if len(status.Runs) != 1 || status.Runs[0].Version == 0 {
			t.Fatalf("%s: the last run published nothing: %+v", night, status.Runs)
		}
		for _, o := range status.Runs[0].Sources {
			if !o.Balanced() {
				t.Errorf("%s: %s does not balance: %+v", night, o.SourceID, o)
			}
		}
		return status.Runs[0]
	}
	outcome := func(run store.RunSummary, source string) store.SourceOutcome {
		for _, o := range run.Sources {
			if o.SourceID == source {
				return o
			}
		}
		t.Fatalf("run %d has no line for %s", run.RunID, source)
		return store.SourceOutcome{}
	}

	// Night 1: a possible match and a held record.
	run("run")
	night1 := balanced("night 1")
	if o := outcome(night1, "la505-clients"); o.Loaded != 2 || o.Quarantined != 1 {
		t.Fatalf("night 1, la505-clients: %+v, want 2 loaded and C3 held", o)
	}
	before := located()
	if before["LA505/C3"] != 0 || before["LA505/C2"] == 0 || before["LA505/C2"] == before["D81001/GP1"] ||
		before["LA505/C1"] != before["D81001/GP3"] {
		t.Fatalf("night 1 published %v: want C1 with GP3, C2 on a patient of its own and C3 held", before)
	}

	var items []struct {
		store.ReviewItem
		Held     bool            `json:"held"`
		Evidence json.RawMessage `json:"evidence"`
	}
	list := run("review", "list", "--json")
	noValues("review list", list.stdout)
	if err := json.Unmarshal([]byte(list.stdout), &items); err != nil {
		t.Fatalf("review list --json: %v\n%s", err, list.stdout)
	}
	var possible, held int64
	for _, it := range items {
		switch {
		case it.LocalID == "C2" && !it.Held && it.PatientID == before["D81001/GP1"] && it.Assigned == before["LA505/C2"]:
			possible = it.ID
			if len(it.Evidence) == 0 {
				t.Errorf("the possible match has no evidence: %+v", it)
			}
		case it.LocalID == "C3" && it.Held && it.PatientID == before["D81001/GP2"]:
			held = it.ID
		}
	}
	if len(items) != 2 || possible == 0 || held == 0 {
		t.Fatalf("review items %+v: want C2's possible match of GP1 and C3 held against GP2", items)
	}
	text := run("review", "list").stdout
	noValues("review list", text)
	if !strings.Contains(text, "possible match") || !strings.Contains(text, "held") {
		t.Errorf("review list:\n%s", text)
	}
	show := run("review", "show", itoa(possible)).stdout
	noValues("review show", show)
	for _, want := range []string{"agreement level", "total weight", "probability", "family_name", "date_of_birth",
		"org LA505, local id C2", "clients_20261124.csv, line 3", "D81001  GP1"} {
		if !strings.Contains(show, want) {
			t.Errorf("review show lacks %q:\n%s", want, show)
		}
	}
	noValues("review show", run("review", "show", itoa(held)).stdout)

	// The decisions.
	linked := run("review", "link", itoa(possible), "--by", "alice", "--note", "same person, checked with the GP").stdout
	if !strings.Contains(linked, "linked by alice") || !strings.Contains(linked, "Merge: patient "+itoa(before["LA505/C2"])) {
		t.Errorf("review link:\n%s", linked)
	}
	again := r.careindex(t, "review", "separate", itoa(possible), "--by", "bob")
	if again.code != 2 || !strings.Contains(again.stderr, "already decided") {
		t.Errorf("deciding a decided item: exit %d, %s", again.code, again.stderr)
	}
	if res := r.careindex(t, "review", "link", "999999"); res.code != 2 {
		t.Errorf("deciding an unknown item: exit %d, %s", res.code, res.stderr)
	}
	separated := run("review", "separate", itoa(held), "--by", "bob").stdout
	if !strings.Contains(separated, "separated by bob") || !strings.Contains(separated, "Split: the record leaves patient "+itoa(before["D81001/GP2"])) {
		t.Errorf("review separate:\n%s", separated)
	}
	if open := run("review", "list").stdout; !strings.Contains(open, "No open review items") {
		t.Errorf("open items after deciding both:\n%s", open)
	}

	// Night 2: the same deliveries publish the decisions.
	out := run(next).stdout
	if !strings.Contains(out, "Published version") {
		t.Fatalf("the decisions did not make a new version:\n%s", out)
	}
	night2 := balanced("night 2")
	if night2.Version <= night1.Version {
		t.Fatalf("version %d after %d", night2.Version, night1.Version)
	}
	if o := outcome(night2, "la505-clients"); o.Loaded != 3 || o.Quarantined != 0 {
		t.Errorf("night 2, la505-clients: %+v, want C3 released and loaded", o)
	}
	after := located()
	gp1, merged := before["D81001/GP1"], before["LA505/C2"]
	if after["LA505/C2"] != gp1 {
		t.Errorf("C2 is patient %d, want GP1's %d", after["LA505/C2"], gp1)
	}
	split := after["LA505/C3"]
	if split == 0 || split == before["D81001/GP2"] || split == merged {
		t.Errorf("C3 is patient %d: want a new patient of its own", split)
	}
	for k, v := range before {
		if k != "LA505/C2" && after[k] != v {
			t.Errorf("%s moved from %d to %d", k, v, after[k])
		}
	}
	if got := st.reader(t, `SELECT old_patient_id, patient_id FROM `+st.prefix+`patient_merge`); got != itoa(merged)+" | "+itoa(gp1)+"\n" {
		t.Errorf("patient_merge as the viewer reads it:\n%s\nwant %d → %d", got, merged, gp1)
	}
	if n := st.reader(t, `SELECT count(*) FROM `+st.prefix+`patient WHERE patient_id = `+itoa(merged)); n != "0\n" {
		t.Errorf("the merged patient %d is still published", merged)
	}
	if got := st.reader(t, `SELECT org_code, code FROM `+st.prefix+`care_item WHERE patient_id = `+itoa(split)); got != "LA505 | DP03\n" {
		t.Errorf("the released record's care items: %q", got)
	}
	if shown := run("review", "show", itoa(held)).stdout; !strings.Contains(shown, "published in version "+itoa(night2.Version)) {
		t.Errorf("review show after publishing:\n%s", shown)
	}
	// Nothing more to publish: the next run with the same deliveries is
	// unchanged.
	if out := run("run").stdout; strings.Contains(out, "Published version") || !strings.Contains(out, " unchanged: ") {
		t.Errorf("a run with nothing new after the decisions:\n%s", out)
	}

	// Night 3: a changed delivery; the decisions hold.
	write("drops/social/clients_20261125.csv", strings.Replace(socialClients2, "BD7 3QQ", "BD7 4RR", 1))
	run("run")
	night3 := balanced("night 3")
	if o := outcome(night3, "la505-clients"); o.Status != "new" || o.Loaded != 4 || o.Quarantined != 0 {
		t.Errorf("night 3, la505-clients: %+v, want 4 loaded, none held", o)
	}
	third := located()
	if third["LA505/C2"] != gp1 || third["LA505/C3"] != split || third["LA505/C1"] != before["D81001/GP3"] || third["LA505/C4"] == 0 {
		t.Errorf("night 3 published %v: want C2 with GP1 (%d), C3 on %d", third, gp1, split)
	}
	for _, pid := range third {
		if pid == merged {
			t.Errorf("the merged id %d is in use again", merged)
		}
	}
	if open := run("review", "list").stdout; !strings.Contains(open, "No open review items") {
		t.Errorf("night 3 queued the decided records again:\n%s", open)
	}
	if got := st.reader(t, `SELECT old_patient_id, patient_id FROM `+st.prefix+`patient_merge`); got != itoa(merged)+" | "+itoa(gp1)+"\n" {
		t.Errorf("patient_merge in night 3's version:\n%s", got)
	}
}
