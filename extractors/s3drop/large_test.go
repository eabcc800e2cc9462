package s3drop_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/s3drop"
)

// largeCSV is an io.ReadSeeker over a generated CSV delivery of fixed-width
// rows, produced on the fly so the test never holds the object in memory.
type largeCSV struct {
	rows int64
	off  int64
	buf  []byte
}

const (
	largeHeader = "PatientID,NHSNo,Surname,Forename,DOB\n"
	largeRowLen = int64(len("000000001,9434765919,D’Arcy,Zoë,1970-01-01\n"))
)

func newLargeCSV(minSize int64) *largeCSV {
	rows := (minSize - int64(len(largeHeader)) + largeRowLen - 1) / largeRowLen
	return &largeCSV{rows: rows}
}

func (l *largeCSV) size() int64 { return int64(len(largeHeader)) + l.rows*largeRowLen }

func largeRow(i int64) string {
	return fmt.Sprintf("%09d,9434765919,D’Arcy,Zoë,1970-01-01\n", i)
}

func (l *largeCSV) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && l.off < l.size() {
		var chunk string
		var within int64
		if h := int64(len(largeHeader)); l.off < h {
			chunk, within = largeHeader, l.off
		} else {
			i := (l.off - h) / largeRowLen
			chunk, within = largeRow(i+1), (l.off-h)%largeRowLen
		}
		c := copy(p[n:], chunk[within:])
		n += c
		l.off += int64(c)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (l *largeCSV) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += l.off
	case io.SeekEnd:
		offset += l.size()
	}
	if offset < 0 {
		return 0, errors.New("negative offset")
	}
	l.off = offset
	return offset, nil
}

// heapPeak samples the heap while fn runs and returns how far HeapAlloc rose
// above what was live before.
func heapPeak(t *testing.T, fn func()) uint64 {
	t.Helper()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak {
				peak = m.HeapAlloc
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	if peak < base {
		return 0
	}
	return peak - base
}

func TestLargeObjectStreamsInBoundedMemory(t *testing.T) {
	const objectSize = 50 << 20
	const heapLimit = 16 << 20 // well below the object's size
	g := startGateway(t)
	g.createBucket(t, bucketName)
	src := newLargeCSV(objectSize)
	size := src.size()
	h := sha256.New()
	if _, err := io.Copy(h, newLargeCSV(objectSize)); err != nil {
		t.Fatal(err)
	}
	wantHash := hex.EncodeToString(h.Sum(nil))
	key := "drops/big/patients_20261124.csv"
	g.put(t, bucketName, key, src, size)

	b := newBucket(t, g, s3drop.Options{Prefix: "drops/big", Pattern: "patients_*.csv"})
	ctx := context.Background()
	obj, err := b.Find(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size {
		t.Fatalf("Size = %d, want %d", obj.Size, size)
	}

	t.Run("Hash", func(t *testing.T) {
		var got string
		grew := heapPeak(t, func() { got, err = b.Hash(ctx, key) })
		if err != nil || got != wantHash {
			t.Fatalf("Hash = %s, %v; want %s", got, err, wantHash)
		}
		t.Logf("Hash of %d MB: heap grew by at most %.1f MB", size>>20, float64(grew)/(1<<20))
		if grew > heapLimit {
			t.Errorf("heap grew by %d bytes hashing a %d-byte object, want under %d", grew, size, heapLimit)
		}
	})

	t.Run("Open", func(t *testing.T) {
		var n int64
		var sum string
		grew := heapPeak(t, func() {
			rc, err := b.Open(ctx, key)
			if err != nil {
				t.Error(err)
				return
			}
			defer rc.Close()
			h := sha256.New()
			n, err = io.Copy(h, rc)
			if err != nil {
				t.Error(err)
			}
			sum = hex.EncodeToString(h.Sum(nil))
		})
		if n != size || sum != wantHash {
			t.Fatalf("read %d bytes, digest %s; want %d, %s", n, sum, size, wantHash)
		}
		t.Logf("Open and read %d MB: heap grew by at most %.1f MB", size>>20, float64(grew)/(1<<20))
		if grew > heapLimit {
			t.Errorf("heap grew by %d bytes reading a %d-byte object, want under %d", grew, size, heapLimit)
		}
	})

	t.Run("OpenDelimited", func(t *testing.T) {
		var rows int64
		var last []string
		grew := heapPeak(t, func() {
			r, err := b.OpenDelimited(ctx, key, delimited.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			for r.Next(ctx) {
				row := r.Row()
				if row.Err != nil {
					t.Errorf("line %d: %v", row.Line, row.Err)
					return
				}
				rows++
				if rows == src.rows {
					last = row.Values
				}
			}
			if err := r.Err(); err != nil {
				t.Error(err)
			}
		})
		if rows != src.rows || len(last) != 5 || last[0] != fmt.Sprintf("%09d", src.rows) || last[2] != "D’Arcy" {
			t.Fatalf("read %d rows (last %q), want %d", rows, last, src.rows)
		}
		t.Logf("OpenDelimited, %d rows: heap grew by at most %.1f MB", rows, float64(grew)/(1<<20))
		if grew > heapLimit {
			t.Errorf("heap grew by %d bytes streaming %d rows, want under %d", grew, rows, heapLimit)
		}
	})

	t.Run("OpenSpooled", func(t *testing.T) {
		var p string
		var cleanup func()
		grew := heapPeak(t, func() { p, cleanup, err = b.OpenSpooled(ctx, key) })
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		info, err := os.Stat(p)
		if err != nil || info.Size() != size {
			t.Fatalf("spooled file: %v, %v; want %d bytes", info, err, size)
		}
		t.Logf("OpenSpooled of %d MB: heap grew by at most %.1f MB", size>>20, float64(grew)/(1<<20))
		if grew > heapLimit {
			t.Errorf("heap grew by %d bytes spooling a %d-byte object, want under %d", grew, size, heapLimit)
		}
	})

	t.Run("cancel part way", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		rc, err := b.Open(cctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v, want context.Canceled", err)
		}
	})
}
