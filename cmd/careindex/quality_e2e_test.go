package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/careindex/careindex/cmd/careindex/cli"
	"github.com/careindex/careindex/fixtures/csvtable"
	"github.com/careindex/careindex/loader/sqlitestore"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/transform/match"
)

// Matching quality through careindex itself: the FEBRL and Splink test
// vectors are delivered as ordinary persons sources (fixtures/febrl*.yaml,
// fixtures/splink_fake_1000.yaml), run through the binary into an embedded
// store, and the published record locations (the patient of each local
// id) are scored pairwise against the truth.

// qualityRun is a fixture configuration run into a store of its own.
type qualityRun struct {
	dir   string // private copy of fixtures/
	cfg   string
	store string // the published file
}

func newQualityRun(t *testing.T, config string) *qualityRun {
	t.Helper()
	q := &qualityRun{dir: filepath.Join(t.TempDir(), "fixtures")}
	copyTree(t, filepath.Join(repoRoot(t), "fixtures"), q.dir)
	q.cfg = filepath.Join(q.dir, config)
	q.store = filepath.Join(filepath.Dir(q.dir), "quality.db")
	return q
}

func (q *qualityRun) run(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(binary, "run", "--config", q.cfg, "--store", "sqlite:"+q.store, "--log-format", "json")
	cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("careindex run --config %s: %v\n%s\n%s", filepath.Base(q.cfg), err, out.String(), errb.String())
	}
	// Logs carry counts, never patient values.
	for _, v := range []string{"pennington", "PENNINGTON", "lachlan", "LACHLAN", "@"} {
		if strings.Contains(errb.String(), v) {
			t.Errorf("the logs carry a patient value (%q)", v)
		}
	}
	return out.String()
}

// patients returns the published patient of every local id.
func (q *qualityRun) patients(t *testing.T) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", sqlitestore.ViewerDSN(q.store))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT local_id, patient_id FROM record_location`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var pid int64
		if err := rows.Scan(&id, &pid); err != nil {
			t.Fatal(err)
		}
		out[id] = pid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ops runs a query on the ops file, read-only.
func (q *qualityRun) ops(t *testing.T, query string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+sqlitestore.OpsPath(q.store)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// readTruth reads a CSV's id column and entity (the truth) for every row.
func readTruth(t *testing.T, path string, entity func(row map[string]string) (id, ent string)) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, row := range csvtable.Read(t, path, true) {
		id, ent := entity(row.Col)
		out[id] = ent
	}
	return out
}

func febrlTruth(row map[string]string) (string, string) {
	return row["rec_id"], strings.Split(row["rec_id"], "-")[1] // rec-N-org, rec-N-dup-k
}

func splinkTruth(row map[string]string) (string, string) { return row["unique_id"], row["cluster"] }

// quality is a pairwise comparison of the published patients with the
// truth: a pair is two records of one patient (predicted) or of one entity
// (true). It is scored two ways. Over the published records (the record
// locations the test reads): the true pairs are those of two published
// records, the matcher's own measure. Over every record of the file:
// records not published (quarantined for an impossible date of birth) are
// nobody's pair, so their true pairs count as missed too.
type quality struct {
	records, published, patients int
	tp, fp, fn                   int
	precision, recall, f1        float64
	// recallPublished and f1Published are over the true pairs whose
	// records were both published.
	recallPublished, f1Published float64
}

func (q quality) String() string {
	return fmt.Sprintf("records %d (published %d, patients %d): precision %.4f; over published records recall %.4f F1 %.4f; over every record recall %.4f F1 %.4f (tp %d fp %d fn %d)",
		q.records, q.published, q.patients, q.precision, q.recallPublished, q.f1Published, q.recall, q.f1, q.tp, q.fp, q.fn)
}

// f1 is the harmonic mean of precision and recall.
func f1(precision, recall float64) float64 {
	if precision+recall == 0 {
		return 0
	}
	return 2 * precision * recall / (precision + recall)
}

func score(truth map[string]string, patients map[string]int64) quality {
	q := quality{records: len(truth), published: len(patients)}
	byPatient := map[int64][]string{}
	for id, pid := range patients {
		byPatient[pid] = append(byPatient[pid], id)
	}
	q.patients = len(byPatient)
	for _, ids := range byPatient {
		for a := range ids {
			for b := a + 1; b < len(ids); b++ {
				if ea, ok := truth[ids[a]]; ok && ea == truth[ids[b]] {
					q.tp++
				} else {
					q.fp++
				}
			}
		}
	}
	byEntity := map[string][]string{}
	for id, e := range truth {
		byEntity[e] = append(byEntity[e], id)
	}
	actual, actualPublished := 0, 0
	for _, ids := range byEntity {
		actual += len(ids) * (len(ids) - 1) / 2
		n := 0
		for _, id := range ids {
			if _, ok := patients[id]; ok {
				n++
			}
		}
		actualPublished += n * (n - 1) / 2
	}
	q.fn = actual - q.tp
	q.precision = float64(q.tp) / float64(max(q.tp+q.fp, 1))
	q.recall = float64(q.tp) / float64(max(actual, 1))
	q.recallPublished = float64(q.tp) / float64(max(actualPublished, 1))
	q.f1, q.f1Published = f1(q.precision, q.recall), f1(q.precision, q.recallPublished)
	return q
}

// qualityCases are the quality fixtures and their truth.
var qualityCases = []struct {
	config, truth string
	entity        func(map[string]string) (string, string)
	// With the fixture's estimated model the goal holds over the
	// published records (precision ≥ 0.99, F1 ≥ 0.97; the floors are
	// tighter on precision, which has been 1.000), and floors sit just
	// below what careindex measured over every record of the file
	// (README.md, "Matching quality"); with match.DefaultModel floors sit
	// just below the measured figures.
	minPrecision, minF1Published, minF1 float64
	minDefaultPrecision, minDefaultF1   float64
}{
	// measured: F1 0.990 over published records, 0.987 over every record
	// (default model 0.884), precision 1.000 with both
	{"febrl1.yaml", "vectors/febrl/dataset1.csv", febrlTruth, 0.995, 0.97, 0.98, 0.995, 0.875},
	// measured: F1 0.997, 0.988 (default 0.838), precision 1.000
	{"febrl2.yaml", "vectors/febrl/dataset2.csv", febrlTruth, 0.995, 0.97, 0.98, 0.995, 0.83},
	// measured: F1 0.992, 0.983 (default 0.835), precision 1.000
	{"febrl3.yaml", "vectors/febrl/dataset3.csv", febrlTruth, 0.995, 0.97, 0.98, 0.995, 0.825},
	// measured: F1 0.974, 0.965 (default 0.843), precision 1.000. Its 8
	// records born in the future are quarantined, and their 35 true pairs
	// are missed over every record.
	{"splink_fake_1000.yaml", "vectors/splink/fake_1000.csv", splinkTruth, 0.995, 0.97, 0.96, 0.995, 0.835},
}

// TestMatchingQuality runs each quality fixture through the binary, with
// its estimated model and again with the default model, and scores what
// was published. With -update it first estimates the fixtures' models.
func TestMatchingQuality(t *testing.T) {
	t.Parallel()
	for _, tc := range qualityCases {
		name := strings.TrimSuffix(tc.config, ".yaml")
		if *update {
			estimateModel(t, tc.config)
		}
		for _, variant := range []string{"estimated", "default"} {
			t.Run(name+"/"+variant+"_model", func(t *testing.T) {
				t.Parallel()
				q := newQualityRun(t, tc.config)
				minP, minF1Published, minF1 := tc.minPrecision, tc.minF1Published, tc.minF1
				if variant == "default" {
					q.withoutModel(t)
					minP, minF1Published, minF1 = tc.minDefaultPrecision, 0, tc.minDefaultF1
				}
				q.run(t)
				truth := readTruth(t, filepath.Join(q.dir, tc.truth), tc.entity)
				got := score(truth, q.patients(t))
				reviews := q.ops(t, `SELECT count(*) FROM review`)
				quarantined := q.ops(t, `SELECT quarantined FROM run_source`)
				duplicates := q.ops(t, `SELECT duplicates FROM run_source`)
				t.Logf("%s, %s model: %v; quarantined %d, review items %d, duplicates %d", tc.config, variant, got, quarantined, reviews, duplicates)
				// The ledger's duplicates are the records beyond the first of
				// each patient (one organisation).
				if want := int64(got.published - got.patients); duplicates != want {
					t.Errorf("run_source.duplicates = %d, want %d (published records %d, patients %d)", duplicates, want, got.published, got.patients)
				}
				if got.precision < minP || got.f1Published < minF1Published || got.f1 < minF1 {
					t.Errorf("below the floors: precision %.4f (floor %.3f), F1 over published records %.4f (floor %.3f), F1 over every record %.4f (floor %.3f)",
						got.precision, minP, got.f1Published, minF1Published, got.f1, minF1)
				}
			})
		}
	}
}

var (
	modelLine = regexp.MustCompile(`(?m)^matching: \{.*\}$`)
	modelPath = regexp.MustCompile(`(?m)^matching: \{.*model: ([^,}\s]+).*\}$`)
)

// withoutModel makes the run's configuration use match.DefaultModel.
func (q *qualityRun) withoutModel(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(q.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !modelLine.Match(raw) {
		t.Fatalf("%s has no one-line matching setting", q.cfg)
	}
	raw = modelLine.ReplaceAll(raw, []byte("matching: {enabled: true, auto_link: 0.99, review: 0.5}"))
	if err := os.WriteFile(q.cfg, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// estimateModel learns the model of a quality fixture from its delivery,
// read as careindex reads it (the fixture's mapping and normalisation; rows
// careindex would quarantine left out), as careindex model estimate does,
// and writes it where the fixture names it. Estimation never sees the
// truth.
func estimateModel(t *testing.T, name string) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "fixtures")
	cfg, modelFile := fixtureConfig(t, dir, name)
	model, rep, _, err := cli.EstimateModel(context.Background(), cfg, []string{cfg.Sources[0].ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(model); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(modelFile, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: model estimated from %d records (prior %.3g, expected links %.0f)", name, rep.Records, model.Prior, rep.ExpectedLinks)
}

// fixtureConfig parses a quality fixture's configuration in dir without
// its model (which may be the one being made) and returns it with the
// model's path.
func fixtureConfig(t *testing.T, dir, name string) (*config.Config, string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	m := modelPath.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("%s names no model", name)
	}
	cfg, err := config.Parse(modelLine.ReplaceAll(raw, []byte("matching: {enabled: true}")), dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg, filepath.Join(dir, filepath.FromSlash(string(m[1])))
}

// TestModelEstimate runs careindex model estimate on a quality fixture:
// the model it writes is the fixture's (fixtures/quality, made by the same
// estimation), its summary names levels and probabilities but no patient
// value, and without -o the model goes to standard output.
func TestModelEstimate(t *testing.T) {
	t.Parallel()
	q := newQualityRun(t, "splink_fake_1000.yaml")
	_, want := fixtureConfig(t, q.dir, "splink_fake_1000.yaml")
	out := filepath.Join(t.TempDir(), "model.json")
	cmd := exec.Command(binary, "model", "estimate", "--config", q.cfg, "--source", "splink-fake-1000", "-o", out)
	cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
	summary, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("careindex model estimate: %v\n%s", err, summary)
	}
	for _, s := range []string{"prior (lambda)", "date_of_birth", "one_component", "email_user", "1000 rows, 8 quarantined"} {
		if !strings.Contains(string(summary), s) {
			t.Errorf("the summary lacks %q:\n%s", s, summary)
		}
	}
	for _, v := range []string{"ROBERT", "robert", "LONDON", "London", "@"} {
		if strings.Contains(string(summary), v) {
			t.Errorf("the summary carries a patient value (%q)", v)
		}
	}
	got, fixture := readModel(t, out), readModel(t, want)
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-3*math.Max(math.Abs(a), math.Abs(b)) }
	if !close(got.Prior, fixture.Prior) {
		t.Errorf("prior %v, the fixture's %v", got.Prior, fixture.Prior)
	}
	if len(got.Fields) != len(fixture.Fields) {
		t.Errorf("%d fields, the fixture has %d", len(got.Fields), len(fixture.Fields))
	}
	for f, fp := range fixture.Fields {
		for l, lp := range fp.Levels {
			g := got.Fields[f].Levels[l]
			if !close(g.M, lp.M) || !close(g.U, lp.U) {
				t.Errorf("%s %s: m %v u %v, the fixture's m %v u %v", f, l, g.M, g.U, lp.M, lp.U)
			}
		}
	}
	gb, _ := json.Marshal(got.Blocking)
	fb, _ := json.Marshal(fixture.Blocking)
	if !bytes.Equal(gb, fb) {
		t.Errorf("blocking rules %s, the fixture's %s", gb, fb)
	}

	// Without -o the model is the standard output.
	cmd = exec.Command(binary, "model", "estimate", "--config", q.cfg)
	cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("careindex model estimate: %v\n%s", err, stderr.String())
	}
	var m match.Model
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil || m.Validate() != nil || !close(m.Prior, fixture.Prior) {
		t.Errorf("standard output is not the model (%v): %.200s", err, stdout.String())
	}
	if !strings.Contains(stderr.String(), "prior (lambda)") {
		t.Errorf("no summary on standard error:\n%s", stderr.String())
	}

	// A source that is not there is a usage error.
	cmd = exec.Command(binary, "model", "estimate", "--config", q.cfg, "--source", "nope")
	cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("an unknown source: %v, want exit code 2", err)
	}
}

func readModel(t *testing.T, path string) *match.Model {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m match.Model
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &m
}

// TestMatchingStability runs a quality fixture twice, the second time with
// a changed delivery: one record's postcode changed and one new duplicate
// of a person already linked. Every patient id survives, and the new
// record links to its person's existing patient.
func TestMatchingStability(t *testing.T) {
	t.Parallel()
	q := newQualityRun(t, "febrl1.yaml")
	q.run(t)
	before := q.patients(t)
	if len(before) == 0 {
		t.Fatal("nothing published")
	}

	path := filepath.Join(q.dir, "vectors", "febrl", "dataset1.csv")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	// rec-122 (org and dup-0) is one person in run 1.
	const org, dup, added = "rec-122-org", "rec-122-dup-0", "rec-122-dup-9"
	if before[org] == 0 || before[org] != before[dup] {
		t.Fatalf("run 1 did not link %s and %s (%d, %d)", org, dup, before[org], before[dup])
	}
	var orgFields []string
	changed := false
	for i, l := range lines {
		f := strings.Split(l, ", ")
		switch f[0] {
		case org:
			orgFields = append([]string(nil), f...)
		case "rec-223-org":
			f[7] = "4999" // a new postcode
			lines[i] = strings.Join(f, ", ")
			changed = true
		}
	}
	if orgFields == nil || !changed {
		t.Fatal("fixture rows not found")
	}
	// The new duplicate: another local id, its given name mistyped
	// ("lachlan" → "lahclan") and the street number left out.
	nf := append([]string(nil), orgFields...)
	nf[0], nf[1], nf[3] = added, "lahclan", ""
	lines = append(lines, strings.Join(nf, ", "))
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	q.run(t)
	after := q.patients(t)
	if len(after) != len(before)+1 {
		t.Errorf("%d records published, want %d", len(after), len(before)+1)
	}
	moved := 0
	for id, pid := range before {
		if after[id] != pid {
			moved++
			if moved <= 5 {
				t.Errorf("%s moved from patient %d to %d", id, pid, after[id])
			}
		}
	}
	if moved > 0 {
		t.Errorf("%d of %d records changed patient", moved, len(before))
	}
	if after[added] != before[org] {
		t.Errorf("the new duplicate %s got patient %d, want %s's %d", added, after[added], org, before[org])
	}
	if got := q.ops(t, `SELECT duplicates FROM run_source WHERE run_id = (SELECT max(run_id) FROM run)`); got != q.ops(t,
		`SELECT duplicates FROM run_source WHERE run_id = (SELECT min(run_id) FROM run)`)+1 {
		t.Errorf("duplicates after the second delivery: %d", got)
	}
	// A third run with nothing new changes nothing.
	if out := q.run(t); !strings.Contains(out, "unchanged") {
		t.Errorf("a repeated run was not unchanged:\n%s", out)
	}
	// careindex status shows the duplicates of each run.
	cmd := exec.Command(binary, "status", "--config", q.cfg, "--store", "sqlite:"+q.store)
	cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("careindex status: %v", err)
	}
	want := fmt.Sprint(q.ops(t, `SELECT duplicates FROM run_source WHERE run_id = 2`))
	if !strings.Contains(string(out), "duplicates") || !regexp.MustCompile(`febrl1\s+new\s+1001\s+998\s+3\s+0\s+0\s+`+want+`\b`).Match(out) {
		t.Errorf("status does not show the duplicates (%s):\n%s", want, out)
	}
}

// TestModelEstimateFromStore runs careindex model estimate --from-store:
// before any run there is nothing to learn from; after the Splink fixture's
// run it learns from the 992 records the linker filed the model that the
// same records give when read from the delivery (the fixture's).
func TestModelEstimateFromStore(t *testing.T) {
	t.Parallel()
	q := newQualityRun(t, "splink_fake_1000.yaml")
	_, want := fixtureConfig(t, q.dir, "splink_fake_1000.yaml")
	estimate := func(args ...string) (int, string, string) {
		cmd := exec.Command(binary, append([]string{"model", "estimate", "--config", q.cfg, "--store", "sqlite:" + q.store}, args...)...)
		cmd.Env = append(os.Environ(), "CAREINDEX_STORE=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	if code, _, stderr := estimate("--from-store"); code != 1 || !strings.Contains(stderr, "0 record(s) in the match state") {
		t.Errorf("--from-store on an empty store: exit %d, want 1 and why:\n%s", code, stderr)
	}
	if code, _, stderr := estimate("--from-store", "--source", "splink-fake-1000"); code != 2 {
		t.Errorf("--from-store with --source: exit %d, want 2:\n%s", code, stderr)
	}
	q.run(t)
	out := filepath.Join(t.TempDir(), "model.json")
	code, summary, stderr := estimate("--from-store", "-o", out)
	if code != 0 {
		t.Fatalf("careindex model estimate --from-store: exit %d\n%s%s", code, summary, stderr)
	}
	if !strings.Contains(summary, "match state: 992 records") || !strings.Contains(summary, "prior (lambda)") {
		t.Errorf("the summary lacks the records read or the model:\n%s", summary)
	}
	for _, v := range []string{"ROBERT", "robert", "LONDON", "London", "@"} {
		if strings.Contains(summary, v) {
			t.Errorf("the summary carries a patient value (%q)", v)
		}
	}
	got, fixture := readModel(t, out), readModel(t, want)
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-3*math.Max(math.Abs(a), math.Abs(b)) }
	if !close(got.Prior, fixture.Prior) {
		t.Errorf("prior %v, the fixture's %v", got.Prior, fixture.Prior)
	}
	for f, fp := range fixture.Fields {
		for l, lp := range fp.Levels {
			if g := got.Fields[f].Levels[l]; !close(g.M, lp.M) || !close(g.U, lp.U) {
				t.Errorf("%s %s: m %v u %v, the fixture's m %v u %v", f, l, g.M, g.U, lp.M, lp.U)
			}
		}
	}
}
