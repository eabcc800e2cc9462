package match

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestJaroWinkler(t *testing.T) {
	cases := []struct {
		a, b string
		want float64
	}{
		{"MARTHA", "MARHTA", 0.9611},
		{"DWAYNE", "DUANE", 0.84},
		{"DIXON", "DICKSONX", 0.8133},
		{"JONES", "JOHNSON", 0.8323},
		{"SMITH", "SMITH", 1},
		{"", "", 1},
		{"A", "", 0},
		{"ABC", "XYZ", 0},
		{"ZOË", "ZOE", 0.8222},
	}
	for _, c := range cases {
		got := JaroWinkler(c.a, c.b)
		if math.Abs(got-c.want) > 0.0005 {
			t.Errorf("JaroWinkler(%q, %q) = %.4f, want %.4f", c.a, c.b, got, c.want)
		}
		if back := JaroWinkler(c.b, c.a); math.Abs(back-got) > 1e-12 {
			t.Errorf("JaroWinkler not symmetric on %q, %q: %v vs %v", c.a, c.b, got, back)
		}
	}
}

func TestBagDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"OSCAR", "OSRAC", 0},
		{"HARRY", "RARHRY", 1},
		{"FLORENCE", "FORCNEE", 1},
		{"LEON", "LLNO", 1},
		{"ANDREWS", "WNDDREAS", 1},
		{"SMITH", "JONES", 4},
		{"", "ABC", 3},
		{"", "", 0},
	}
	for _, c := range cases {
		if got, back := bagDistance(c.a, c.b), bagDistance(c.b, c.a); got != c.want || back != got {
			t.Errorf("bagDistance(%q, %q) = %d (reversed %d), want %d", c.a, c.b, got, back, c.want)
		}
	}
}

// TestLettersAlike checks that ruling pairs out by length and letter set
// first never changes the letters level: on random names over a small
// alphabet (so that many are near anagrams), with a non-ASCII letter now
// and then, lettersAlike agrees with counting the letters.
func TestLettersAlike(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	letters := []string{"A", "B", "E", "L", "N", "O", "R", "S", "É", "Ö"}
	name := func() string {
		var b strings.Builder
		for range 2 + rng.IntN(8) {
			b.WriteString(letters[rng.IntN(len(letters))])
		}
		return b.String()
	}
	alike := 0
	for range 200000 {
		a, b := name(), name()
		ea := nameEntry{s: a, mask: letterMask(a)}
		eb := nameEntry{s: b, mask: letterMask(b)}
		want := min(len(a), len(b)) >= minLettersLen && bagDistance(a, b) <= 1
		if got := lettersAlike(&ea, &eb); got != want {
			t.Fatalf("lettersAlike(%q, %q) = %v, counting the letters says %v", a, b, got, want)
		}
		if want {
			alike++
		}
	}
	if alike < 100 {
		t.Fatalf("only %d pairs alike: the test does not exercise the level", alike)
	}
}

// TestJWBound checks that the cheap bound never falls below the real
// similarity, on random strings over a small alphabet.
func TestJWBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		b := make([]byte, 1+rng.IntN(9))
		for i := range b {
			b[i] = "ABCDEHINORST"[rng.IntN(12)]
		}
		return string(b)
	}
	for range 200000 {
		a, b := word(), word()
		jw := JaroWinkler(a, b)
		if bound := jwBound(a, b, letterMask(a), letterMask(b)); bound+1e-12 < jw {
			t.Fatalf("jwBound(%q, %q) = %v < JaroWinkler %v", a, b, bound, jw)
		}
	}
}

func TestNYSIIS(t *testing.T) {
	cases := map[string]string{
		"SMITH": "SNAT", "SMYTH": "SNYT", "SCHMIDT": "SNAD", "SCHMITT": "SNAT",
		"MACDONALD": "MCDANALD", "KNIGHT": "NAGT", "PHILLIPS": "FALAP", "PHILIPS": "FALAP",
		"JOHNSON": "JANSAN", "WILLIAMS": "WALAN", "BROWN": "BRAN",
		"CATHERINE": "CATARAN", "KATHERINE": "CATARAN", "O'BRIEN": "OBRAN",
		"": "", "123": "", "lee": "LY", "EVANS": "EVAN", "STEVENS": "STAFAN",
	}
	for in, want := range cases {
		if got := NYSIIS(in); got != want {
			t.Errorf("NYSIIS(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDamerauOne(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"2022", "2012", true}, {"2022", "2202", true}, {"2022", "202", true}, {"2022", "20222", true},
		{"2022", "2022", true}, {"2022", "2211", false}, {"2022", "20", false}, {"", "1", true},
	} {
		if got := damerauOne(c.a, c.b); got != c.want {
			t.Errorf("damerauOne(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
