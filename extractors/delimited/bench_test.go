package delimited_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/careindex/careindex/extractors/delimited"
)

// writeBenchFile writes a patients-like CSV of n rows, with some quoted
// fields, and returns its path and size.
func writeBenchFile(b *testing.B, n int) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "patients_bench.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, "\ufeffPatientID,NHSNo,Surname,Forename,DOB,Gender,Postcode,Address\r\n")
	for i := range n {
		addr := fmt.Sprintf("%d High Street", i%300)
		if i%10 == 0 {
			addr = fmt.Sprintf("\"Flat %d, %d High Street\"", i%7, i%300)
		}
		fmt.Fprintf(w, "%d,%010d,Surname%d,Forename%d,%02d/%02d/%d,%c,PE15 %dAQ,%s\r\n",
			100000+i, 4000000000+i*7, i%5000, i%800, 1+i%28, 1+i%12, 1930+i%90, "MF"[i%2], i%10, addr)
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

// BenchmarkReadCSV measures streaming a 100,000-row CSV delivery.
func BenchmarkReadCSV(b *testing.B) {
	const rows = 100_000
	path, size := writeBenchFile(b, rows)
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r, err := delimited.Open(path, delimited.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for r.Next(ctx) {
			if r.Row().Err != nil {
				b.Fatal(r.Row().Err)
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
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
