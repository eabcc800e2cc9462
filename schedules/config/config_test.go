package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/schedules/config"
)

// dir is the absolute folder the tests pretend the configuration lives in;
// filepath.Abs does not need it to exist.
var dir = filepath.FromSlash("/etc/careindex")

// env returns a lookup function over a fixed map, as tests should pass
// instead of os.LookupEnv.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// goodEnv sets the variables good.yaml needs.
var goodEnv = map[string]string{"EXPORT_PASSWORD": "s3cret-export"}

func parseGood(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse(readTestdata(t, "good.yaml"), dir, env(goodEnv))
	if err != nil {
		t.Fatalf("Parse(good.yaml) = %v", err)
	}
	return cfg
}

func TestParseMinimalFillsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(readTestdata(t, "minimal.yaml"), dir, env(nil))
	if err != nil {
		t.Fatalf("Parse(minimal.yaml) = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"store", cfg.Store, config.DefaultStore},
		{"timezone", cfg.Timezone, "Europe/London"},
		{"max_age", time.Duration(cfg.Objections.MaxAge), 36 * time.Hour},
		{"keep_versions", cfg.Publish.KeepVersions, 2},
		{"register path", cfg.Objections.Register.Path, filepath.Join(dir, "drops", "objections")},
		{"register pattern", cfg.Objections.Register.Pattern, "*.csv"},
		{"sensitive codes stays empty", cfg.Objections.SensitiveCodes, ""},
		{"dir", cfg.Dir, dir},
		{"sources", len(cfg.Sources), 1},
		{"mode", cfg.Sources[0].Mode, "snapshot"},
		{"date formats", strings.Join(cfg.Sources[0].DateFormats, "|"), "2006-01-02"},
		{"org upper-cased and trimmed", cfg.Sources[0].Org, "D81001"},
		{"folder path", cfg.Sources[0].From.Folder.Path, filepath.Join(dir, "drops", "d81001")},
		{"format type from pattern", cfg.Sources[0].Format.Type, "csv"},
		{"encoding", cfg.Sources[0].Format.Encoding, "utf-8"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseGood(t *testing.T) {
	t.Parallel()
	cfg := parseGood(t)
	if cfg.Store != "sqlite:careindex.db" {
		t.Errorf("Store = %q, want the ${STORE:-…} default", cfg.Store)
	}
	if got := time.Duration(cfg.Objections.MaxAge); got != 12*time.Hour {
		t.Errorf("MaxAge = %v, want 12h", got)
	}
	if got, want := cfg.Objections.SensitiveCodes, filepath.Join(dir, "sensitive_codes.csv"); got != want {
		t.Errorf("SensitiveCodes = %q, want %q", got, want)
	}
	if cfg.Publish.KeepVersions != 3 || cfg.Publish.Schedule != "0 5 * * *" {
		t.Errorf("Publish = %+v", cfg.Publish)
	}
	tests := []struct {
		id         string
		formatType string
		folder     string // "" for SQL sources
		driver     string
		dsn        string
		dateFmts   []string
		testData   bool
	}{
		{id: "d81001-patients", formatType: "csv", folder: filepath.Join(dir, "drops", "d81001"), dateFmts: []string{"02/01/2006"}},
		{id: "rgt-encounters", formatType: "xlsx", folder: filepath.FromSlash("/srv/drops/rgt"), dateFmts: []string{"2006-01-02"}},
		{id: "la505-clients", formatType: "pipe", folder: filepath.Join(dir, "drops", "social"), dateFmts: []string{"2006-01-02"}},
		{id: "ryv-patients", driver: "postgres", dsn: "postgres://export:s3cret-export@db.example:5432/export", dateFmts: []string{"2006-01-02"}, testData: true},
		{id: "mh-patients", driver: "mysql", dsn: "reader:fallback-pw@tcp(mysql.example:3306)/mh", dateFmts: []string{"2006-01-02"}},
	}
	if len(cfg.Sources) != len(tests) {
		t.Fatalf("got %d sources, want %d", len(cfg.Sources), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			s := cfg.Sources[i]
			if s.ID != tt.id {
				t.Fatalf("source %d is %q", i, s.ID)
			}
			if got, ok := cfg.Source(tt.id); !ok || got.ID != tt.id {
				t.Errorf("Source(%q) = %v, %v", tt.id, got.ID, ok)
			}
			if s.Mode != "snapshot" {
				t.Errorf("Mode = %q", s.Mode)
			}
			if !slices.Equal(s.DateFormats, tt.dateFmts) {
				t.Errorf("DateFormats = %q, want %q", s.DateFormats, tt.dateFmts)
			}
			if s.TestData != tt.testData {
				t.Errorf("TestData = %v", s.TestData)
			}
			if tt.folder != "" {
				if s.From.Folder == nil || s.From.SQL != nil {
					t.Fatalf("From = %+v, want a folder", s.From)
				}
				if s.From.Folder.Path != tt.folder {
					t.Errorf("folder path = %q, want %q", s.From.Folder.Path, tt.folder)
				}
				if s.Format.Type != tt.formatType {
					t.Errorf("Format.Type = %q, want %q", s.Format.Type, tt.formatType)
				}
				return
			}
			if s.From.SQL == nil || s.From.Folder != nil {
				t.Fatalf("From = %+v, want sql", s.From)
			}
			if s.From.SQL.Driver != tt.driver || s.From.SQL.DSN != tt.dsn {
				t.Errorf("SQL = %q %q, want %q %q", s.From.SQL.Driver, s.From.SQL.DSN, tt.driver, tt.dsn)
			}
		})
	}
	if _, ok := cfg.Source("nope"); ok {
		t.Error(`Source("nope") found a source`)
	}
	loc, err := cfg.Location()
	if err != nil || loc.String() != "Europe/London" {
		t.Errorf("Location() = %v, %v", loc, err)
	}
}

func TestFormatTypeFromPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, want string
	}{
		{"csv", "p_*.csv", "csv"},
		{"xlsx", "p_*.xlsx", "xlsx"},
		{"xlsx upper case", "P_*.XLSX", "xlsx"},
		{"tsv", "p_*.tsv", "tsv"},
		{"tab", "p_*.tab", "tsv"},
		{"psv", "p_*.psv", "pipe"},
		{"pipe", "p_*.pipe", "pipe"},
		{"txt defaults to csv", "p_*.txt", "csv"},
		{"no extension", "p_*", "csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			format := ""
			if tt.want == "xlsx" {
				format = "\n    format: {sheet: S}"
			}
			yml := "objections: {register: {path: r}}\nsources:\n  - id: s\n    org: ABC\n    kind: persons\n" +
				"    from: {folder: {path: d, pattern: \"" + tt.pattern + "\"}}\n    columns: {local_id: L}" + format + "\n"
			cfg, err := config.Parse([]byte(yml), dir, nil)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if got := cfg.Sources[0].Format.Type; got != tt.want {
				t.Errorf("type from %q = %q, want %q", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestParseExplicitFormatTypeWins(t *testing.T) {
	t.Parallel()
	yml := "objections: {register: {path: r}}\nsources:\n  - id: s\n    org: ABC\n    kind: persons\n" +
		"    from: {folder: {path: d, pattern: \"x_*.txt\"}}\n    format: {type: tsv}\n    columns: {local_id: L}\n"
	cfg, err := config.Parse([]byte(yml), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].Format.Type; got != "tsv" {
		t.Errorf("Format.Type = %q, want tsv", got)
	}
}

func TestParseRelativeDir(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(readTestdata(t, "minimal.yaml"), "testdata", nil)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != abs {
		t.Errorf("Dir = %q, want %q", cfg.Dir, abs)
	}
	if want := filepath.Join(abs, "drops", "objections"); cfg.Objections.Register.Path != want {
		t.Errorf("register path = %q, want %q", cfg.Objections.Register.Path, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Join("testdata", "good.yaml"), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata")
	if cfg.Dir != abs {
		t.Errorf("Dir = %q, want %q", cfg.Dir, abs)
	}
	if _, err := config.Load(filepath.Join("testdata", "no-such.yaml"), nil); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	_, err = config.Load(filepath.Join("testdata", "good.yaml"), nil)
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "good.yaml") {
		t.Errorf("Load without EXPORT_PASSWORD = %v, want ErrInvalid naming the file", err)
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		store   string // value written after "store: "
		vars    map[string]string
		want    string
		wantErr []string // substrings of the error; nil means success
	}{
		{name: "set", store: "${S}", vars: map[string]string{"S": "sqlite:a.db"}, want: "sqlite:a.db"},
		{name: "default when unset", store: "${S:-sqlite:b.db}", want: "sqlite:b.db"},
		{name: "value beats default", store: "${S:-sqlite:b.db}", vars: map[string]string{"S": "sqlite:a.db"}, want: "sqlite:a.db"},
		{name: "empty value takes default", store: "${S:-sqlite:b.db}", vars: map[string]string{"S": ""}, want: "sqlite:b.db"},
		{name: "empty default", store: "sqlite:${S:-}x.db", want: "sqlite:x.db"},
		{name: "inside a value", store: "postgres://u:${PW}@h/db", vars: map[string]string{"PW": "pw"}, want: "postgres://u:pw@h/db"},
		{name: "two references", store: "${A}${B}", vars: map[string]string{"A": "sqlite:", "B": "c.db"}, want: "sqlite:c.db"},
		{name: "not a reference", store: "sqlite:$S.db", want: "sqlite:$S.db"},
		{name: "unset without default", store: "${STORE_DSN}", wantErr: []string{"STORE_DSN", "not set"}},
		{name: "every unset variable named", store: "${AAA}${BBB:-x}${CCC}", wantErr: []string{"AAA", "CCC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			yml := "store: " + tt.store + "\nobjections: {register: {path: r}}\nsources:\n  - id: s\n    org: ABC\n    kind: persons\n" +
				"    from: {folder: {path: d, pattern: \"*.csv\"}}\n    columns: {local_id: L}\n"
			cfg, err := config.Parse([]byte(yml), dir, env(tt.vars))
			if tt.wantErr != nil {
				if !errors.Is(err, config.ErrInvalid) {
					t.Fatalf("Parse = %v, want ErrInvalid", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "BBB") {
					t.Errorf("error %q names a variable that has a default", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if cfg.Store != tt.want {
				t.Errorf("Store = %q, want %q", cfg.Store, tt.want)
			}
		})
	}
}

func TestExpandNilLookupUsesDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(readTestdata(t, "good.yaml"), dir, func(k string) (string, bool) {
		if k == "EXPORT_PASSWORD" {
			return "x", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[4].From.SQL.DSN; !strings.Contains(got, "fallback-pw") {
		t.Errorf("DSN = %q, want the default password", got)
	}
	if _, err := config.Parse(readTestdata(t, "good.yaml"), dir, nil); err == nil || !strings.Contains(err.Error(), "EXPORT_PASSWORD") {
		t.Errorf("Parse with nil lookup = %v, want EXPORT_PASSWORD not set", err)
	}
}

func TestUnknownKeysRejected(t *testing.T) {
	t.Parallel()
	base := "objections: {register: {path: r}}\nsources:\n  - id: s\n    org: ABC\n    kind: persons\n" +
		"    from: {folder: {path: d, pattern: \"*.csv\"}}\n    columns: {local_id: L}\n"
	tests := []struct {
		name, yml, key string
	}{
		{"top level", base + "stroe: sqlite:x.db\n", "stroe"},
		{"objections", strings.Replace(base, "{register: {path: r}}", "{register: {path: r}, maxage: 1h}", 1), "maxage"},
		{"register", strings.Replace(base, "{path: r}", "{path: r, glob: x}", 1), "glob"},
		{"source", base + "    orgname: X\n", "orgname"},
		{"folder", strings.Replace(base, "pattern: \"*.csv\"", "pattern: \"*.csv\", recursive: true", 1), "recursive"},
		{"format", base + "    format: {type: csv, quote: \"'\"}\n", "quote"},
		{"publish", base + "publish: {keep: 3}\n", "keep"},
		{"s3 not supported", strings.Replace(base, "{folder: {path: d, pattern: \"*.csv\"}}", "{s3: {bucket: b}}", 1), "s3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := config.Parse([]byte(base), dir, nil); err != nil {
				t.Fatalf("base config is invalid: %v", err)
			}
			_, err := config.Parse([]byte(tt.yml), dir, nil)
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Parse = %v, want ErrInvalid naming %q", err, tt.key)
			}
		})
	}
}

func TestParseBadYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yml, want string
	}{
		{"bad duration", "objections: {register: {path: r}, max_age: soon}\n", "duration"},
		{"duration not a string", "objections: {register: {path: r}, max_age: [1]}\n", "duration"},
		{"not a mapping", "- a\n- b\n", ""},
		{"keep_versions not a number", "publish: {keep_versions: many}\n", ""},
		{"broken syntax", "store: [\n", ""},
		{"empty file", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse([]byte(tt.yml), dir, nil)
			if !errors.Is(err, config.ErrInvalid) || cfg != nil {
				t.Fatalf("Parse = %v, %v; want ErrInvalid", cfg, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// validConfig returns a fresh valid configuration with one source of each
// origin (0: folder persons, 1: folder care items, 2: sql persons).
func validConfig(t *testing.T) *config.Config {
	t.Helper()
	yml := `
objections:
  register: {path: drops/objections}
sources:
  - id: gp-patients
    org: D81001
    org_type: gp_practice
    kind: persons
    from: {folder: {path: drops/gp, pattern: "p_*.csv"}}
    columns: {local_id: PatientID, nhs_number: NHSNo}
  - id: gp-problems
    org: D81001
    kind: care_items
    item_kind: problem
    from: {folder: {path: drops/gp, pattern: "q_*.xlsx"}}
    format: {sheet: Problems}
    columns: {local_id: PatientID, code: Code}
  - id: ryv-patients
    org: RYV
    kind: persons
    from: {sql: {dsn: "postgres://u:topsecret@h/db", query: "SELECT 1"}}
    columns: {local_id: ref}
`
	cfg, err := config.Parse([]byte(yml), dir, nil)
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	return cfg
}

// TestValidateRules has one case per rule in validate.go.
func TestValidateRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string
	}{
		{"store scheme", func(c *config.Config) { c.Store = "mysql://root:topsecret@h/db" }, `store: "mysql://root:xxxxx@h/db" is neither`},
		{"timezone", func(c *config.Config) { c.Timezone = "Europe/Atlantis" }, `timezone: "Europe/Atlantis" is not a known time zone`},
		{"register path", func(c *config.Config) { c.Objections.Register.Path = "" }, "objections.register.path: required"},
		{"register pattern", func(c *config.Config) { c.Objections.Register.Pattern = "[a" }, "objections.register.pattern: syntax error"},
		{"max_age negative", func(c *config.Config) { c.Objections.MaxAge = config.Duration(-time.Hour) }, "objections.max_age: must be positive"},
		{"publish schedule", func(c *config.Config) { c.Publish.Schedule = "at five" }, `publish.schedule: "at five"`},
		{"keep_versions", func(c *config.Config) { c.Publish.KeepVersions = 1 }, "publish.keep_versions: at least 2"},
		{"no sources", func(c *config.Config) { c.Sources = nil }, "sources: at least one source is required"},
		{"id required", func(c *config.Config) { c.Sources[0].ID = "" }, "sources[0]: id: required"},
		{"id pattern", func(c *config.Config) { c.Sources[0].ID = "GP_Patients" }, `source "GP_Patients": id: use lower case letters, digits and dashes`},
		{"id duplicate", func(c *config.Config) { c.Sources[1].ID = "gp-patients" }, `source "gp-patients": id: used by another source`},
		{"org", func(c *config.Config) { c.Sources[0].Org = "D8-1" }, `source "gp-patients": org: "D8-1" is not an ODS code`},
		{"org_type", func(c *config.Config) { c.Sources[0].OrgType = "pharmacy" }, `org_type: "pharmacy" is not one of`},
		{"persons local_id", func(c *config.Config) { delete(c.Sources[0].Columns, "local_id") }, "columns.local_id: required for a persons source"},
		{"care_items code", func(c *config.Config) { delete(c.Sources[1].Columns, "code") }, "columns.code: required for a care_items source"},
		{"care_items local_id", func(c *config.Config) { delete(c.Sources[1].Columns, "local_id") }, "columns.local_id: required for a care_items source"},
		{"item_kind", func(c *config.Config) { c.Sources[1].ItemKind = "gossip" }, `item_kind: "gossip" is not one of`},
		{"kind", func(c *config.Config) { c.Sources[0].Kind = "people" }, `kind: "people" is neither persons nor care_items`},
		{"column not a field", func(c *config.Config) { c.Sources[0].Columns["shoe_size"] = "Shoes" }, "columns.shoe_size: not a persons field"},
		{"empty column name", func(c *config.Config) { c.Sources[0].Columns["nhs_number"] = "  " }, "columns.nhs_number: empty column name"},
		{"folder and sql", func(c *config.Config) { c.Sources[0].From.SQL = &config.SQL{Driver: "postgres", DSN: "x", Query: "y"} }, "from: give one of folder, sql or s3"},
		{"folder path", func(c *config.Config) { c.Sources[0].From.Folder.Path = "" }, "from.folder.path: required"},
		{"folder pattern required", func(c *config.Config) { c.Sources[0].From.Folder.Pattern = "" }, "from.folder.pattern: required"},
		{"folder pattern syntax", func(c *config.Config) { c.Sources[0].From.Folder.Pattern = "p_[.csv" }, "from.folder.pattern: syntax error"},
		{"xlsx sheet", func(c *config.Config) { c.Sources[1].Format.Sheet = "" }, "format.sheet: required for an xlsx source"},
		{"format type", func(c *config.Config) { c.Sources[0].Format.Type = "parquet" }, `format.type: "parquet" is not csv, tsv, pipe or xlsx`},
		{"delimiter", func(c *config.Config) { c.Sources[0].Format.Delimiter = ";;" }, "format.delimiter: one character"},
		{"encoding", func(c *config.Config) { c.Sources[0].Format.Encoding = "ebcdic" }, `format.encoding: "ebcdic" is not utf-8 or windows-1252`},
		{"sql driver", func(c *config.Config) { c.Sources[2].From.SQL.Driver = "oracle" }, `from.sql.driver: "oracle" is neither postgres nor mysql`},
		{"sql dsn", func(c *config.Config) { c.Sources[2].From.SQL.DSN = "" }, "from.sql.dsn: required"},
		{"sql query", func(c *config.Config) { c.Sources[2].From.SQL.Query = " \n" }, "from.sql.query: required"},
		{"from required", func(c *config.Config) { c.Sources[2].From.SQL = nil }, "from: required (folder, sql or s3)"},
		{"mode", func(c *config.Config) { c.Sources[0].Mode = "stream" }, `mode: "stream" is neither snapshot nor delta`},
		{"date_formats", func(c *config.Config) { c.Sources[0].DateFormats = []string{"dd/mm/yyyy"} }, `date_formats: "dd/mm/yyyy" is not a Go time layout`},
		{"source schedule", func(c *config.Config) { c.Sources[0].Schedule = "61 * * * *" }, `source "gp-patients": schedule: "61 * * * *"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig(t)
			if err := c.Validate(); err != nil {
				t.Fatalf("valid config: %v", err)
			}
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("Validate() = %v, not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if n := len(unwrapAll(err)); n != 1 {
				t.Errorf("Validate() reported %d problems, want 1: %v", n, err)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("Validate() leaks a password: %v", err)
			}
		})
	}
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(readTestdata(t, "many_problems.yaml"), dir, nil)
	if cfg != nil || err == nil {
		t.Fatalf("Parse = %v, %v; want an error", cfg, err)
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Errorf("error is not ErrInvalid: %v", err)
	}
	want := []string{
		`store: "mysql://root:xxxxx@db/careindex" is neither`,
		`timezone: "Mars/Olympus_Mons"`,
		"objections.register.path: required",
		"objections.register.pattern:",
		"objections.max_age: must be positive",
		`publish.schedule: "every night"`,
		"publish.keep_versions: at least 2",
		`source "Bad_ID": id: use lower case`,
		`source "Bad_ID": org: "D8" is not an ODS code`,
		`source "Bad_ID": org_type: "pharmacy"`,
		`source "Bad_ID": columns.local_id: required for a persons source`,
		`source "Bad_ID": columns.shoe_size: not a persons field`,
		`source "Bad_ID": format.type: "parquet"`,
		`source "Bad_ID": format.delimiter: one character`,
		`source "Bad_ID": format.encoding: "ebcdic"`,
		`source "Bad_ID": mode: "stream"`,
		`source "Bad_ID": date_formats: "dd/mm/yyyy"`,
		`source "Bad_ID": schedule: "61 * * * *"`,
		"sources[1]: id: required",
		"sources[1]: columns.local_id: required for a care_items source",
		"sources[1]: columns.code: required for a care_items source",
		`sources[1]: item_kind: "gossip"`,
		`sources[1]: from.sql.driver: "oracle"`,
		"sources[1]: from.sql.dsn: required",
		"sources[1]: from.sql.query: required",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not report %q", w)
		}
	}
	errs := unwrapAll(err)
	if len(errs) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for _, e := range errs {
		if !errors.Is(e, config.ErrInvalid) {
			t.Errorf("problem %q is not wrapped with ErrInvalid", e)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Error("error leaks the store password")
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		dsn      string
		password string // must not appear in the result; "" when there is none
		want     string // exact result, when given
	}{
		{name: "postgres URL", dsn: "postgres://careindex:pa55word@db:5432/careindex?sslmode=disable", password: "pa55word",
			want: "postgres://careindex:xxxxx@db:5432/careindex?sslmode=disable"},
		{name: "postgresql URL", dsn: "postgresql://u:pw-123@h/db", password: "pw-123", want: "postgresql://u:xxxxx@h/db"},
		{name: "URL with escaped password", dsn: "postgres://u:p%40ss%2Fw@h/db", password: "p%40ss", want: "postgres://u:xxxxx@h/db"},
		{name: "URL with an @ in the password", dsn: "postgres://u:p@ssw0rd@h/db", password: "ssw0rd"},
		{name: "URL with a bad escape", dsn: "postgres://u:p%zzsecret@h/db", password: "zzsecret"},
		{name: "URL without password", dsn: "postgres://careindex@db/careindex", want: "postgres://careindex@db/careindex"},
		{name: "URL without user", dsn: "postgres://db/careindex", want: "postgres://db/careindex"},
		{name: "sqlite", dsn: "sqlite:careindex.db", want: "sqlite:careindex.db"},
		{name: "key=value", dsn: "host=db user=careindex password=kv-secret dbname=ci", password: "kv-secret",
			want: "host=db user=careindex password=xxxxx dbname=ci"},
		{name: "key=value quoted", dsn: "host=db password='two words' dbname=ci", password: "two words",
			want: "host=db password=xxxxx dbname=ci"},
		{name: "key = value spaced", dsn: "host=db password = spaced-secret dbname=ci", password: "spaced-secret"},
		{name: "key=value upper case", dsn: "host=db PASSWORD=UpperSecret", password: "UpperSecret"},
		{name: "key=value last", dsn: "host=db password=tail-secret", password: "tail-secret"},
		{name: "mysql tcp", dsn: "reader:my-secret@tcp(mysql.example:3306)/mh?parseTime=true", password: "my-secret",
			want: "reader:xxxxx@tcp(mysql.example:3306)/mh?parseTime=true"},
		{name: "mysql tcp password with colon and at", dsn: "reader:a:b@c@tcp(127.0.0.1:3306)/mh", password: "a:b@c",
			want: "reader:xxxxx@tcp(127.0.0.1:3306)/mh"},
		{name: "mysql without password", dsn: "reader@tcp(127.0.0.1:3306)/mh", want: "reader@tcp(127.0.0.1:3306)/mh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := config.RedactDSN(tt.dsn)
			if tt.password != "" && strings.Contains(got, tt.password) {
				t.Errorf("RedactDSN(%q) = %q still contains the password", tt.dsn, got)
			}
			if tt.password != "" && !strings.Contains(got, "xxxxx") {
				t.Errorf("RedactDSN(%q) = %q has no xxxxx", tt.dsn, got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}

func TestRedactedCopies(t *testing.T) {
	t.Parallel()
	cfg := parseGood(t)
	cfg.Store = "postgres://careindex:store-secret@db/careindex"
	r := cfg.Redacted()

	if strings.Contains(r.Store, "store-secret") || !strings.Contains(r.Store, "xxxxx") {
		t.Errorf("redacted Store = %q", r.Store)
	}
	for _, s := range r.Sources {
		if s.From.SQL == nil {
			continue
		}
		for _, pw := range []string{"s3cret-export", "fallback-pw"} {
			if strings.Contains(s.From.SQL.DSN, pw) {
				t.Errorf("redacted source %s DSN = %q", s.ID, s.From.SQL.DSN)
			}
		}
	}
	// The original is untouched.
	if cfg.Store != "postgres://careindex:store-secret@db/careindex" {
		t.Errorf("original Store changed to %q", cfg.Store)
	}
	if got := cfg.Sources[3].From.SQL.DSN; !strings.Contains(got, "s3cret-export") {
		t.Errorf("original DSN changed to %q", got)
	}
	if got := cfg.Sources[4].From.SQL.DSN; !strings.Contains(got, "fallback-pw") {
		t.Errorf("original DSN changed to %q", got)
	}
	// The copy does not share the SQL settings or the source slice.
	if r.Sources[3].From.SQL == cfg.Sources[3].From.SQL {
		t.Error("redacted copy shares the SQL settings")
	}
	r.Sources[0].ID = "changed"
	if cfg.Sources[0].ID == "changed" {
		t.Error("redacted copy shares the source slice")
	}
	// Everything else is as it was.
	if r.Sources[0].From.Folder.Path != cfg.Sources[0].From.Folder.Path || r.Timezone != cfg.Timezone || r.Dir != cfg.Dir {
		t.Error("redacted copy differs in more than the DSNs")
	}
	if got := r.Sources[4].From.SQL.DSN; got != "reader:xxxxx@tcp(mysql.example:3306)/mh" {
		t.Errorf("redacted mysql DSN = %q", got)
	}
}

// TestRedactDSNMySQLOtherProtocols: RedactDSN's comment promises to hide
// "a user:password@ prefix of a MySQL DSN", not only the tcp(...) form.
func TestRedactDSNMySQLOtherProtocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn, password string
	}{
		{"unix socket", "reader:sock-secret@unix(/run/mysqld/mysqld.sock)/mh", "sock-secret"},
		{"default address", "reader:bare-secret@/mh?parseTime=true", "bare-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := config.RedactDSN(tt.dsn); strings.Contains(got, tt.password) {
				t.Errorf("RedactDSN(%q) = %q still contains the password", tt.dsn, got)
			}
		})
	}
}

// TestExpandIgnoresComments: a ${VAR} inside a YAML comment (a commented-out
// setting, or documentation) is not a reference and must not make Parse fail.
func TestExpandIgnoresComments(t *testing.T) {
	t.Parallel()
	yml := "# store: ${OLD_STORE}\nobjections: {register: {path: r}}  # ${ALSO_UNSET}\nsources:\n  - id: s\n    org: ABC\n    kind: persons\n" +
		"    from: {folder: {path: d, pattern: \"*.csv\"}}\n    columns: {local_id: L}\n"
	if _, err := config.Parse([]byte(yml), dir, env(nil)); err != nil {
		t.Errorf("Parse = %v, want success", err)
	}
}
