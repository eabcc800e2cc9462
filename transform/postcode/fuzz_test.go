package postcode_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/postcode"
)

func addSeeds(f *testing.F) {
	for _, s := range []string{
		"SW1A 2AA", "sw1a2aa", "M1 1AE", "GIR 0AA", "ZZ99 3VZ", "BFPO 801", "AI-2640",
		"KY1-1234", "", " ", "A1 9A", "Q1A 9AA", "SWO OAA", "\u212aT1 1AA", "SW1A\u00a02AA",
	} {
		f.Add(s)
	}
	for _, r := range readVectors(f, "postcodes.csv") {
		f.Add(r.Col["postcode"])
	}
	for _, r := range readVectors(f, "postcode_fix.csv") {
		f.Add(r.Col["input"])
	}
}

func FuzzNormalise(f *testing.F) {
	addSeeds(f)
	sentinels := []error{postcode.ErrEmpty, postcode.ErrFormat, postcode.ErrRule, postcode.ErrUnsupported}
	f.Fuzz(func(t *testing.T, s string) {
		if postcode.ValidOutcode(s) {
			if _, err := postcode.Normalise(s + " 0AA"); err != nil {
				t.Fatalf("ValidOutcode(%q) but Normalise(%q) = %v", s, s+" 0AA", err)
			}
		}
		p, err := postcode.Parse(s)
		if err != nil {
			n := 0
			for _, e := range sentinels {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 || p != (postcode.Parts{}) {
				t.Fatalf("Parse(%q) = %+v, %v", s, p, err)
			}
			if postcode.Outcode(s) != "" || postcode.Sector(s) != "" || postcode.IsPseudo(s) {
				t.Fatalf("invalid %q gives match keys", s)
			}
			return
		}
		pc := p.Postcode
		if len(pc) < 6 || len(pc) > 8 || strings.Count(pc, " ") != 1 || pc[len(pc)-4] != ' ' {
			t.Fatalf("Parse(%q).Postcode = %q, not normalised", s, pc)
		}
		if strings.ToUpper(pc) != pc {
			t.Fatalf("%q is not upper case", pc)
		}
		if !postcode.IsNormalised(pc) {
			t.Fatalf("IsNormalised(%q) = false", pc)
		}
		if again, err := postcode.Parse(pc); err != nil || again != p {
			t.Fatalf("not idempotent: %+v, %v", again, err)
		}
		if p.Outcode+" "+p.Incode != pc || p.Sector != p.Outcode+" "+p.Incode[:1] || p.Incode[1:] != p.Unit {
			t.Fatalf("parts do not add up: %+v", p)
		}
		if !strings.HasPrefix(p.District, p.Area) || !strings.HasPrefix(p.Outcode, p.District) {
			t.Fatalf("area/district/outcode not nested: %+v", p)
		}
		if !postcode.ValidOutcode(p.Outcode) {
			t.Fatalf("ValidOutcode(%q) = false", p.Outcode)
		}
		if p.Pseudo != strings.HasPrefix(pc, "ZZ99 ") || postcode.IsPseudo(s) != p.Pseudo {
			t.Fatalf("pseudo flag wrong for %q", pc)
		}
		if key := postcode.Sector(s); (key == "") != p.Pseudo {
			t.Fatalf("Sector(%q) = %q for pseudo=%v", s, key, p.Pseudo)
		}
		if fixed, err := postcode.Normalise(postcode.Fix(s)); err != nil || fixed != pc {
			t.Fatalf("Fix changed a valid postcode: Normalise(Fix(%q)) = %q, %v", s, fixed, err)
		}
	})
}

func FuzzFix(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		got := postcode.Fix(s)
		if got == s {
			return
		}
		if again := postcode.Fix(got); again != got {
			t.Fatalf("Fix not idempotent: Fix(%q) = %q, Fix(%q) = %q", s, got, got, again)
		}
		if len(got) < 6 || len(got) > 8 || got[len(got)-4] != ' ' || strings.Count(got, " ") != 1 {
			t.Fatalf("Fix(%q) = %q, not in postcode layout", s, got)
		}
	})
}
