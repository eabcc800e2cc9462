package match

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careindex/careindex/fixtures/csvtable"
)

const vectors = "../../fixtures/vectors"

// readCSV reads a CSV file with a header into maps, trimming every field
// (FEBRL files put a space before each value).
func readCSV(t testing.TB, path string) []map[string]string {
	rows := csvtable.Read(t, path, true)
	out := make([]map[string]string, len(rows))
	for i, r := range rows {
		out[i] = r.Col
	}
	return out
}

// febrl reads a FEBRL dataset: records and each record's entity (the N of
// rec-N-org / rec-N-dup-k). The Australian postcode goes into Postcode,
// where it is compared as an opaque code; street number, street, address
// line 2 and suburb make the address. soc_sec_id is not used: it is not
// an NHS number, and careindex records have nothing like it.
func febrl(t testing.TB, name string) ([]Record, []string) {
	rows := readCSV(t, filepath.Join(vectors, "febrl", name))
	recs := make([]Record, len(rows))
	truth := make([]string, len(rows))
	for i, r := range rows {
		dob := r["date_of_birth"]
		if len(dob) == 8 {
			dob = dob[:4] + "-" + dob[4:6] + "-" + dob[6:]
		}
		recs[i] = Record{
			ID:          r["rec_id"],
			GivenName:   r["given_name"],
			FamilyName:  r["surname"],
			DateOfBirth: dob, // impossible dates are treated as missing
			Postcode:    r["postcode"],
			Address:     strings.Join([]string{r["street_number"], r["address_1"], r["address_2"], r["suburb"]}, " "),
		}
		parts := strings.Split(r["rec_id"], "-")
		truth[i] = parts[1]
	}
	return recs, truth
}

// splink reads a Splink fake_1000 file: first_name, surname, dob, the city
// as the address and email; cluster is the truth.
func splink(t testing.TB, name string) ([]Record, []string) {
	rows := readCSV(t, filepath.Join(vectors, "splink", name))
	recs := make([]Record, len(rows))
	truth := make([]string, len(rows))
	for i, r := range rows {
		recs[i] = Record{
			ID:          r["unique_id"],
			GivenName:   r["first_name"],
			FamilyName:  r["surname"],
			DateOfBirth: r["dob"],
			Address:     r["city"],
			Email:       r["email"],
		}
		truth[i] = r["cluster"]
	}
	return recs, truth
}

// pairwise scores clusters against the truth: precision, recall and F1
// over within-cluster pairs.
func pairwise(res *Result, truth []string) (tp, fp, fn int, precision, recall, f1 float64) {
	pred := map[[2]int]bool{}
	for _, c := range res.Clusters {
		for a := 0; a < len(c.Records); a++ {
			for b := a + 1; b < len(c.Records); b++ {
				pred[[2]int{c.Records[a], c.Records[b]}] = true
			}
		}
	}
	byEntity := map[string][]int{}
	for i, e := range truth {
		byEntity[e] = append(byEntity[e], i)
	}
	actual := 0
	for _, members := range byEntity {
		actual += len(members) * (len(members) - 1) / 2
	}
	for p := range pred {
		if truth[p[0]] == truth[p[1]] {
			tp++
		} else {
			fp++
		}
	}
	fn = actual - tp
	precision = float64(tp) / float64(max(tp+fp, 1))
	recall = float64(tp) / float64(max(actual, 1))
	if precision+recall > 0 {
		f1 = 2 * precision * recall / (precision + recall)
	}
	return
}

type qualityCase struct {
	name                string
	load                func(testing.TB) ([]Record, []string)
	minPrecision, minF1 float64
}

// TestFEBRLTruth checks the truth derived from rec_id against the pair
// lists that come with the data.
func TestFEBRLTruth(t *testing.T) {
	for n := 1; n <= 3; n++ {
		_, truth := febrl(t, fmt.Sprintf("dataset%d.csv", n))
		count := map[string]int{}
		for _, e := range truth {
			count[e]++
		}
		derived := 0
		for _, c := range count {
			derived += c * (c - 1) / 2
		}
		listed := readCSV(t, filepath.Join(vectors, "febrl", "truth", fmt.Sprintf("dataset%d_true_pairs.csv", n)))
		if derived != len(listed) {
			t.Errorf("dataset%d: %d true pairs from rec_id, %d listed", n, derived, len(listed))
		}
	}
}

func TestQuality(t *testing.T) {
	cases := []qualityCase{
		// Floors sit just below what the library measured (see the log
		// lines): FEBRL 1–3 precision 1.000 and F1 0.997, 1.000, 0.997;
		// Splink fake_1000 precision 1.000, F1 0.974 (recall 0.949: many
		// of its records have one or two usable fields; the goal, 0.97, is
		// its floor); the demos file precision 1.000, F1 0.992.
		{"febrl1", func(t testing.TB) ([]Record, []string) { return febrl(t, "dataset1.csv") }, 0.995, 0.99},
		{"febrl2", func(t testing.TB) ([]Record, []string) { return febrl(t, "dataset2.csv") }, 0.995, 0.995},
		{"febrl3", func(t testing.TB) ([]Record, []string) { return febrl(t, "dataset3.csv") }, 0.995, 0.99},
		{"splink_fake_1000", func(t testing.TB) ([]Record, []string) { return splink(t, "fake_1000.csv") }, 0.995, 0.97},
		{"splink_demos_1000", func(t testing.TB) ([]Record, []string) { return splink(t, "fake_1000_from_splink_demos.csv") }, 0.995, 0.99},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, truth := tc.load(t)
			ctx := context.Background()
			d, err := NewDataset(ctx, FromSlice(recs))
			if err != nil {
				t.Fatal(err)
			}
			model, rep, err := d.Estimate(ctx, EstimateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := d.Link(ctx, model, DefaultThresholds(), LinkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tp, fp, fn, p, r, f1 := pairwise(res, truth)
			t.Logf("%s: precision %.4f recall %.4f F1 %.4f (tp %d fp %d fn %d; compared %d pairs; review %d; prior %.3g, expected links %.0f)",
				tc.name, p, r, f1, tp, fp, fn, res.Stats.Compared, len(res.Review), model.Prior, rep.ExpectedLinks)
			if testing.Verbose() {
				logModel(t, model)
			}
			if tc.name == "splink_fake_1000" {
				hardNegatives(t, res)
			}
			if p < tc.minPrecision || f1 < tc.minF1 {
				t.Errorf("precision %.4f (floor %.4f), F1 %.4f (floor %.4f)", p, tc.minPrecision, f1, tc.minF1)
			}
		})
	}
}

// hardNegatives checks the clerical labels of Splink's fake_1000: no pair
// labelled a non-match may end up in one cluster.
func hardNegatives(t *testing.T, res *Result) {
	cluster := map[string]int{}
	for k, c := range res.Clusters {
		for _, id := range c.IDs {
			cluster[id] = k + 1
		}
	}
	linked, negatives := 0, 0
	for _, l := range readCSV(t, filepath.Join(vectors, "splink", "fake_1000_labels.csv")) {
		if l["clerical_match_score"] != "0.0" {
			continue
		}
		negatives++
		if c := cluster[l["unique_id_l"]]; c != 0 && c == cluster[l["unique_id_r"]] {
			linked++
		}
	}
	t.Logf("clerically labelled non-matches linked: %d of %d", linked, negatives)
	if negatives == 0 || linked > 0 {
		t.Errorf("%d of %d labelled non-matches linked", linked, negatives)
	}
}

func logModel(t *testing.T, m *Model) {
	for _, f := range Fields() {
		fp, ok := m.Fields[f]
		if !ok {
			continue
		}
		var b strings.Builder
		for _, l := range Levels(f) {
			lp := fp.Levels[l]
			b.WriteString(" " + l + "=" + ftoa(lp.M) + "/" + ftoa(lp.U))
		}
		t.Logf("  %s:%s", f, b.String())
	}
}

func ftoa(x float64) string { return fmt.Sprintf("%.3g", x) }
