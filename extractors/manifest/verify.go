package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Problem is one way a delivered file disagrees with its manifest.
type Problem struct {
	// File is the listed file's name.
	File string
	// What says what disagrees, for example "listed but not delivered" or
	// "has 16 data rows; the manifest says 17".
	What string
}

// MismatchError reports every disagreement Verify found between a manifest
// and the delivered files. It wraps ErrMismatch.
type MismatchError struct {
	// Manifest is the manifest's name.
	Manifest string
	// Problems are the disagreements, in the manifest's file order.
	Problems []Problem
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manifest %s: the delivery disagrees with it: ", e.Manifest)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.File)
		b.WriteString(": ")
		b.WriteString(p.What)
	}
	return b.String()
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Verify checks every file m lists, in order: open(name) must succeed, the
// SHA-256 of what it reads must equal the manifest's, and count(name) must
// give the manifest's number of data rows. count may be nil to check hashes
// only.
//
// open must return an error wrapping fs.ErrNotExist (os.Open does) when the
// file is not there: that is reported as a disagreement ("listed but not
// delivered"). Any other error from open, reading or count stops Verify and
// is returned (wrapped with the manifest's and the file's names), since it
// says nothing about whether the delivery matches. The contents are read as a
// stream, so memory stays bounded whatever their size; ctx is checked as it
// goes.
//
// When every file matches Verify returns nil; otherwise a *MismatchError
// listing every disagreement, which wraps ErrMismatch.
func Verify(ctx context.Context, m *Manifest, open func(name string) (io.ReadCloser, error), count func(name string) (int, error)) error {
	var problems []Problem
	buf := make([]byte, 256<<10)
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("manifest %s: %w", m.Name, err)
		}
		rc, err := open(f.Name)
		if errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, Problem{File: f.Name, What: "listed but not delivered"})
			continue
		}
		if err != nil {
			return fmt.Errorf("manifest %s: %s: %w", m.Name, f.Name, err)
		}
		h := sha256.New()
		_, err = io.CopyBuffer(h, ctxReader{ctx, rc}, buf)
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("manifest %s: %s: hash: %w", m.Name, f.Name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			problems = append(problems, Problem{File: f.Name, What: fmt.Sprintf("SHA-256 is %s; the manifest says %s", got, f.SHA256)})
		}
		if count == nil {
			continue
		}
		n, err := count(f.Name)
		if err != nil {
			return fmt.Errorf("manifest %s: %s: count rows: %w", m.Name, f.Name, err)
		}
		if n != f.Rows {
			problems = append(problems, Problem{File: f.Name, What: fmt.Sprintf("has %s; the manifest says %d", plural(n, "data row"), f.Rows)})
		}
	}
	if len(problems) > 0 {
		return &MismatchError{Manifest: m.Name, Problems: problems}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// ctxReader is an io.Reader that fails once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
