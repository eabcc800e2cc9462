package match

import (
	"math/bits"
	"unicode/utf8"
)

// JaroWinkler returns the Jaro–Winkler similarity of a and b, from 0
// (nothing in common) to 1 (equal), with the usual prefix scale 0.1 and a
// common prefix of at most four characters. Two empty strings are equal
// (1); an empty and a non-empty string have similarity 0. It compares
// characters (runes), so accented letters count once.
func JaroWinkler(a, b string) float64 {
	if a == b {
		return 1
	}
	if !isASCII(a) || !isASCII(b) {
		return jaroWinklerRunes([]rune(a), []rune(b))
	}
	return jaroWinkler(a, b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// jaroWinkler is JaroWinkler over bytes. It does not allocate for strings
// of up to 64 bytes.
func jaroWinkler(a, b string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	window := len(b)/2 - 1
	if window < 0 {
		window = 0
	}
	var fa, fb [64]bool
	var ma, mb []bool
	if len(b) <= 64 {
		ma, mb = fa[:len(a)], fb[:len(b)]
	} else {
		ma, mb = make([]bool, len(a)), make([]bool, len(b))
	}
	matches := 0
	for i := range a {
		lo, hi := i-window, i+window+1
		if lo < 0 {
			lo = 0
		}
		if hi > len(b) {
			hi = len(b)
		}
		for j := lo; j < hi; j++ {
			if !mb[j] && a[i] == b[j] {
				ma[i], mb[j] = true, true
				matches++
				break
			}
		}
	}
	if matches == 0 {
		return 0
	}
	trans, j := 0, 0
	for i := range a {
		if !ma[i] {
			continue
		}
		for !mb[j] {
			j++
		}
		if a[i] != b[j] {
			trans++
		}
		j++
	}
	m := float64(matches)
	jaro := (m/float64(len(a)) + m/float64(len(b)) + (m-float64(trans/2))/m) / 3
	prefix := 0
	for prefix < 4 && prefix < len(a) && a[prefix] == b[prefix] {
		prefix++
	}
	return jaro + float64(prefix)*0.1*(1-jaro)
}

// jaroWinklerRunes is jaroWinkler over runes.
func jaroWinklerRunes(a, b []rune) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	window := len(b)/2 - 1
	if window < 0 {
		window = 0
	}
	ma, mb := make([]bool, len(a)), make([]bool, len(b))
	matches := 0
	for i := range a {
		lo, hi := max(0, i-window), min(len(b), i+window+1)
		for j := lo; j < hi; j++ {
			if !mb[j] && a[i] == b[j] {
				ma[i], mb[j] = true, true
				matches++
				break
			}
		}
	}
	if matches == 0 {
		return 0
	}
	trans, j := 0, 0
	for i := range a {
		if !ma[i] {
			continue
		}
		for !mb[j] {
			j++
		}
		if a[i] != b[j] {
			trans++
		}
		j++
	}
	m := float64(matches)
	jaro := (m/float64(len(a)) + m/float64(len(b)) + (m-float64(trans/2))/m) / 3
	prefix := 0
	for prefix < 4 && prefix < len(a) && a[prefix] == b[prefix] {
		prefix++
	}
	return jaro + float64(prefix)*0.1*(1-jaro)
}

// NYSIIS returns the New York State Identification and Intelligence System
// phonetic code of a name (the original 1970 algorithm, without the
// six-character truncation): names that sound alike tend to share a code
// ("CATHERINE" and "KATHERINE" → "CATARAN"; "SMITH" and "SCHMITT" → "SNAT"). Only the
// letters A–Z count; case is ignored; a name with none of them has code "".
func NYSIIS(name string) string {
	var buf [32]byte
	b := buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c >= 'A' && c <= 'Z' {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return ""
	}
	// 1. First characters.
	switch {
	case hasPrefix(b, "MAC"):
		b[1] = 'C' // MAC → MCC
	case hasPrefix(b, "KN"):
		b[0] = 'N' // KN → NN
	case b[0] == 'K':
		b[0] = 'C'
	case hasPrefix(b, "PH"), hasPrefix(b, "PF"):
		b[0], b[1] = 'F', 'F'
	case hasPrefix(b, "SCH"):
		b[1], b[2] = 'S', 'S'
	}
	// 2. Last characters.
	if n := len(b); n >= 2 {
		switch string(b[n-2:]) {
		case "EE", "IE":
			b = append(b[:n-2], 'Y')
		case "DT", "RT", "RD", "NT", "ND":
			b = append(b[:n-2], 'D')
		}
	}
	// 3–4. The first character stays; the rest are translated in place,
	// left to right, and added when they differ from the key's last one.
	key := make([]byte, 1, len(b)+1)
	key[0] = b[0]
	for i := 1; i < len(b); i++ {
		c := b[i]
		next := byte(0)
		if i+1 < len(b) {
			next = b[i+1]
		}
		switch {
		case c == 'E' && next == 'V':
			b[i], b[i+1] = 'A', 'F'
		case isVowel(c):
			b[i] = 'A'
		case c == 'Q':
			b[i] = 'G'
		case c == 'Z':
			b[i] = 'S'
		case c == 'M':
			b[i] = 'N'
		case c == 'K':
			if next == 'N' {
				b[i] = 'N'
			} else {
				b[i] = 'C'
			}
		case c == 'S' && next == 'C' && i+2 < len(b) && b[i+2] == 'H':
			b[i+1], b[i+2] = 'S', 'S'
		case c == 'P' && next == 'H':
			b[i], b[i+1] = 'F', 'F'
		case c == 'H':
			if !isVowel(b[i-1]) || (next != 0 && !isVowel(next)) || next == 0 {
				b[i] = b[i-1]
			}
		case c == 'W':
			if isVowel(b[i-1]) {
				b[i] = b[i-1]
			}
		}
		if b[i] != key[len(key)-1] {
			key = append(key, b[i])
		}
	}
	// 5–7. Last characters of the key.
	if len(key) > 1 && key[len(key)-1] == 'S' {
		key = key[:len(key)-1]
	}
	if len(key) > 2 && key[len(key)-2] == 'A' && key[len(key)-1] == 'Y' {
		key = append(key[:len(key)-2], 'Y')
	}
	if len(key) > 1 && key[len(key)-1] == 'A' {
		key = key[:len(key)-1]
	}
	return string(key)
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

func isVowel(c byte) bool {
	switch c {
	case 'A', 'E', 'I', 'O', 'U':
		return true
	}
	return false
}

// damerauOne reports whether a and b (of any length) are at most one
// substitution, insertion, deletion or adjacent transposition apart.
func damerauOne(a, b string) bool {
	if a == b {
		return true
	}
	la, lb := len(a), len(b)
	if la < lb {
		a, b, la, lb = b, a, lb, la
	}
	if la-lb > 1 {
		return false
	}
	i := 0
	for i < lb && a[i] == b[i] {
		i++
	}
	if la == lb {
		if a[i+1:] == b[i+1:] {
			return true // substitution
		}
		return i+1 < la && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
	}
	return a[i+1:] == b[i:] // deletion from a
}

// bagDistance is the bag distance of a and b (Bartolini, Ciaccia and
// Patella; one of Febrl's string comparators): the larger of the number of
// bytes of a not matched by a byte of b and the reverse, ignoring order. It
// is a lower bound of the edit distance, and small for names whose letters
// were scrambled ("OSRAC" and "OSCAR" are 0 apart).
func bagDistance(a, b string) int {
	var n [256]int16
	for i := 0; i < len(a); i++ {
		n[a[i]]++
	}
	for i := 0; i < len(b); i++ {
		n[b[i]]--
	}
	onlyA, onlyB := 0, 0
	for i := 0; i < len(a); i++ {
		if c := n[a[i]]; c > 0 {
			onlyA += int(c)
			n[a[i]] = 0
		}
	}
	for i := 0; i < len(b); i++ {
		if c := n[b[i]]; c < 0 {
			onlyB -= int(c)
			n[b[i]] = 0
		}
	}
	return max(onlyA, onlyB)
}

// letterMask returns a bit for each letter A–Z and digit in s (other
// characters share one bit), for jwBound.
func letterMask(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			m |= 1 << (c - 'A')
		case c >= 'a' && c <= 'z':
			m |= 1 << (c - 'a')
		case c >= '0' && c <= '9':
			m |= 1 << (26 + c - '0')
		default:
			m |= 1 << 63
		}
	}
	return m
}

// jwBound returns an upper bound of JaroWinkler(a, b) from the strings'
// lengths (in bytes, so ASCII only), letter masks and common prefix,
// without aligning them: each distinct letter of one string that the other
// lacks takes at least one position out of the matches.
func jwBound(a, b string, ma, mb uint64) float64 {
	la, lb := len(a), len(b)
	if la == 0 || lb == 0 {
		return 0
	}
	m := min(la-bits.OnesCount64(ma&^mb), lb-bits.OnesCount64(mb&^ma))
	if m <= 0 {
		return 0
	}
	fm := float64(m)
	j := (fm/float64(la) + fm/float64(lb) + 1) / 3
	p := 0
	for p < 4 && p < la && p < lb && a[p] == b[p] {
		p++
	}
	return j + float64(p)*0.1*(1-j)
}
