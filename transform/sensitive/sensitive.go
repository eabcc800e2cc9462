// Package sensitive holds the configured sensitive code list: care item
// codes that are never published in the regional store (for example the
// GP summary exclusion categories: gender related issues, assisted
// fertilisation, termination of pregnancy, sexually transmitted disease).
//
// The list is a CSV with a header and the columns code and category:
//
//	code,category
//	386639001,termination_of_pregnancy
//
// Like the objection register it fails closed: a list that cannot be read
// whole is an error, never an empty list.
package sensitive

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrUnreadable means the code list could not be read.
var ErrUnreadable = errors.New("sensitive code list unreadable")

// List is a loaded code list. The zero List withholds nothing.
type List struct {
	File   string
	Hash   string
	byCode map[string]string
}

// Load reads the list at path.
func Load(path string) (*List, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	return Read(f, path)
}

// Read reads a list from r; name is used in errors.
func Read(r io.Reader, name string) (*List, error) {
	l := &List{File: name, byCode: map[string]string{}}
	hash, err := readTable(r, name, []string{"code", "category"}, func(line int, get func(string) string) error {
		code, cat := get("code"), get("category")
		if code == "" || cat == "" {
			return fmt.Errorf("%s: line %d: empty code or category", name, line)
		}
		l.byCode[code] = cat
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.Hash = hash
	return l, nil
}

// readTable reads a CSV with a header naming the need columns, calling fn
// for every row; any problem fails the whole table.
func readTable(r io.Reader, name string, need []string, fn func(line int, get func(string) string) error) (string, error) {
	h := sha256.New()
	cr := csv.NewReader(io.TeeReader(r, h))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return "", fmt.Errorf("%w: %s: header: %w", ErrUnreadable, name, err)
	}
	col := map[string]int{}
	for i, c := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(c, "\ufeff")))] = i
	}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return "", fmt.Errorf("%w: %s: line 1: want the columns %s", ErrUnreadable, name, strings.Join(need, " and "))
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrUnreadable, name, err)
		}
		line, _ := cr.FieldPos(0)
		for _, n := range need {
			if col[n] >= len(rec) {
				return "", fmt.Errorf("%w: %s: line %d: missing fields", ErrUnreadable, name, line)
			}
		}
		get := func(k string) string {
			if i := col[k]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if err := fn(line, get); err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Category returns the sensitive category of code, if it is on the list.
func (l *List) Category(code string) (string, bool) {
	if l == nil {
		return "", false
	}
	c, ok := l.byCode[code]
	return c, ok
}

// Len returns the number of codes on the list.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.byCode)
}
