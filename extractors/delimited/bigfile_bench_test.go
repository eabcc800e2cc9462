package delimited_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/fixtures/memsample"
)

// BenchmarkBigCSV5M streams a 5,000,000-row CSV delivery (ten columns,
// about 600 MB) and reports rows per second and peak memory while reading:
//
//	go test -run '^$' -bench BigCSV5M -benchtime 1x ./extractors/delimited
//
// The file is written once to a temporary folder before the timer starts.
// Metrics: rows/s; peak-heap-MB, the most heap held by live and not yet
// collected objects at any moment (runtime/metrics, sampled every
// millisecond: HeapAlloc without stopping the world); peak-runtime-MB, the
// most memory the Go runtime held from the OS (all its mappings less heap
// returned to the OS); file-MB. The benchmark fails if the heap ever holds
// more than 64 MB, which would mean the reader is not streaming.
func BenchmarkBigCSV5M(b *testing.B) {
	const rows = 5_000_000
	path, size := writeBigCSV(b, rows)
	ctx := context.Background()
	b.SetBytes(size)
	// Collect the generator's garbage (twice: the first leaves sync.Pool's
	// victim caches) and return it to the OS, so the peaks are the reader's.
	runtime.GC()
	debug.FreeOSMemory()
	sampler := memsample.Start(time.Millisecond)
	for b.Loop() {
		r, err := delimited.Open(path, delimited.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for r.Next(ctx) {
			if err := r.Row().Err; err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		if n != rows {
			b.Fatalf("read %d rows, want %d", n, rows)
		}
	}
	peaks := sampler.Stop()
	heap, total := peaks.Heap, peaks.Total
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(heap)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(total)/1e6, "peak-runtime-MB")
	b.ReportMetric(float64(size)/1e6, "file-MB")
	if heap > 64<<20 {
		b.Errorf("peak heap %d bytes reading a %d-byte file: not streaming", heap, size)
	}
}

// writeBigCSV writes a realistic patients CSV of n rows (ten columns, CRLF,
// a quoted address with a comma in every tenth row, a few empty values)
// and returns its path and size.
func writeBigCSV(b *testing.B, n int) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "patients_20261124.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("PatientID,NHSNo,Surname,Forename,DOB,Gender,Postcode,Address,GPPractice,Phone\r\n")
	surnames := []string{"Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "O'Neil", "D'Arcy", "Zoë-Ann"}
	forenames := []string{"Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Sophia", "Hattie"}
	var line []byte
	for i := range n {
		line = line[:0]
		line = strconv.AppendInt(line, int64(1_000_000+i), 10)
		line = append(line, ',')
		if i%50 != 0 { // some rows without an NHS number
			line = strconv.AppendInt(line, int64(4_000_000_000+i*7), 10)
		}
		line = append(line, ',')
		line = append(line, surnames[i%len(surnames)]...)
		line = strconv.AppendInt(line, int64(i%997), 10)
		line = append(line, ',')
		line = append(line, forenames[i%len(forenames)]...)
		line = append(line, ',')
		line = appendPad2(line, 1+i%28)
		line = append(line, '/')
		line = appendPad2(line, 1+i%12)
		line = append(line, '/')
		line = strconv.AppendInt(line, int64(1930+i%90), 10)
		line = append(line, ',', "MFU"[i%3], ',')
		line = append(line, "PE"...)
		line = strconv.AppendInt(line, int64(1+i%30), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(i%10), 10)
		line = append(line, "AQ,"...)
		if i%10 == 0 {
			line = append(line, "\"Flat "...)
			line = strconv.AppendInt(line, int64(i%7), 10)
			line = append(line, ", "...)
		}
		line = strconv.AppendInt(line, int64(i%300), 10)
		line = append(line, " High Street"...)
		if i%10 == 0 {
			line = append(line, '"')
		}
		line = append(line, ",D8100"...)
		line = strconv.AppendInt(line, int64(i%10), 10)
		line = append(line, ",01632 "...)
		line = strconv.AppendInt(line, int64(100_000+i%900_000), 10)
		line = append(line, '\r', '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, st.Size()
}

func appendPad2(b []byte, v int) []byte {
	if v < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(v), 10)
}
