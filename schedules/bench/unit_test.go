package bench

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// The pairwise measures counted from the contingency table equal those
// counted by listing every pair of records.
func TestLinkageCountsPairsLikeEnumeration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := rng.IntN(60)
		type rec struct{ patient, person int64 }
		recs := make([]rec, n)
		c := newContingency()
		for i := range recs {
			// Few patients and persons, so that clusters overlap.
			recs[i] = rec{int64(rng.IntN(1 + n/3)), int64(rng.IntN(1 + n/3))}
			c.add(recs[i].patient, recs[i].person)
		}
		var pred, truePairs, both int64
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				p := recs[i].patient == recs[j].patient
				q := recs[i].person == recs[j].person
				if p {
					pred++
				}
				if q {
					truePairs++
				}
				if p && q {
					both++
				}
			}
		}
		l := c.score()
		if l.PredictedPairs != pred || l.TruePairs != truePairs || l.TruePositivePairs != both || l.Records != int64(n) {
			t.Fatalf("trial %d: got %+v, want %d predicted, %d true, %d both", trial, l, pred, truePairs, both)
		}
		wantP, wantR := 1.0, 1.0
		if pred > 0 {
			wantP = float64(both) / float64(pred)
		}
		if truePairs > 0 {
			wantR = float64(both) / float64(truePairs)
		}
		if l.Precision != wantP || l.Recall != wantR {
			t.Fatalf("trial %d: precision %v recall %v, want %v %v", trial, l.Precision, l.Recall, wantP, wantR)
		}
	}
}

func TestLinkageScores(t *testing.T) {
	c := newContingency()
	// Person 1 has three records: two linked to patient 10, one split off
	// to patient 11. Person 2's record is wrongly merged into patient 10.
	c.add(10, 1)
	c.add(10, 1)
	c.add(11, 1)
	c.add(10, 2)
	l := c.score()
	// Predicted pairs: C(3,2) = 3 (patient 10); true pairs: C(3,2) = 3
	// (person 1); both: 1.
	if l.PredictedPairs != 3 || l.TruePairs != 3 || l.TruePositivePairs != 1 {
		t.Fatalf("%+v", l)
	}
	if l.Precision != 1.0/3 || l.Recall != 1.0/3 || l.F1 < 0.333 || l.F1 > 0.334 {
		t.Fatalf("%+v", l)
	}
	if l := newContingency().score(); l.Precision != 1 || l.Recall != 1 || l.F1 != 1 {
		t.Fatalf("empty: %+v", l)
	}
}

func TestReadTruth(t *testing.T) {
	path := t.TempDir() + "/persons.csv"
	os.WriteFile(path, []byte("org_code,source_id,local_id,person_id,nhs_number,nhs_delivered,duplicate,defect\n"+
		"D81001,d81001-patients,1,P1,,N,N,\nRGT,rgt-patients,M1,P1,,N,N,\nRGT,rgt-patients,M2,P2,,N,N,\n"), 0o644)
	tr, err := readTruth(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.records) != 3 || tr.records[truthKey("D81001", "1")] != tr.records[truthKey("RGT", "M1")] ||
		tr.records[truthKey("RGT", "M1")] == tr.records[truthKey("RGT", "M2")] {
		t.Fatalf("%v", tr.records)
	}
}

func TestCopyTextRoundTrip(t *testing.T) {
	values := []string{"", "plain", `back\slash`, "tab\there", "new\nline", "cr\rx", `\N`, "O’Brien", `\\t`}
	var line []byte
	for i, v := range values {
		if i > 0 {
			line = append(line, '\t')
		}
		line = appendCopyField(line, v)
	}
	line = append(line, '\t', '\\', 'N')
	fields, null, err := splitCopyLine(string(line), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != len(values)+1 || !null[len(values)] {
		t.Fatalf("%q %v", fields, null)
	}
	for i, v := range values {
		if fields[i] != v || null[i] {
			t.Errorf("field %d: %q (null %v), want %q", i, fields[i], null[i], v)
		}
	}
	if _, _, err := splitCopyLine(`bad\x`, nil, nil); err == nil {
		t.Error("a bad escape was accepted")
	}
}

// A child's peak is its own, not the benchmark's: with this process far
// larger than the child, the child's small peak is reported.
func TestChildPeakRSSIsNotTheParents(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the inherited ru_maxrss floor is a Linux matter")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	ballast := make([]byte, 300<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	b := &bench{opts: Options{Binary: sleep}}
	res, err := b.child(t.Context(), nil, "0.3")
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(ballast)
	if res.maxRSS <= 0 || res.maxRSS > 100<<20 || res.rssFrom != rssFromSampled {
		t.Fatalf("sleep's peak RSS: %d bytes (%s); want a few MiB, sampled", res.maxRSS, res.rssFrom)
	}
	// A child larger than this process gets its exact ru_maxrss.
	b.opts.Binary = os.Args[0]
	res, err = b.child(t.Context(), []string{"CAREINDEX_BENCH_BALLAST=400"}, "-test.run=^TestBallast$")
	if err != nil {
		t.Fatal(err)
	}
	if res.maxRSS < 400<<20 || res.rssFrom != rssFromRusage {
		t.Fatalf("the ballast child's peak RSS: %d bytes (%s); want at least 400 MiB from ru_maxrss", res.maxRSS, res.rssFrom)
	}
}

// TestBallast holds $CAREINDEX_BENCH_BALLAST MiB when that is set (it is
// the child of TestChildPeakRSSIsNotTheParents).
func TestBallast(t *testing.T) {
	mib := os.Getenv("CAREINDEX_BENCH_BALLAST")
	if mib == "" {
		t.Skip("only as a child")
	}
	n := 0
	for _, c := range mib {
		n = n*10 + int(c-'0')
	}
	ballast := make([]byte, n<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	runtime.KeepAlive(ballast)
}

func TestReportText(t *testing.T) {
	c := Counts{Version: 1, Patients: 20, WithheldMarkers: 1, Locations: 30, Items: 50, Organisations: 10}
	rep := Report{Patients: 20, Seed: 1, Orgs: 10, Region: "/r", Machine: Machine{CPUs: 2},
		Nights: []Night{{Night: 1, Dir: "night-01", Rows: 100}, {Night: 2, Dir: "night-02", Rows: 101, Changed: 1}},
		Backends: []BackendReport{{Backend: Postgres, Store: "postgres://x", Published: c, PublishedIncremental: c,
			Extract:   Stage{Seconds: 2, RowsRead: 100, ReadPerSecond: 50, PeakRSSBytes: 50 << 20},
			Publish:   Stage{Seconds: 1, RowsPublished: 110, PublishedPerSecond: 110, PeakRSSBytes: 40 << 20},
			FullNight: Stage{Seconds: 3, RowsRead: 100, RowsPublished: 110},
			Raw:       Raw{Seconds: 0.5, Rows: c, RowsTotal: c.Total(), PublishedPerSecond: 220, Method: "m"}, FullOverRaw: 6,
			Ledger: Ledger{Runs: 2, Lines: 4, RowsIn: 10, Loaded: 10}, Linkage: Linkage{Night: 1, Precision: 1, Recall: 0.5, F1: 2.0 / 3}}},
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"full night / raw load: 6.0x", "(equal)", "every line balances", "F1 0.6667", "50 MiB", "extract (night-01)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}
