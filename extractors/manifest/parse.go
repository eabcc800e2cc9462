package manifest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Sentinel errors.
var (
	// ErrInvalid is wrapped by Parse and ParseFile for a manifest that cannot
	// be read as one: malformed JSON or CSV, a missing or malformed name,
	// row count or SHA-256, a file listed twice, no files, or too large.
	ErrInvalid = errors.New("invalid manifest")
	// ErrMismatch is wrapped (through *MismatchError) by Verify when the
	// delivered files disagree with the manifest.
	ErrMismatch = errors.New("delivery does not match its manifest")
)

// MaxBytes is the largest manifest Parse reads. A manifest lists files, not
// rows, so anything near this size is not a manifest.
const MaxBytes = 4 << 20

// File is one file a manifest lists.
type File struct {
	// Name is the file's base name.
	Name string
	// Rows is the number of data rows (not counting the header).
	Rows int
	// SHA256 is the file's SHA-256 as 64 lower-case hexadecimal digits.
	SHA256 string
}

// Manifest is a parsed manifest.
type Manifest struct {
	// Name names the manifest in errors: the base name given to Parse, or
	// the file's base name for ParseFile.
	Name string
	// Delivery is the manifest's "delivery" member (JSON only), or "".
	Delivery string
	// Files are the listed files, in the manifest's order.
	Files []File
}

// Lookup returns the listed file called name.
func (m *Manifest) Lookup(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// Lists reports whether the manifest lists a file called name.
func (m *Manifest) Lists(name string) bool {
	_, ok := m.Lookup(name)
	return ok
}

// ParseFile reads and parses the manifest at path.
func ParseFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a manifest from r, in either form (see the package
// documentation). name, reduced to its base name, names the manifest in
// errors and becomes Manifest.Name. Errors about the manifest's content wrap
// ErrInvalid; an error reading r is returned as it is, with the name.
func Parse(name string, r io.Reader) (*Manifest, error) {
	name = filepath.Base(name)
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: read: %w", name, err)
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("manifest %s: larger than %d bytes: %w", name, MaxBytes, ErrInvalid)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	m := &Manifest{Name: name}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("manifest %s: empty: %w", name, ErrInvalid)
	}
	var entries []entry
	if trimmed[0] == '{' {
		entries, m.Delivery, err = parseJSON(data)
	} else {
		entries, err = parseCSV(data)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w: %w", name, err, ErrInvalid)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("manifest %s: lists no files: %w", name, ErrInvalid)
	}
	seen := make(map[string]string, len(entries))
	for _, e := range entries {
		f, err := e.check()
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %s: %w: %w", name, e.where, err, ErrInvalid)
		}
		if prev, dup := seen[f.Name]; dup {
			return nil, fmt.Errorf("manifest %s: %s: %q is already listed (%s): %w", name, e.where, f.Name, prev, ErrInvalid)
		}
		seen[f.Name] = e.where
		m.Files = append(m.Files, f)
	}
	return m, nil
}

// entry is one listed file as written, before it is checked.
type entry struct {
	where  string // "file 2" (JSON) or "line 3" (CSV), for errors
	name   *string
	rows   *string
	sha256 *string
}

func (e entry) check() (File, error) {
	var f File
	switch {
	case e.name == nil || strings.TrimSpace(*e.name) == "":
		return f, errors.New("no file name")
	case e.rows == nil || strings.TrimSpace(*e.rows) == "":
		return f, fmt.Errorf("%q: no row count", *e.name)
	case e.sha256 == nil || strings.TrimSpace(*e.sha256) == "":
		return f, fmt.Errorf("%q: no sha256", *e.name)
	}
	f.Name = strings.TrimSpace(*e.name)
	if f.Name == "." || f.Name == ".." || strings.ContainsAny(f.Name, "/\\\x00") {
		return f, fmt.Errorf("file name %q: must be a plain file name, without folders", f.Name)
	}
	rows := strings.TrimSpace(*e.rows)
	n, err := strconv.Atoi(rows)
	if err != nil || n < 0 {
		return f, fmt.Errorf("%q: row count %q is not a whole number of rows", f.Name, rows)
	}
	f.Rows = n
	f.SHA256 = strings.ToLower(strings.TrimSpace(*e.sha256))
	if !isHex64(f.SHA256) {
		return f, fmt.Errorf("%q: sha256 %q is not 64 hexadecimal digits", f.Name, strings.TrimSpace(*e.sha256))
	}
	return f, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// jsonManifest is the JSON form. Members are decoded loosely (RawMessage)
// so that a wrong type gives a message naming the member.
type jsonManifest struct {
	Delivery json.RawMessage `json:"delivery"`
	Files    []struct {
		Name   json.RawMessage `json:"name"`
		Rows   json.RawMessage `json:"rows"`
		SHA256 json.RawMessage `json:"sha256"`
	} `json:"files"`
}

func parseJSON(data []byte) ([]entry, string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var jm jsonManifest
	if err := dec.Decode(&jm); err != nil {
		return nil, "", fmt.Errorf("not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", errors.New("not valid JSON: more after the closing brace")
	}
	delivery, err := jsonScalar(jm.Delivery, true)
	if err != nil {
		return nil, "", fmt.Errorf("delivery: %v", err)
	}
	var out []entry
	for i, f := range jm.Files {
		e := entry{where: fmt.Sprintf("file %d", i+1)}
		var err error
		if e.name, err = jsonScalar(f.Name, false); err != nil {
			return nil, "", fmt.Errorf("%s: name: %v", e.where, err)
		}
		if e.rows, err = jsonScalar(f.Rows, true); err != nil {
			return nil, "", fmt.Errorf("%s: rows: %v", e.where, err)
		}
		if e.sha256, err = jsonScalar(f.SHA256, false); err != nil {
			return nil, "", fmt.Errorf("%s: sha256: %v", e.where, err)
		}
		out = append(out, e)
	}
	var s string
	if delivery != nil {
		s = *delivery
	}
	return out, s, nil
}

// jsonScalar returns a member's text: a string, or (when numbers is set) a
// number. Absent or null is nil.
func jsonScalar(raw json.RawMessage, numbers bool) (*string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return &s, nil
	}
	if numbers {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil {
			s = n.String()
			return &s, nil
		}
		return nil, errors.New("want a number or a string")
	}
	return nil, errors.New("want a string")
}

// CSV header names, lower case.
var (
	nameColumns = []string{"name", "file", "filename", "file_name"}
	rowsColumns = []string{"rows", "row_count", "rowcount", "records"}
	shaColumns  = []string{"sha256", "sha-256", "sha_256"}
)

func parseCSV(data []byte) ([]entry, error) {
	cr := csv.NewReader(bufio.NewReader(bytes.NewReader(data)))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	nameCol, rowsCol, shaCol := 0, 1, 2
	var out []entry
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not valid CSV: %v", err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if n, r, s, ok := csvHeader(rec); ok {
				nameCol, rowsCol, shaCol = n, r, s
				continue
			} else if isHeaderLike(rec) {
				return nil, fmt.Errorf("line %d: header must name the columns name, rows and sha256", line)
			}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		e := entry{where: fmt.Sprintf("line %d", line)}
		e.name = field(rec, nameCol)
		e.rows = field(rec, rowsCol)
		e.sha256 = field(rec, shaCol)
		out = append(out, e)
	}
	return out, nil
}

func field(rec []string, i int) *string {
	if i < len(rec) {
		return &rec[i]
	}
	return nil
}

// csvHeader finds the three columns in a header record.
func csvHeader(rec []string) (name, rows, sha int, ok bool) {
	name, rows, sha = -1, -1, -1
	for i, h := range rec {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case slices.Contains(nameColumns, h) && name < 0:
			name = i
		case slices.Contains(rowsColumns, h) && rows < 0:
			rows = i
		case slices.Contains(shaColumns, h) && sha < 0:
			sha = i
		}
	}
	return name, rows, sha, name >= 0 && rows >= 0 && sha >= 0
}

// isHeaderLike reports whether a first record names some of the columns
// without being a usable header, so that it is reported rather than read as
// a file called "name".
func isHeaderLike(rec []string) bool {
	for _, h := range rec {
		h = strings.ToLower(strings.TrimSpace(h))
		if slices.Contains(nameColumns, h) || slices.Contains(rowsColumns, h) || slices.Contains(shaColumns, h) {
			return true
		}
	}
	return false
}
