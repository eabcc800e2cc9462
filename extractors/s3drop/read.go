package s3drop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/extractors/xlsx"
)

// OpenDelimited streams the object at key through delimited.New: rows name
// the key's base name as Row.File, and the body is read as the rows are,
// never held whole. Closing the reader closes the body.
func (b *Bucket) OpenDelimited(ctx context.Context, key string, opts delimited.Options) (rowsource.Reader, error) {
	rc, err := b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	r, err := delimited.New(rc, path.Base(key), opts)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return &closingReader{Reader: r, close: rc.Close}, nil
}

// OpenXLSX spools the object at key to a temporary file (see OpenSpooled)
// and reads one sheet of it with xlsx.Open. Closing the reader removes the
// file.
func (b *Bucket) OpenXLSX(ctx context.Context, key, sheet string, opts xlsx.Options) (rowsource.Reader, error) {
	p, cleanup, err := b.OpenSpooled(ctx, key)
	if err != nil {
		return nil, err
	}
	r, err := xlsx.Open(ctx, p, sheet, opts)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &closingReader{Reader: r, close: func() error { cleanup(); return nil }}, nil
}

// OpenSpooled copies the object at key to a file in a new temporary
// directory (under os.TempDir, or $TMPDIR) and returns its path, for readers
// that need a file rather than a stream (an Excel workbook). The copy streams
// through a fixed 1 MiB buffer, so memory stays bounded whatever the size;
// the disk needs room for the whole object. The file has the key's base name
// and mode 0600. cleanup removes the file and its directory; call it when
// done (it is safe to call more than once). On error nothing is left behind.
func (b *Bucket) OpenSpooled(ctx context.Context, key string) (p string, cleanup func(), err error) {
	rc, err := b.get(ctx, key)
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	dir, err := os.MkdirTemp("", "careindex-s3-")
	if err != nil {
		return "", nil, fmt.Errorf("%s: spool: %w", b.objectURL(key), err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	name := path.Base(key)
	if name == "." || name == ".." || name == "/" || name == "" {
		name = "object"
	}
	p = filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("%s: spool: %w", b.objectURL(key), err)
	}
	_, err = io.CopyBuffer(f, ctxReader{ctx: ctx, r: rc}, make([]byte, copyBuffer))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, fmt.Errorf("%s: spool: %w", b.objectURL(key), err)
	}
	return p, cleanup, nil
}

// closingReader is a rowsource.Reader that releases something more when it
// is closed (an object body, a spooled file).
type closingReader struct {
	rowsource.Reader
	close func() error
	done  bool
}

func (c *closingReader) Close() error {
	err := c.Reader.Close()
	if !c.done {
		c.done = true
		err = errors.Join(err, c.close())
	}
	return err
}
