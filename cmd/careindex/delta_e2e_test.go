package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deltaRegion is a one-source region whose GP practice sends deltas.
func deltaRegion(t *testing.T) *region {
	r := newRegion(t)
	drop := filepath.Join(r.dir, "drops", "delta")
	if err := os.MkdirAll(drop, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `store: postgres://unused
objections:
  register: {path: drops/objections, pattern: "objections_*.csv"}
sources:
  - id: gp-delta
    org: D82002
    org_name: Delta Surgery
    org_type: gp_practice
    kind: persons
    mode: delta
    delta: {sequence: name, snapshot_pattern: "patients_full_*.csv"}
    from: {folder: {path: drops/delta, pattern: "patients_delta_*.csv"}}
    columns: {local_id: ID, nhs_number: NHS, family_name: Surname, given_name: Forename, date_of_birth: DOB,
              sex: Sex, postcode: Postcode, action: Action}
`
	r.config = filepath.Join(r.dir, "delta.yaml")
	if err := os.WriteFile(r.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *region) drop(t *testing.T, name string, rows ...string) {
	t.Helper()
	body := "ID,NHS,Surname,Forename,DOB,Sex,Postcode,Action\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(r.dir, "drops", "delta", name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDeltaDeliveries(t *testing.T) {
	t.Parallel()
	r := deltaRegion(t)
	r.drop(t, "patients_full_0001.csv",
		"A1,"+validNHS(1)+",ALPHA,ANN,1950-01-02,F,CB1 1AA,",
		"A2,"+validNHS(2)+",BETA,BEN,1960-03-04,M,CB2 2BB,",
		"A3,"+validNHS(3)+",GAMMA,GAIL,1970-05-06,F,CB3 3CC,")
	r.drop(t, "patients_delta_0002.csv",
		"A2,"+validNHS(2)+",BETA,BEN,1960-03-04,M,CB4 4DD,U",
		"A3,,,,,,,D",
		"A4,"+validNHS(4)+",DELTA,DAN,1980-07-08,M,CB5 5EE,I")
	r.mustRun(t, "run")
	got := queryLines(t, r.db, `SELECT local_id, p.postcode FROM careindex.record_location l JOIN careindex.patient p USING (patient_id) ORDER BY local_id`)
	if want := "A1 | CB1 1AA\nA2 | CB4 4DD\nA4 | CB5 5EE\n"; got != want {
		t.Fatalf("after snapshot 1 and delta 2:\n%swant\n%s", got, want)
	}
	ledger := queryLines(t, r.db, `SELECT rows_in, loaded, quarantined, withheld, merged FROM careindex_ops.run_source WHERE run_id = (SELECT max(run_id) FROM careindex_ops.run)`)
	// Delta 2 applied to snapshot 1: 3 delta rows + 1 carried (A1) = 4 in;
	// 3 loaded; the deletion of A3 counted as merged.
	if ledger != "4 | 3 | 0 | 0 | 1\n" {
		t.Errorf("ledger %q", ledger)
	}
	pidA2 := r.scalar(t, `SELECT patient_id FROM careindex.record_location WHERE local_id = 'A2'`)

	// Delta 3 is missing; delta 4 must not apply.
	r.drop(t, "patients_delta_0004.csv", "A1,,,,,,,D")
	res := r.careindex(t, "run")
	if res.code != 1 || !strings.Contains(res.stderr, "delta delivery missing") {
		t.Fatalf("exit %d, want 1 with the gap reported\n%s", res.code, res.stderr)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE local_id = 'A1'`); n != 1 {
		t.Error("a delta after a gap was applied")
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.organisation WHERE stale`); n != 1 {
		t.Error("the source is not stale after a missing delta")
	}

	// A full snapshot recovers the source.
	r.drop(t, "patients_full_0005.csv",
		"A2,"+validNHS(2)+",BETA,BEN,1960-03-04,M,CB6 6FF,",
		"A5,"+validNHS(5)+",EPSILON,EVE,1990-09-10,F,CB7 7GG,")
	r.mustRun(t, "run")
	got = queryLines(t, r.db, `SELECT local_id FROM careindex.record_location ORDER BY local_id`)
	if got != "A2\nA5\n" {
		t.Errorf("after snapshot 5: %q", got)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.organisation WHERE stale`); n != 0 {
		t.Error("the source is still stale after a full snapshot")
	}
	if got := r.scalar(t, `SELECT patient_id FROM careindex.record_location WHERE local_id = 'A2'`); got != pidA2 {
		t.Errorf("patient id of A2 changed from %d to %d", pidA2, got)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex_ops.run_source WHERE rows_in <> loaded + quarantined + withheld + merged + pending`); n != 0 {
		t.Errorf("%d ledger rows do not balance", n)
	}
}
