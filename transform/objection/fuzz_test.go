package objection_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/nhsnumber"
	"github.com/careindex/careindex/transform/objection"
)

// FuzzRead checks that Read never panics, fails only with ErrUnreadable,
// and that a register it accepts is consistent.
func FuzzRead(f *testing.F) {
	f.Add(string(mustReadFile(f, "register.csv")))
	f.Add(string(mustReadFile(f, "bad_rows.csv")))
	f.Add(header + nhsA + ",all,2025-01-01,\n")
	f.Add(header + nhsA + ",RGT;RYV,2025-01-01,2027-01-01\n")
	f.Add(header + nhsA + ",all,2025-01-01,2024-01-01\n")
	f.Add(header + nhsA + ",\"all,2025-01-01,\n")
	f.Add("nhs_number,scope\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, csv string) {
		reg, err := objection.Read(context.Background(), strings.NewReader(csv), "f.csv", now)
		if err != nil {
			if reg != nil {
				t.Fatalf("Read returned a register and an error %v", err)
			}
			if !errors.Is(err, objection.ErrUnreadable) {
				t.Fatalf("Read error is not ErrUnreadable: %v", err)
			}
			return
		}
		if reg.InForce() > reg.Rows() {
			t.Fatalf("InForce %d > Rows %d", reg.InForce(), reg.Rows())
		}
		for _, n := range reg.NHSNumbers() {
			if _, err := nhsnumber.Normalise(n); err != nil {
				t.Fatalf("register holds an invalid NHS number: %v", err)
			}
			if d := reg.Decide(n); !d.Any() {
				t.Fatalf("NHS number in force but Decide withholds nothing")
			}
		}
		if len(reg.Hash) != 64 {
			t.Fatalf("Hash = %q", reg.Hash)
		}
	})
}
