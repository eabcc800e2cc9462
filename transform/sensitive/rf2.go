package sensitive

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultRefsets names the categories of the four GP summary exclusion
// reference sets (in the order DESIGN.md lists both).
var DefaultRefsets = map[string]string{
	"999004351000000109": "gender_related",
	"999004371000000100": "assisted_fertilisation",
	"999004361000000107": "termination_of_pregnancy",
	"999004381000000103": "sexually_transmitted_disease",
}

// LoadRF2 adds the members of a SNOMED CT simple reference set file in the
// RF2 release format (tab-separated: id, effectiveTime, active, moduleId,
// refsetId, referencedComponentId) to the list. A full release carries every
// version of a member row: the latest effectiveTime of each id decides
// whether it is active. categories names each refsetId; a refset it does not
// name gets the category "refset:<id>".
func (l *List) LoadRF2(path string, categories map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	return l.ReadRF2(f, filepath.Base(path), categories)
}

// ReadRF2 is LoadRF2 for a reader.
func (l *List) ReadRF2(r io.Reader, name string, categories map[string]string) error {
	if l.byCode == nil {
		l.byCode = map[string]string{}
	}
	h := sha256.New()
	sc := bufio.NewScanner(io.TeeReader(r, h))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	type member struct {
		effective string
		active    bool
		refset    string
		component string
	}
	latest := map[string]member{}
	line := 0
	var col map[string]int
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			continue
		}
		fields := strings.Split(text, "\t")
		if col == nil {
			col = map[string]int{}
			for i, f := range fields {
				col[strings.TrimPrefix(strings.TrimSpace(f), "\ufeff")] = i
			}
			for _, need := range []string{"id", "effectiveTime", "active", "refsetId", "referencedComponentId"} {
				if _, ok := col[need]; !ok {
					return fmt.Errorf("%w: %s: line 1: not an RF2 simple refset (column %s missing)", ErrUnreadable, name, need)
				}
			}
			continue
		}
		if len(fields) < len(col) {
			return fmt.Errorf("%w: %s: line %d: %d fields, header has %d", ErrUnreadable, name, line, len(fields), len(col))
		}
		m := member{effective: fields[col["effectiveTime"]], refset: fields[col["refsetId"]],
			component: fields[col["referencedComponentId"]]}
		switch fields[col["active"]] {
		case "1":
			m.active = true
		case "0":
		default:
			return fmt.Errorf("%w: %s: line %d: active is neither 0 nor 1", ErrUnreadable, name, line)
		}
		if m.component == "" || len(m.effective) != 8 {
			return fmt.Errorf("%w: %s: line %d: empty referencedComponentId or bad effectiveTime", ErrUnreadable, name, line)
		}
		id := fields[col["id"]]
		if prev, ok := latest[id]; !ok || m.effective >= prev.effective {
			latest[id] = m
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreadable, name, err)
	}
	if col == nil {
		return fmt.Errorf("%w: %s: empty file", ErrUnreadable, name)
	}
	for _, m := range latest {
		if !m.active {
			continue
		}
		cat, ok := categories[m.refset]
		if !ok {
			cat = "refset:" + m.refset
		}
		l.byCode[m.component] = cat
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if l.Hash == "" {
		l.Hash = sum
	} else {
		l.Hash = l.Hash + "+" + sum
	}
	return nil
}

// Requests are care items a patient asked to withhold, by organisation and
// the organisation's item id.
type Requests struct {
	File  string
	Hash  string
	items map[[2]string]bool
}

// LoadRequests reads a CSV with the columns org_code and item_id.
func LoadRequests(path string) (*Requests, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	return ReadRequests(f, filepath.Base(path))
}

// ReadRequests is LoadRequests for a reader.
func ReadRequests(r io.Reader, name string) (*Requests, error) {
	q := &Requests{File: name, items: map[[2]string]bool{}}
	hash, err := readTable(r, name, []string{"org_code", "item_id"}, func(line int, get func(string) string) error {
		org, item := strings.ToUpper(get("org_code")), get("item_id")
		if org == "" || item == "" {
			return fmt.Errorf("%s: line %d: empty org_code or item_id", name, line)
		}
		q.items[[2]string{org, item}] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	q.Hash = hash
	return q, nil
}

// Withheld reports whether the patient asked to withhold the item.
func (q *Requests) Withheld(org, itemID string) bool {
	return q != nil && itemID != "" && q.items[[2]string{org, itemID}]
}

// Len returns the number of requested items.
func (q *Requests) Len() int {
	if q == nil {
		return 0
	}
	return len(q.items)
}
