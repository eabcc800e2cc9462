package folder

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/careindex/careindex/extractors/rowsource"
)

// Hash returns the hex SHA-256 of the file at path, reading it as a stream.
// It stops with ctx's error if ctx is cancelled part way.
func Hash(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxReader{ctx: ctx, r: f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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

// rowsDomain starts every row digest, so that it never equals the digest of
// a file's bytes.
const rowsDomain = "careindex rows v1\n"

// Hasher computes a deterministic SHA-256 digest of a sequence of rows (for
// example a header and then a query result's values), to identify a
// delivery that is not a file. Each row is framed with its number of values
// and each value with its length, so different rows never digest alike by
// running together. The zero value is not usable; call NewHasher.
type Hasher struct {
	h   hash.Hash
	buf []byte
}

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher {
	h := &Hasher{h: sha256.New()}
	h.h.Write([]byte(rowsDomain))
	return h
}

// Add adds one row's values to the digest.
func (h *Hasher) Add(values []string) {
	h.buf = binary.AppendUvarint(h.buf[:0], uint64(len(values)))
	for _, v := range values {
		h.buf = binary.AppendUvarint(h.buf, uint64(len(v)))
		h.buf = append(h.buf, v...)
	}
	h.h.Write(h.buf)
}

// Sum returns the hex digest of the rows added so far. It does not change
// the Hasher's state.
func (h *Hasher) Sum() string {
	return hex.EncodeToString(h.h.Sum(nil))
}

// HashingReader wraps a rowsource.Reader and digests its header and every
// row's values as they stream past, so a query result can be identified
// without a second pass. It is itself a rowsource.Reader.
type HashingReader struct {
	rowsource.Reader
	h *Hasher
}

var _ rowsource.Reader = (*HashingReader)(nil)

// NewHashingReader wraps r, adding its header to the digest at once.
func NewHashingReader(r rowsource.Reader) *HashingReader {
	h := NewHasher()
	h.Add(r.Header())
	return &HashingReader{Reader: r, h: h}
}

// Next advances the wrapped reader and adds the new row to the digest.
func (hr *HashingReader) Next(ctx context.Context) bool {
	if !hr.Reader.Next(ctx) {
		return false
	}
	hr.h.Add(hr.Reader.Row().Values)
	return true
}

// Sum returns the hex digest of the header and the rows read so far. It
// identifies the whole delivery only once Next has returned false and Err
// is nil.
func (hr *HashingReader) Sum() string {
	return hr.h.Sum()
}
