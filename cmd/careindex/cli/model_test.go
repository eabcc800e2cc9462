package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careindex/careindex/cmd/careindex/cli"
	"github.com/careindex/careindex/transform/match"
)

// TestModelEstimateInProcess runs careindex model estimate in process on a
// small persons source whose configuration names a model file that does
// not exist yet (the one being made), and checks its usage errors.
func TestModelEstimateInProcess(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("objections_1.csv", "nhs_number,scope,recorded,withdrawn\n")
	var rows strings.Builder
	rows.WriteString("id,family,given,dob\n")
	names := []string{"ASHWORTH", "BRENNAN", "CALLOWAY", "DELANEY", "ELLISON", "FAIRWEATHER", "GALLAGHER", "HARGREAVES"}
	for i, n := range names {
		for k := range 3 { // three records a person, the last mistyped
			fam := n
			if k == 2 {
				fam = n[:len(n)-1]
			}
			rows.WriteString(strings.Join([]string{n + string(rune('0'+k)), fam, "ROBIN", "19" + string(rune('5'+i%4)) + "0-0" + string(rune('1'+i)) + "-1" + string(rune('0'+i))}, ",") + "\n")
		}
	}
	rows.WriteString("BAD,NOBODY,NONE,2999-01-01\n") // born in the future: quarantined
	write("people.csv", rows.String())
	write("region.yaml", `store: sqlite:never-opened.db
objections:
  register: {path: ., pattern: "objections_*.csv"}
  max_age: 876000h
matching: {enabled: true, model: not-yet.json}
sources:
  - id: people
    org: ORG1
    org_name: An organisation
    org_type: other
    kind: persons
    from: {folder: {path: ., pattern: "people.csv"}}
    format: {type: csv}
    columns: {local_id: id, family_name: family, given_name: given, date_of_birth: dob}
    date_formats: ["2006-01-02"]
`)
	cfg := filepath.Join(dir, "region.yaml")
	out := filepath.Join(dir, "model.json")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Main(context.Background(), args, cli.Env{Stdout: &stdout, Stderr: &stderr})
		return code, stdout.String(), stderr.String()
	}
	code, stdout, stderr := run("model", "estimate", "--config", cfg, "-o", out)
	if code != cli.ExitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	for _, want := range []string{"source people: delivery people.csv, 25 rows, 1 quarantined", "prior (lambda)", "within_10_years", "email_user"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, stdout)
		}
	}
	for _, n := range names {
		if strings.Contains(stdout, n) {
			t.Errorf("the summary carries a name (%s)", n)
		}
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m match.Model
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "not-yet.json")); !os.IsNotExist(err) {
		t.Errorf("the configured model file was touched: %v", err)
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"model"}, cli.ExitUsage},
		{[]string{"model", "guess"}, cli.ExitUsage},
		{[]string{"model", "estimate"}, cli.ExitUsage},                                      // no configuration
		{[]string{"model", "estimate", "--config", cfg, "--source", "nope"}, cli.ExitUsage}, // not a source
		{[]string{"model", "estimate", "--config", filepath.Join(dir, "none.yaml")}, cli.ExitFailed},
	} {
		if code, _, stderr := run(c.args...); code != c.code {
			t.Errorf("%v: exit code %d, want %d (%s)", c.args, code, c.code, stderr)
		}
	}
}
