package s3drop

import "strings"

// newer reports whether a is a newer delivery than b: natural name order,
// then LastModified, then byte order (as folder.Find decides).
func newer(a, b Object) bool {
	if c := naturalCompare(a.Name, b.Name); c != 0 {
		return c > 0
	}
	if !a.LastModified.Equal(b.LastModified) {
		return a.LastModified.After(b.LastModified)
	}
	return a.Name > b.Name
}

// naturalCompare compares two names with runs of ASCII digits compared by
// numeric value and everything else byte by byte. It returns -1, 0 or +1.
// It is the same order as package folder's (which does not export it).
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		switch {
		case da && db:
			var na, nb string
			na, a = splitDigits(a)
			nb, b = splitDigits(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return cmpInt(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		case a[0] != b[0]:
			return cmpInt(int(a[0]), int(b[0]))
		default:
			a, b = a[1:], b[1:]
		}
	}
	return cmpInt(len(a), len(b))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// splitDigits splits s after its leading run of digits.
func splitDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
