package match

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func mustMatcher(t *testing.T, m *Model) *Matcher {
	t.Helper()
	mt, err := NewMatcher(m, DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

func level(c Comparison, field string) string {
	for _, f := range c.Fields {
		if f.Field == field {
			return f.Level
		}
	}
	return "absent"
}

func TestComparisonLevels(t *testing.T) {
	m := mustMatcher(t, DefaultModel())
	base := Record{FamilyName: "THOMPSON", GivenName: "SARAH", DateOfBirth: "1971-06-24", Sex: "female",
		Postcode: "LS1 4AP", Address: "12 Cardigan Road Leeds", GPPractice: "B86001"}
	cases := []struct {
		name  string
		edit  func(*Record)
		field string
		want  string
	}{
		{"family exact", func(r *Record) {}, "family_name", "exact"},
		{"family typo", func(r *Record) { r.FamilyName = "THOMSON" }, "family_name", "jw92"},
		{"family far typo", func(r *Record) { r.FamilyName = "THOMAS" }, "family_name", "jw80"},
		{"family phonetic", func(r *Record) { r.FamilyName = "TANPSAN" }, "family_name", "phonetic"},
		{"family letters scrambled", func(r *Record) { r.FamilyName = "NOSPMOHT" }, "family_name", "letters"},
		{"family letters one off", func(r *Record) { r.FamilyName = "NOSPMOHTT" }, "family_name", "letters"},
		{"family letters two off", func(r *Record) { r.FamilyName = "NOSPMOHXX" }, "family_name", "different"},
		{"given letters scrambled", func(r *Record) { r.GivenName = "HARAS" }, "given_name", "letters"},
		{"family different", func(r *Record) { r.FamilyName = "WILLIAMS" }, "family_name", "different"},
		{"double-barrelled", func(r *Record) { r.FamilyName = "BROWN-THOMPSON" }, "family_name", "jw80"},
		{"family missing", func(r *Record) { r.FamilyName = "" }, "family_name", "null"},
		{"names swapped", func(r *Record) { r.FamilyName, r.GivenName = "SARAH", "THOMPSON" }, "given_name", "swapped"},
		{"names swapped with typo", func(r *Record) { r.FamilyName, r.GivenName = "SARA", "THOMPSON" }, "family_name", "swapped"},
		{"case and punctuation", func(r *Record) { r.FamilyName = " thompson " }, "family_name", "exact"},
		{"dob exact", func(r *Record) {}, "date_of_birth", "exact"},
		{"dob transposed", func(r *Record) { r.DateOfBirth = "1971-06-24" }, "date_of_birth", "exact"},
		{"dob month off", func(r *Record) { r.DateOfBirth = "1971-05-24" }, "date_of_birth", "one_component"},
		{"dob year off", func(r *Record) { r.DateOfBirth = "1917-06-24" }, "date_of_birth", "one_component"},
		{"dob within a month", func(r *Record) { r.DateOfBirth = "1971-07-10" }, "date_of_birth", "within_month"},
		{"dob near", func(r *Record) { r.DateOfBirth = "1971-08-02" }, "date_of_birth", "within_year"},
		{"dob within ten years", func(r *Record) { r.DateOfBirth = "1980-01-13" }, "date_of_birth", "within_10_years"},
		{"dob ten years off", func(r *Record) { r.DateOfBirth = "1961-01-13" }, "date_of_birth", "within_10_years"},
		{"dob different", func(r *Record) { r.DateOfBirth = "1960-01-13" }, "date_of_birth", "different"},
		{"dob impossible", func(r *Record) { r.DateOfBirth = "1971-02-30" }, "date_of_birth", "null"},
		{"sex different", func(r *Record) { r.Sex = "male" }, "sex", "different"},
		{"sex unknown", func(r *Record) { r.Sex = "unknown" }, "sex", "null"},
		{"postcode unnormalised", func(r *Record) { r.Postcode = "ls14ap" }, "postcode", "full"},
		{"postcode sector", func(r *Record) { r.Postcode = "LS1 4BD" }, "postcode", "sector"},
		{"postcode district", func(r *Record) { r.Postcode = "LS1 6AB" }, "postcode", "district"},
		{"postcode different", func(r *Record) { r.Postcode = "M1 1AE" }, "postcode", "different"},
		{"postcode ZZ99", func(r *Record) { r.Postcode = "ZZ99 3VZ" }, "postcode", "null"},
		{"address typo", func(r *Record) { r.Address = "12 Cradigan Rd, LEEDS" }, "address", "high"},
		{"address abbreviated", func(r *Record) { r.Address = "12 cardigan rd leeds" }, "address", "exact"},
		{"address partly", func(r *Record) { r.Address = "14 Cardigan Road Bradford" }, "address", "some"},
		{"address different", func(r *Record) { r.Address = "3 Mill Lane Otley" }, "address", "different"},
		{"gp unknown", func(r *Record) { r.GPPractice = "V81999" }, "gp_practice", "null"},
		{"gp different", func(r *Record) { r.GPPractice = "B86002" }, "gp_practice", "different"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := base
			c.edit(&b)
			if got := level(m.Score(base, b), c.field); got != c.want {
				t.Errorf("%s: level %q, want %q", c.field, got, c.want)
			}
		})
	}
	// names alike both ways round, but equal crossed
	a, b := base, base
	a.FamilyName, a.GivenName = "MORGAN", "LOGAN"
	b.FamilyName, b.GivenName = "LOGAN", "MORGAN"
	if got := level(m.Score(a, b), "family_name"); got != "swapped" {
		t.Errorf("MORGAN LOGAN and LOGAN MORGAN: family_name %q, want swapped", got)
	}
	// within a month over a new year; a short name's letters prove nothing
	a, b = base, base
	a.DateOfBirth, b.DateOfBirth = "1971-12-20", "1972-01-05"
	a.GivenName, b.GivenName = "ABI", "IBA"
	if got := level(m.Score(a, b), "date_of_birth"); got != "within_month" {
		t.Errorf("dates 16 days apart over a new year: %q, want within_month", got)
	}
	if got := level(m.Score(a, b), "given_name"); got != "different" {
		t.Errorf("ABI and IBA: given_name %q, want different (too short for letters)", got)
	}
	// day and month transposed
	a, b = base, base
	a.DateOfBirth, b.DateOfBirth = "1971-03-04", "1971-04-03"
	if got := level(m.Score(a, b), "date_of_birth"); got != "transposed" {
		t.Errorf("transposed dates: %q", got)
	}
	// opaque (non-UK) postcodes still count
	a.Postcode, b.Postcode = "2022", "2022"
	if got := level(m.Score(a, b), "postcode"); got != "full" {
		t.Errorf("equal opaque postcodes: %q", got)
	}
	b.Postcode = "2012"
	if got := level(m.Score(a, b), "postcode"); got != "sector" {
		t.Errorf("opaque postcodes one keying error apart: %q", got)
	}
	b.Postcode = "3999"
	if got := level(m.Score(a, b), "postcode"); got != "different" {
		t.Errorf("different opaque postcodes: %q", got)
	}
}

func TestScoreIsSymmetricAndConsistent(t *testing.T) {
	m := mustMatcher(t, DefaultModel())
	s := newSynth(500, 7)
	var recs []Record
	for r := range s.records(400, nil) {
		recs = append(recs, r)
	}
	for i := 0; i+1 < len(recs); i += 2 {
		ab, ba := m.Score(recs[i], recs[i+1]), m.Score(recs[i+1], recs[i])
		if ab.Weight != ba.Weight || !reflect.DeepEqual(ab.Fields, ba.Fields) {
			t.Fatalf("Score not symmetric on %d, %d: %v vs %v", i, i+1, ab, ba)
		}
		sum := DefaultModel().Prior
		_ = sum
		total := 0.0
		for _, f := range ab.Fields {
			total += f.Weight
		}
		prior := ab.Weight - total
		if diff := prior - (-19.931568); diff > 1e-3 || diff < -1e-3 {
			t.Fatalf("weight %v is not the prior plus the fields' weights (%v)", ab.Weight, total)
		}
	}
}

// linkPairs links records with the default model and returns the clusters
// as sorted ID lists and the review pairs as "A-B" strings.
func linkPairs(t *testing.T, recs []Record) ([][]string, []string, *Result) {
	t.Helper()
	res, err := Link(context.Background(), FromSlice(recs), DefaultModel(), DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	var clusters [][]string
	for _, c := range res.Clusters {
		ids := slices.Clone(c.IDs)
		slices.Sort(ids)
		clusters = append(clusters, ids)
	}
	var review []string
	for _, p := range res.Review {
		review = append(review, p.AID+"-"+p.BID+":"+strings.Join(p.Reasons, ","))
	}
	return clusters, review, res
}

func TestSafetyRules(t *testing.T) {
	person := Record{FamilyName: "OKONKWO", GivenName: "ADAEZE", DateOfBirth: "1988-03-14", Sex: "female",
		Postcode: "LS6 2QD", Address: "7 Cardigan Road", GPPractice: "B86001"}
	with := func(id string, edit func(*Record)) Record {
		r := person
		r.ID = id
		if edit != nil {
			edit(&r)
		}
		return r
	}
	t.Run("same demographics links", func(t *testing.T) {
		clusters, review, _ := linkPairs(t, []Record{with("a", nil), with("b", nil)})
		if len(clusters) != 1 || len(review) != 0 {
			t.Fatalf("clusters %v review %v", clusters, review)
		}
	})
	t.Run("different valid NHS numbers never auto-link", func(t *testing.T) {
		clusters, review, _ := linkPairs(t, []Record{
			with("a", func(r *Record) { r.NHSNumber = "9434765919" }),
			with("b", func(r *Record) { r.NHSNumber = "4010232137" }),
		})
		if len(clusters) != 0 || len(review) != 1 || !strings.Contains(review[0], CautionDifferentNHS) {
			t.Fatalf("clusters %v review %v", clusters, review)
		}
	})
	t.Run("a cluster never joins two NHS numbers", func(t *testing.T) {
		clusters, review, _ := linkPairs(t, []Record{
			with("a", func(r *Record) { r.NHSNumber = "9434765919" }),
			with("b", nil), // no NHS number: links to either
			with("c", func(r *Record) { r.NHSNumber = "4010232137" }),
		})
		if len(clusters) != 1 || len(clusters[0]) != 2 {
			t.Fatalf("clusters %v", clusters)
		}
		if len(review) != 2 {
			t.Fatalf("review %v, want the pair a–c and the held link", review)
		}
	})
	t.Run("invalid NHS number is ignored", func(t *testing.T) {
		clusters, _, _ := linkPairs(t, []Record{
			with("a", func(r *Record) { r.NHSNumber = "9434765919" }),
			with("b", func(r *Record) { r.NHSNumber = "9434765918" }), // bad check digit
		})
		if len(clusters) != 1 {
			t.Fatalf("clusters %v", clusters)
		}
	})
	t.Run("same NHS number with different demographics goes to review", func(t *testing.T) {
		clusters, review, _ := linkPairs(t, []Record{
			with("a", func(r *Record) { r.NHSNumber = "9434765919" }),
			{ID: "b", NHSNumber: "9434765919", FamilyName: "PRZYBYLSKI", GivenName: "TOMASZ", DateOfBirth: "1951-11-02",
				Sex: "male", Postcode: "M1 1AE", Address: "3 Mill Lane"},
		})
		if len(clusters) != 0 || len(review) != 1 || !strings.Contains(review[0], CautionNHSConflict) {
			t.Fatalf("clusters %v review %v", clusters, review)
		}
	})
	t.Run("same NHS number and agreeing demographics links", func(t *testing.T) {
		clusters, _, _ := linkPairs(t, []Record{
			with("a", func(r *Record) { r.NHSNumber = "9434765919" }),
			with("b", func(r *Record) { r.NHSNumber = "9434765919"; r.FamilyName = "OKONKWO-SMITH"; r.Postcode = "" }),
		})
		if len(clusters) != 1 {
			t.Fatalf("clusters %v", clusters)
		}
	})
	t.Run("placeholder identities never auto-link", func(t *testing.T) {
		ph := func(id, given string) Record {
			return Record{ID: id, FamilyName: "UNKNOWN", GivenName: given, DateOfBirth: "1970-01-01", Sex: "male",
				Postcode: "LS1 4AP", Address: "Leeds General Infirmary Great George Street", GPPractice: "V81999"}
		}
		clusters, review, res := linkPairs(t, []Record{ph("a", "ALPHA"), ph("b", "ALPHA"), ph("c", "BRAVO")})
		if len(clusters) != 0 {
			t.Fatalf("placeholder records linked: %v", clusters)
		}
		for _, r := range review {
			if !strings.Contains(r, CautionPlaceholder) {
				t.Errorf("review %q without the placeholder caution", r)
			}
		}
		_ = res
		m := mustMatcher(t, DefaultModel())
		c := m.Score(ph("a", "ALPHA"), ph("b", "ALPHA"))
		if level(c, "family_name") != "null" || level(c, "given_name") != "null" || level(c, "gp_practice") != "null" {
			t.Errorf("placeholder names or V81999 gave evidence: %+v", c.Fields)
		}
		if !slices.Contains(c.Cautions, CautionPlaceholder) {
			t.Errorf("cautions %v", c.Cautions)
		}
		if keys := m.BlockingKeys(ph("a", "ALPHA")); slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "UNKNOWN") || strings.Contains(k, "ALP") }) {
			t.Errorf("placeholder names made blocking keys: %v", keys)
		}
	})
	t.Run("a real Charlie is not a placeholder", func(t *testing.T) {
		clusters, _, _ := linkPairs(t, []Record{
			with("a", func(r *Record) { r.GivenName = "CHARLIE"; r.DateOfBirth = "1990-01-01" }),
			with("b", func(r *Record) { r.GivenName = "CHARLIE"; r.DateOfBirth = "1990-01-01" }),
		})
		if len(clusters) != 1 {
			t.Fatalf("clusters %v", clusters)
		}
	})
	t.Run("ZZ99 postcodes never agree", func(t *testing.T) {
		m := mustMatcher(t, DefaultModel())
		a := Record{FamilyName: "LEE", Postcode: "ZZ99 3VZ"}
		if got := level(m.Score(a, a), "postcode"); got != "null" {
			t.Errorf("ZZ99 level %q", got)
		}
		a.Postcode = "zz993wz"
		if got := level(m.Score(a, a), "postcode"); got != "null" {
			t.Errorf("ZZ99 level %q", got)
		}
		if keys := m.BlockingKeys(Record{GivenName: "A", FamilyName: "B", Postcode: "ZZ99 3VZ"}); slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "ZZ99") }) {
			t.Errorf("ZZ99 blocking key: %v", keys)
		}
	})
}

func TestMatcherDecisions(t *testing.T) {
	ctx := context.Background()
	m := mustMatcher(t, DefaultModel())
	pat := Record{ID: "r1", FamilyName: "HUSSAIN", GivenName: "AMINA", DateOfBirth: "2001-09-12", Sex: "female", Postcode: "BD7 1DP"}
	twin := Record{ID: "r2", FamilyName: "HUSSAIN", GivenName: "AMIRA", DateOfBirth: "2001-09-12", Sex: "female", Postcode: "BD7 1DP"}
	other := Record{ID: "r3", FamilyName: "NOWAK", GivenName: "PIOTR", DateOfBirth: "1966-04-30", Sex: "male", Postcode: "LS9 7TF"}

	if d := m.Match(ctx, pat, nil); d.Kind != KindNew {
		t.Errorf("no candidates: %v", d.Kind)
	}
	d := m.Match(ctx, pat, []Candidate{{PatientID: 1, Record: pat}, {PatientID: 3, Record: other}})
	if d.Kind != KindLink || d.PatientID != 1 || d.CandidateID != "r1" || d.Evidence == nil {
		t.Errorf("exact copy: %+v", d)
	}
	d = m.Match(ctx, other, []Candidate{{PatientID: 1, Record: pat}})
	if d.Kind != KindNew || d.PatientID != 0 {
		t.Errorf("stranger: %+v", d)
	}
	// the same record under two patients is ambiguous
	d = m.Match(ctx, pat, []Candidate{{PatientID: 1, Record: pat}, {PatientID: 2, Record: pat}})
	if d.Kind != KindReview || !slices.Contains(d.Reasons, CautionAmbiguous) || len(d.Others) != 1 {
		t.Errorf("ambiguous: %+v", d)
	}
	// a patient with another NHS number on one of its records is held back
	withNHS := pat
	withNHS.NHSNumber = "9434765919"
	otherNHS := pat
	otherNHS.ID, otherNHS.NHSNumber = "r4", "4010232137"
	noNHS := pat
	noNHS.ID = "r5"
	d = m.Match(ctx, withNHS, []Candidate{{PatientID: 7, Record: noNHS}, {PatientID: 7, Record: otherNHS}})
	if d.Kind != KindReview || d.PatientID != 7 {
		t.Errorf("patient with a different NHS number: %+v", d)
	}
	_ = twin

	// MatchBatch through an index, with a giant key skipped
	idx := NewIndex(m)
	idx.Add(1, pat)
	idx.Add(3, other)
	for k := range m.MaxBlock() + 1 {
		idx.Add(int64(100+k), Record{ID: "x", FamilyName: "ZED", GivenName: "Q", DateOfBirth: "1950-05-05"})
	}
	typo := pat
	typo.ID, typo.FamilyName = "new", "HUSSIAN"
	ds, rep, err := m.MatchBatch(ctx, []Record{typo, {ID: "y", FamilyName: "ZED", GivenName: "Q", DateOfBirth: "1950-05-05"}}, idx)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Kind != KindLink || ds[0].PatientID != 1 {
		t.Errorf("batch typo: %+v", ds[0])
	}
	if rep.OversizedKeys == 0 {
		t.Errorf("report %+v: want the giant key reported", rep)
	}
	if ds[1].Kind == KindLink {
		t.Errorf("record in a giant block only: %+v", ds[1])
	}
	if sig := m.KeySignature(); len(sig) != 16 {
		t.Errorf("signature %q", sig)
	}
}

func TestModelJSON(t *testing.T) {
	m := DefaultModel()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Model
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, &back) {
		t.Fatalf("round trip changed the model")
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultModel()
	bad.Prior = 2
	fp := bad.Fields["family_name"]
	delete(fp.Levels, "jw92")
	fp.Levels["typo"] = LevelParams{M: 0.1, U: 0.1}
	bad.Fields["family_name"] = fp
	bad.Fields["shoe_size"] = FieldParams{}
	bad.Blocking = append(bad.Blocking, BlockingRule{Name: "x", Parts: []string{"favourite_colour"}})
	err = bad.Validate()
	if err == nil {
		t.Fatal("invalid model accepted")
	}
	for _, want := range []string{"prior", "jw92", "typo", "shoe_size", "favourite_colour"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// a model without a field does not compare it
	small := DefaultModel()
	delete(small.Fields, "sex")
	mt := mustMatcher(t, small)
	if level(mt.Score(Record{Sex: "male"}, Record{Sex: "female"}), "sex") != "absent" {
		t.Error("a field left out of the model was compared")
	}
}

// TestModelWithoutNewerLevels loads a model kept before date_of_birth had
// its within_10_years and within_month levels and the names their letters
// level: it is valid, and each pair in a newer level weighs as the level
// it fell in before did.
func TestModelWithoutNewerLevels(t *testing.T) {
	old := DefaultModel()
	for field, lv := range map[string][]string{"date_of_birth": {"within_10_years", "within_month"}, "family_name": {"letters"}, "given_name": {"letters"}} {
		fp := old.Fields[field]
		for _, l := range lv {
			delete(fp.Levels, l)
		}
		old.Fields[field] = fp
	}
	if err := old.Validate(); err != nil {
		t.Fatalf("a model without the newer levels: %v", err)
	}
	mt := mustMatcher(t, old)
	cases := []struct {
		a, b         Record
		field, level string
		weighsAs     string
	}{
		{Record{DateOfBirth: "1971-06-24"}, Record{DateOfBirth: "1975-01-02"}, "date_of_birth", "within_10_years", "different"},
		{Record{DateOfBirth: "1971-06-24"}, Record{DateOfBirth: "1971-07-10"}, "date_of_birth", "within_month", "within_year"},
		{Record{FamilyName: "JONES"}, Record{FamilyName: "JOSEN"}, "family_name", "letters", "different"},
		{Record{GivenName: "HARRY"}, Record{GivenName: "RARHRY"}, "given_name", "letters", "different"},
	}
	for _, c := range cases {
		cmp := mt.Score(c.a, c.b)
		lp := old.Fields[c.field].Levels[c.weighsAs]
		got, want := cmp.Fields[fieldIndex(c.field)].Weight, math.Log2(lp.M/lp.U)
		if level(cmp, c.field) != c.level || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: level %s weight %v, want %s weighing as %s (%v)", c.field, level(cmp, c.field), got, c.level, c.weighsAs, want)
		}
	}
}

// TestEmailBlockingParts checks the email_user and email_domain parts
// (the address's parts before and after the @, none without one) and
// email_alnum (its letters and digits).
func TestEmailBlockingParts(t *testing.T) {
	m := DefaultModel()
	m.Blocking = []BlockingRule{{Name: "user", Parts: []string{"email_user"}}, {Name: "domain", Parts: []string{"email_domain"}},
		{Name: "alnum", Parts: []string{"email_alnum"}}}
	mt := mustMatcher(t, m)
	for _, c := range []struct {
		email string
		want  []string
	}{
		{"J.Smith@Example.org", []string{"user:j.smith", "domain:example.org", "alnum:jsmithexampleorg"}},
		{"j.smith@", []string{"user:j.smith", "alnum:jsmith"}},
		{"@example.org", []string{"domain:example.org", "alnum:exampleorg"}},
		{"jsmith.example.org", []string{"alnum:jsmithexampleorg"}},
		{"josé.4@mail.es", []string{"user:josé.4", "domain:mail.es", "alnum:josé4mailes"}},
		{"_.-", nil},
	} {
		if got := mt.BlockingKeys(Record{Email: c.email}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: keys %q, want %q", c.email, got, c.want)
		}
	}
}

func TestThresholds(t *testing.T) {
	if _, err := NewMatcher(DefaultModel(), Thresholds{AutoLink: Probability(0.5), Review: Probability(0.9)}); err == nil {
		t.Error("review above auto-link accepted")
	}
	if _, err := NewMatcher(DefaultModel(), Thresholds{AutoLink: Probability(1), Review: Probability(0.5)}); err == nil {
		t.Error("probability 1 accepted")
	}
	if _, err := NewMatcher(DefaultModel(), Thresholds{AutoLink: Weight(10), Review: Weight(-3)}); err != nil {
		t.Error(err)
	}
}

// TestLinkSynthetic links a synthetic population with an estimated model
// and checks quality, determinism across worker counts, and the stats.
func TestLinkSynthetic(t *testing.T) {
	ctx := context.Background()
	s := newSynth(20_000, 3)
	var truth []int32
	d, err := NewDataset(ctx, s.records(20_000, &truth))
	if err != nil {
		t.Fatal(err)
	}
	model, rep, err := d.Estimate(ctx, EstimateOptions{RandomPairs: 500_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(model.TermFrequencies["family_name"].Values) == 0 {
		t.Error("no family name frequencies estimated")
	}
	res1, err := d.Link(ctx, model, DefaultThresholds(), LinkOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	res4, err := d.Link(ctx, model, DefaultThresholds(), LinkOptions{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res1, res4) {
		t.Error("results depend on the number of workers")
	}
	tp, fp, fn := synthPairwise(res1, truth)
	p, r := float64(tp)/float64(tp+fp), float64(tp)/float64(tp+fn)
	t.Logf("synthetic 20k: precision %.4f recall %.4f (prior %.3g, expected links %.0f, compared %d)", p, r, model.Prior, rep.ExpectedLinks, res1.Stats.Compared)
	if p < 0.995 || r < 0.9 {
		t.Errorf("precision %.4f recall %.4f", p, r)
	}
	// the model round-trips through JSON and links the same
	b, _ := json.Marshal(model)
	var back Model
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	res2, err := d.Link(ctx, &back, DefaultThresholds(), LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Clusters) != len(res1.Clusters) {
		t.Errorf("JSON round trip: %d clusters, was %d", len(res2.Clusters), len(res1.Clusters))
	}
}

func TestGiantBlocksSkipped(t *testing.T) {
	model := DefaultModel()
	model.MaxBlock = 10
	var recs []Record
	for i := range 30 { // 30 people born the same day: a giant dob block
		recs = append(recs, Record{ID: string(rune('a' + i)), FamilyName: strings.Repeat("X", i+1) + "Q", DateOfBirth: "1970-01-01"})
	}
	res, err := Link(context.Background(), FromSlice(recs), model, DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Stats.Rules {
		if r.Rule == "dob" {
			if !reflect.DeepEqual(r.SkippedBlocks, []int{30}) || r.Blocks != 0 {
				t.Errorf("dob rule stats %+v", r)
			}
			return
		}
	}
	t.Error("no dob rule stats")
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := newSynth(200_000, 1)
	if _, err := Link(ctx, s.records(200_000, nil), DefaultModel(), DefaultThresholds()); err == nil {
		t.Error("cancelled link succeeded")
	}
}

// TestCompareSymmetric checks that a pair compares the same whichever
// record comes first: names crossed one way (the family name in the other
// record's given name) and the other, with and without the other names,
// and every pair of records that share a person in a synthetic file and
// the fixtures' Splink records.
func TestCompareSymmetric(t *testing.T) {
	d := newDataset(0)
	for _, r := range []Record{
		{FamilyName: "MORGAN", DateOfBirth: "1971-06-24"},
		{FamilyName: "JONES", GivenName: "MORGAN", DateOfBirth: "1971-06-24"},
		{GivenName: "MORGAN", DateOfBirth: "1971-06-24"},
		{FamilyName: "LOGAN", GivenName: "MORGAN"},
		{FamilyName: "MORGAN", GivenName: "LOGAN"},
		{FamilyName: "MORGAN", GivenName: "LOGEN"},
		{FamilyName: "MORGEN", GivenName: "LOGAN", Email: "l.morgan@example.org"},
	} {
		d.add(r)
	}
	recs, _ := splink(t, "fake_1000.csv")
	for _, r := range recs {
		d.add(r)
	}
	s := newSynth(3000, 7)
	var truth []int32
	for r := range s.records(3000, &truth) {
		d.add(r)
	}
	check := func(i, j uint32) {
		a, b := d.row(i), d.row(j)
		g1, f1 := d.compare(a, b, nil)
		g2, f2 := d.compare(b, a, nil)
		if g1 != g2 || f1 != f2 {
			t.Errorf("rows %d and %d: %v (flags %b) one way, %v (flags %b) the other", i, j, g1, f1, g2, f2)
		}
	}
	n := uint32(d.Len())
	for i := range uint32(7 + 1000) {
		for j := i + 1; j < 7+1000; j++ {
			check(i, j)
		}
	}
	first := map[int32]uint32{}
	for k, p := range truth {
		i := uint32(7 + 1000 + k)
		if f, ok := first[p]; ok {
			check(f, i)
		} else {
			first[p] = i
		}
	}
	if n != uint32(7+1000+3000) {
		t.Fatalf("%d rows", n)
	}
}
