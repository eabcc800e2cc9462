// Package config reads and checks careindex's one configuration file: the
// store, the objection register, every source and the publish schedule.
//
// Load parses the YAML, expands ${VAR} and ${VAR:-default} references through
// a lookup function the caller passes in (the CLI passes os.LookupEnv, tests
// pass a map), resolves relative paths against the file's folder, fills in
// defaults and calls Validate, which reports every problem at once.
//
// Secrets such as database passwords live in DSNs. Config.Redacted returns a
// copy that is safe to print or log.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultStore is the store used when the configuration names none: an
// embedded SQLite file in the working directory.
const DefaultStore = "sqlite:careindex.db"

// Config is the whole configuration.
type Config struct {
	// Store is the DSN of the regional store: postgres://… or sqlite:PATH.
	// Defaults to DefaultStore.
	Store string `yaml:"store"`
	// Timezone is the IANA zone that schedules run in. Defaults to Europe/London.
	Timezone string `yaml:"timezone"`
	// Objections describes the objection register. Required.
	Objections Objections `yaml:"objections"`
	// Sources lists every feed. At least one is required.
	Sources []Source `yaml:"sources"`
	// Publish configures the publish job.
	Publish Publish `yaml:"publish"`
	// Retry says how scheduled jobs retry transient failures.
	Retry Retry `yaml:"retry"`
	// Alerts says where alerts go and what reject rate raises one.
	Alerts Alerts `yaml:"alerts"`
	// Matching configures probabilistic matching of records without an
	// NHS number.
	Matching Matching `yaml:"matching"`

	// Dir is the folder of the configuration file; relative paths were
	// resolved against it.
	Dir string `yaml:"-"`
}

// Objections describes where the objection register comes from.
type Objections struct {
	// Register is the folder drop the register is read from.
	Register Folder `yaml:"register"`
	// MaxAge is how old the newest register file may be before the run
	// refuses to publish. Defaults to 36h.
	MaxAge Duration `yaml:"max_age"`
	// SensitiveCodes is a CSV (code,category) of care item codes that are
	// never published. Optional; when set and unreadable, nothing is published.
	SensitiveCodes string `yaml:"sensitive_codes"`
	// SensitiveRefsets are SNOMED CT simple reference set files in the RF2
	// format whose active members are sensitive codes.
	SensitiveRefsets []string `yaml:"sensitive_refsets"`
	// RefsetCategories names the category of each refset id. Defaults to
	// the four GP summary exclusion reference sets.
	RefsetCategories map[string]string `yaml:"refset_categories"`
	// Overrides is the folder drop of the override register ("objection
	// not upheld" decisions). Optional.
	Overrides *Folder `yaml:"overrides"`
	// WithheldItems is a CSV (org_code,item_id) of care items patients
	// asked to withhold. Optional.
	WithheldItems string `yaml:"withheld_items"`
}

// Publish configures the publish job.
type Publish struct {
	// Schedule is a cron expression in Config.Timezone (five fields, or six
	// with seconds first; see ParseCron).
	Schedule string `yaml:"schedule"`
	// KeepVersions is how many published versions are kept, the live one
	// included. Defaults to 2 (live and previous, for rollback).
	KeepVersions int `yaml:"keep_versions"`
}

// Source is one feed from an organisation.
type Source struct {
	// ID names the source; unique, lower case letters, digits and dashes.
	ID string `yaml:"id"`
	// Org is the ODS code of the organisation.
	Org string `yaml:"org"`
	// OrgName is the organisation's name, as published.
	OrgName string `yaml:"org_name"`
	// OrgType is gp_practice, hospital, community, mental_health or
	// social_care. A gp_practice is the registered practice of the people it sends.
	OrgType string `yaml:"org_type"`
	// Kind is persons or care_items.
	Kind string `yaml:"kind"`
	// ItemKind is the care item kind for every row of a care_items source
	// whose columns do not map a kind column (encounter, problem, ...).
	ItemKind string `yaml:"item_kind"`
	// CodeSystem is the code system for every row when no column maps one.
	CodeSystem string `yaml:"code_system"`
	// From says where deliveries come from: exactly one of Folder or SQL.
	From From `yaml:"from"`
	// Format describes the file format (ignored for SQL sources).
	Format Format `yaml:"format"`
	// Columns maps careindex fields to the delivery's column names.
	Columns map[string]string `yaml:"columns"`
	// DateFormats are Go time layouts tried in order for every date field.
	// Defaults to ["2006-01-02"]. Excel serial numbers are always accepted.
	DateFormats []string `yaml:"date_formats"`
	// Mode is snapshot (each delivery is the whole set) or delta (each
	// delivery holds the changes since the last). Defaults to snapshot.
	Mode string `yaml:"mode"`
	// Delta configures a delta source.
	Delta Delta `yaml:"delta"`
	// Schedule is the source's cron expression in Config.Timezone (see
	// ParseCron); the scheduler runs the source's extract job on it.
	Schedule string `yaml:"schedule"`
	// TestData marks a source whose NHS numbers may be in the 999 test range.
	TestData bool `yaml:"test_data"`
	// ShrinkLimit holds a snapshot delivery for review instead of
	// publishing it when it has this fraction fewer rows than the
	// delivery in the index, or none at all. Defaults to 0.5; 1 turns the
	// check off.
	ShrinkLimit float64 `yaml:"shrink_limit"`
	// Freshness says when the source's newest delivery is late or
	// missing. Optional: without it the source's age is shown, not judged.
	Freshness *Freshness `yaml:"freshness"`
	// RejectRateThreshold overrides Alerts.RejectRate for this source (0:
	// use Alerts.RejectRate).
	RejectRateThreshold float64 `yaml:"reject_rate_threshold"`
}

// Delta configures how a delta source's deliveries follow each other.
type Delta struct {
	// Sequence is how a delivery's place is read from its file name:
	// "name" (the last run of digits; each delivery is the previous + 1) or
	// "date" (the yyyymmdd in the name; one delivery a day). Defaults to name.
	Sequence string `yaml:"sequence"`
	// SnapshotPattern matches full snapshots in the same folder; a
	// snapshot newer than the last applied delivery resets the source,
	// and is the way back after a missing delta.
	SnapshotPattern string `yaml:"snapshot_pattern"`
}

// From says where a source's deliveries come from: exactly one of these.
type From struct {
	Folder *Folder `yaml:"folder"`
	SQL    *SQL    `yaml:"sql"`
	S3     *S3     `yaml:"s3"`
}

// S3 is a bucket prefix that deliveries are dropped into.
type S3 struct {
	Bucket string `yaml:"bucket"`
	// Prefix is the "folder" in the bucket (one level; "/" added).
	Prefix string `yaml:"prefix"`
	// Pattern is a glob matched against the object's base name.
	Pattern string `yaml:"pattern"`
	// Endpoint is the URL of an S3-compatible store; empty for AWS.
	Endpoint string `yaml:"endpoint"`
	// Region defaults to eu-west-2.
	Region    string `yaml:"region"`
	PathStyle bool   `yaml:"path_style"`
	// AccessKeyEnv and SecretKeyEnv name environment variables holding
	// static credentials; when both are empty the standard AWS chain is used.
	AccessKeyEnv string `yaml:"access_key_env"`
	SecretKeyEnv string `yaml:"secret_key_env"`
	// Complete says when a delivery is complete enough to read.
	Complete *Complete `yaml:"complete"`
	// Tag, when set, is put on processed objects (the credentials need
	// s3:PutObjectTagging).
	Tag map[string]string `yaml:"tag"`
}

// Folder is a drop folder and the glob pattern of the delivery files in it.
type Folder struct {
	Path    string `yaml:"path"`
	Pattern string `yaml:"pattern"`
	// Complete says when a delivery is complete enough to read.
	Complete *Complete `yaml:"complete"`
	// Archive, when set, is the folder processed deliveries are moved to.
	Archive string `yaml:"archive"`
}

// Complete says when a delivery may be read: every condition set must
// hold. With none set, the newest matching file is read as it is.
type Complete struct {
	// Marker is the suffix of a marker file the sender writes last
	// (".done": patients_20261124.csv.done or patients_20261124.done).
	Marker string `yaml:"marker"`
	// Manifest is the glob of manifest files (JSON or CSV: name, rows,
	// sha256) that list the delivery; a delivery that disagrees with its
	// manifest fails whole.
	Manifest string `yaml:"manifest"`
	// StableFor: the file's size and modification time must not have
	// changed for this long.
	StableFor Duration `yaml:"stable_for"`
}

// SQL is a query against an organisation's export database.
type SQL struct {
	// Driver is postgres (the default) or mysql.
	Driver string `yaml:"driver"`
	// DSN is the connection string; may hold ${VAR} references for secrets.
	DSN string `yaml:"dsn"`
	// Query returns one row per record, with the mapped column names.
	Query string `yaml:"query"`
}

// Format describes a file format.
type Format struct {
	// Type is csv, tsv, pipe or xlsx. Defaults from the file extension.
	Type string `yaml:"type"`
	// Delimiter overrides the type's delimiter (one character).
	Delimiter string `yaml:"delimiter"`
	// Encoding is utf-8 (default) or windows-1252.
	Encoding string `yaml:"encoding"`
	// Sheet is the worksheet of an xlsx workbook.
	Sheet string `yaml:"sheet"`
	// TrimSpace trims white space around every field.
	TrimSpace bool `yaml:"trim_space"`
}

// Duration is a time.Duration written as "36h" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: %w", n.Line, s, err)
	}
	*d = Duration(v)
	return nil
}

// PersonFields are the column mapping keys of a persons source.
var PersonFields = []string{"local_id", "nhs_number", "family_name", "given_name", "date_of_birth", "sex", "postcode", "gp_practice", "sensitive", "objection", "address", "email", "phone", "action"}

// CareItemFields are the column mapping keys of a care_items source.
var CareItemFields = []string{"local_id", "item_id", "kind", "code_system", "code", "display", "start_date", "end_date", "status", "action"}

// Load reads, expands, defaults and validates the configuration at path.
// lookup resolves ${VAR} references; pass os.LookupEnv in production.
func Load(path string, lookup func(string) (string, bool)) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(raw, filepath.Dir(path), lookup)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load for bytes already read; dir resolves relative paths.
func Parse(raw []byte, dir string, lookup func(string) (string, bool)) (*Config, error) {
	expanded, err := expand(string(raw), lookup)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(expanded)))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", dir, err)
	}
	cfg.Dir = abs
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

var refPattern = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default} outside comments. An unset
// variable with no default is an error, named without its value.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	replace := func(m string) string {
		sub := refPattern.FindStringSubmatch(m)
		if lookup != nil {
			if v, ok := lookup(sub[1]); ok && v != "" {
				return v
			}
		}
		if sub[2] != "" {
			return sub[3]
		}
		missing = append(missing, sub[1])
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	for i, line := range lines {
		code, comment := splitComment(line)
		lines[i] = refPattern.ReplaceAllStringFunc(code, replace) + comment
	}
	out := strings.Join(lines, "")
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: environment variable %s is not set", ErrInvalid, strings.Join(missing, ", "))
	}
	return out, nil
}

// splitComment splits a YAML line before the # that starts a comment (at
// the start of the line or after white space, outside quotes).
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

func (c *Config) withDefaults() {
	c.operationsDefaults()
	c.matchingDefaults()
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.Timezone == "" {
		c.Timezone = "Europe/London"
	}
	if c.Objections.MaxAge == 0 {
		c.Objections.MaxAge = Duration(36 * time.Hour)
	}
	if c.Publish.KeepVersions == 0 {
		c.Publish.KeepVersions = 2
	}
	c.Objections.Register.Path = c.resolve(c.Objections.Register.Path)
	c.Objections.SensitiveCodes = c.resolve(c.Objections.SensitiveCodes)
	c.Objections.WithheldItems = c.resolve(c.Objections.WithheldItems)
	for i, p := range c.Objections.SensitiveRefsets {
		c.Objections.SensitiveRefsets[i] = c.resolve(p)
	}
	if c.Objections.Overrides != nil {
		c.Objections.Overrides.Path = c.resolve(c.Objections.Overrides.Path)
		if c.Objections.Overrides.Pattern == "" {
			c.Objections.Overrides.Pattern = "*.csv"
		}
	}
	if c.Objections.Register.Pattern == "" {
		c.Objections.Register.Pattern = "*.csv"
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Mode == "" {
			s.Mode = "snapshot"
		}
		if s.Mode == "delta" && s.Delta.Sequence == "" {
			s.Delta.Sequence = "name"
		}
		if s.ShrinkLimit == 0 {
			s.ShrinkLimit = 0.5
		}
		if len(s.DateFormats) == 0 {
			s.DateFormats = []string{"2006-01-02"}
		}
		s.Org = strings.ToUpper(strings.TrimSpace(s.Org))
		if s.From.Folder != nil {
			s.From.Folder.Path = c.resolve(s.From.Folder.Path)
			s.From.Folder.Archive = c.resolve(s.From.Folder.Archive)
			if s.Format.Type == "" {
				s.Format.Type = typeFromPattern(s.From.Folder.Pattern)
			}
		}
		if s.From.S3 != nil && s.Format.Type == "" {
			s.Format.Type = typeFromPattern(s.From.S3.Pattern)
		}
		if s.From.SQL != nil && s.From.SQL.Driver == "" {
			s.From.SQL.Driver = "postgres"
		}
		if s.Format.Encoding == "" {
			s.Format.Encoding = "utf-8"
		}
	}
	if strings.HasPrefix(c.Store, "sqlite:") {
		p := strings.TrimPrefix(c.Store, "sqlite:")
		if p != "" && !filepath.IsAbs(p) {
			// A relative sqlite path is relative to the working directory,
			// as on the command line; leave it as written.
			c.Store = "sqlite:" + p
		}
	}
}

func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

func typeFromPattern(pattern string) string {
	switch strings.ToLower(filepath.Ext(pattern)) {
	case ".xlsx":
		return "xlsx"
	case ".tsv", ".tab":
		return "tsv"
	case ".psv", ".pipe":
		return "pipe"
	default:
		return "csv"
	}
}

// Source returns the source with the given id.
func (c *Config) Source(id string) (Source, bool) {
	for _, s := range c.Sources {
		if s.ID == id {
			return s, true
		}
	}
	return Source{}, false
}

// Location returns the configured time zone.
func (c *Config) Location() (*time.Location, error) {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", c.Timezone, err)
	}
	return loc, nil
}

// Redacted returns a copy with passwords in every DSN replaced by "xxxxx".
func (c *Config) Redacted() Config {
	out := *c
	out.Store = RedactDSN(c.Store)
	out.Alerts = c.Alerts.redacted()
	out.Sources = make([]Source, len(c.Sources))
	for i, s := range c.Sources {
		if s.From.SQL != nil {
			q := *s.From.SQL
			q.DSN = RedactDSN(q.DSN)
			s.From.SQL = &q
		}
		out.Sources[i] = s
	}
	return out
}

var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)
var atPassword = regexp.MustCompile(`^([a-z0-9+]+://[^:/@]*:)[^@]*@`)

// RedactDSN hides the password in a URL or key=value DSN, or a
// user:password@ prefix of a MySQL DSN.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
		return dsn
	}
	if strings.Contains(dsn, "://") {
		dsn = atPassword.ReplaceAllString(dsn, "${1}xxxxx@")
	} else if slash := strings.LastIndex(dsn, "/"); slash > 0 {
		// go-sql-driver splits user:password from the address at the
		// last @ before the last /.
		if at := strings.LastIndex(dsn[:slash], "@"); at > 0 {
			if colon := strings.Index(dsn[:at], ":"); colon >= 0 {
				dsn = dsn[:colon+1] + "xxxxx" + dsn[at:]
			}
		}
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// ErrInvalid marks a configuration that cannot be used.
var ErrInvalid = errors.New("invalid configuration")
