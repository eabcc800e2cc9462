package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	idPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	odsPattern = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	orgTypes   = []string{"gp_practice", "hospital", "community", "mental_health", "social_care", "other"}
	itemKinds  = []string{"encounter", "problem", "medication", "allergy", "alert", "care_plan", "social_care"}
)

// Validate reports every problem in the configuration at once, joined,
// each wrapped with ErrInvalid. It never includes a DSN's password.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
	}
	if !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") && !strings.HasPrefix(c.Store, "sqlite:") {
		bad("store: %q is neither postgres://… nor sqlite:PATH", RedactDSN(c.Store))
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("timezone: %q is not a known time zone", c.Timezone)
	}
	if c.Objections.Register.Path == "" {
		bad("objections.register.path: required (the folder the objection register is delivered to)")
	}
	if _, err := filepath.Match(c.Objections.Register.Pattern, "x"); err != nil {
		bad("objections.register.pattern: %v", err)
	}
	if o := c.Objections.Overrides; o != nil {
		if o.Path == "" {
			bad("objections.overrides.path: required when overrides are configured")
		}
		if _, err := filepath.Match(o.Pattern, "x"); err != nil {
			bad("objections.overrides.pattern: %v", err)
		}
	}
	if c.Objections.MaxAge < 0 {
		bad("objections.max_age: must be positive")
	}
	if c.Publish.Schedule != "" {
		if _, err := ParseCron(c.Publish.Schedule); err != nil {
			bad("publish.schedule: %q: %v", c.Publish.Schedule, err)
		}
	}
	if c.Publish.KeepVersions < 2 {
		bad("publish.keep_versions: at least 2 (the live version and the previous one)")
	}
	if len(c.Sources) == 0 {
		bad("sources: at least one source is required")
	}
	seen := map[string]bool{}
	for i, s := range c.Sources {
		name := fmt.Sprintf("sources[%d]", i)
		if s.ID != "" {
			name = fmt.Sprintf("source %q", s.ID)
		}
		sb := func(format string, args ...any) { bad(name+": "+format, args...) }
		switch {
		case s.ID == "":
			sb("id: required")
		case !idPattern.MatchString(s.ID):
			sb("id: use lower case letters, digits and dashes")
		case seen[s.ID]:
			sb("id: used by another source")
		}
		seen[s.ID] = true
		if !odsPattern.MatchString(s.Org) {
			sb("org: %q is not an ODS code (3 to 10 letters and digits)", s.Org)
		}
		if s.OrgType != "" && !slices.Contains(orgTypes, s.OrgType) {
			sb("org_type: %q is not one of %s", s.OrgType, strings.Join(orgTypes, ", "))
		}
		var fields []string
		switch s.Kind {
		case "persons":
			fields = PersonFields
			for _, req := range []string{"local_id"} {
				if s.Columns[req] == "" {
					sb("columns.%s: required for a persons source", req)
				}
			}
		case "care_items":
			fields = CareItemFields
			for _, req := range []string{"local_id", "code"} {
				if s.Columns[req] == "" {
					sb("columns.%s: required for a care_items source", req)
				}
			}
			if s.Columns["kind"] == "" && !slices.Contains(itemKinds, s.ItemKind) {
				sb("item_kind: %q is not one of %s (or map a kind column)", s.ItemKind, strings.Join(itemKinds, ", "))
			}
		default:
			sb("kind: %q is neither persons nor care_items", s.Kind)
		}
		for k, v := range s.Columns {
			if fields != nil && !slices.Contains(fields, k) {
				sb("columns.%s: not a %s field (fields: %s)", k, s.Kind, strings.Join(fields, ", "))
			}
			if strings.TrimSpace(v) == "" {
				sb("columns.%s: empty column name", k)
			}
		}
		kinds := 0
		for _, set := range []bool{s.From.Folder != nil, s.From.SQL != nil, s.From.S3 != nil} {
			if set {
				kinds++
			}
		}
		if kinds > 1 {
			sb("from: give one of folder, sql or s3")
		}
		checkFormat := func() {
			switch s.Format.Type {
			case "csv", "tsv", "pipe":
			case "xlsx":
				if s.Format.Sheet == "" {
					sb("format.sheet: required for an xlsx source")
				}
			default:
				sb("format.type: %q is not csv, tsv, pipe or xlsx", s.Format.Type)
			}
			if s.Format.Delimiter != "" && len([]rune(s.Format.Delimiter)) != 1 {
				sb("format.delimiter: one character")
			}
			switch strings.ToLower(s.Format.Encoding) {
			case "utf-8", "utf8", "windows-1252", "cp1252", "latin1", "iso-8859-1":
			default:
				sb("format.encoding: %q is not utf-8 or windows-1252", s.Format.Encoding)
			}
		}
		switch {
		case s.From.Folder != nil:
			if s.From.Folder.Path == "" {
				sb("from.folder.path: required")
			}
			if s.From.Folder.Pattern == "" {
				sb("from.folder.pattern: required")
			} else if _, err := filepath.Match(s.From.Folder.Pattern, "x"); err != nil {
				sb("from.folder.pattern: %v", err)
			}
			checkFormat()
			checkComplete(sb, s.From.Folder.Complete)
		case s.From.S3 != nil:
			b := s.From.S3
			if b.Bucket == "" {
				sb("from.s3.bucket: required")
			}
			if b.Pattern == "" {
				sb("from.s3.pattern: required")
			} else if _, err := path.Match(b.Pattern, "x"); err != nil || strings.Contains(b.Pattern, "/") {
				sb("from.s3.pattern: a glob matched against the object's base name, without /")
			}
			if (b.AccessKeyEnv == "") != (b.SecretKeyEnv == "") {
				sb("from.s3: give both access_key_env and secret_key_env, or neither (the AWS credential chain)")
			}
			for _, v := range []string{b.AccessKeyEnv, b.SecretKeyEnv} {
				if v != "" && !envName.MatchString(v) {
					sb("from.s3: access_key_env and secret_key_env name environment variables; they do not hold the keys")
					break
				}
			}
			if b.Endpoint != "" {
				if u, err := url.Parse(b.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					sb("from.s3.endpoint: not an http(s) URL")
				}
			}
			checkFormat()
			checkComplete(sb, s.From.S3.Complete)
		case s.From.SQL != nil:
			if s.From.SQL.Driver != "postgres" && s.From.SQL.Driver != "mysql" {
				sb("from.sql.driver: %q is neither postgres nor mysql", s.From.SQL.Driver)
			}
			if s.From.SQL.DSN == "" {
				sb("from.sql.dsn: required")
			}
			if strings.TrimSpace(s.From.SQL.Query) == "" {
				sb("from.sql.query: required")
			}
		default:
			sb("from: required (folder, sql or s3)")
		}
		if s.ShrinkLimit < 0 || s.ShrinkLimit > 1 {
			sb("shrink_limit: a fraction between 0 and 1")
		}
		switch s.Mode {
		case "snapshot":
		case "delta":
			if s.From.Folder == nil {
				sb("mode: delta sources read from a folder")
			}
			if s.Delta.Sequence != "name" && s.Delta.Sequence != "date" {
				sb("delta.sequence: %q is neither name nor date", s.Delta.Sequence)
			}
			if s.Delta.SnapshotPattern == "" {
				sb("delta.snapshot_pattern: required (the full snapshot that starts the source and recovers it after a missing delta)")
			}
			if s.Columns["action"] == "" {
				sb("columns.action: required for a delta source (D or delete removes the row)")
			}
		default:
			sb("mode: %q is neither snapshot nor delta", s.Mode)
		}
		for _, layout := range s.DateFormats {
			if !strings.ContainsAny(layout, "0123456789") {
				sb("date_formats: %q is not a Go time layout (write the reference date, e.g. 02/01/2006)", layout)
			}
		}
		if s.Schedule != "" {
			if _, err := ParseCron(s.Schedule); err != nil {
				sb("schedule: %q: %v", s.Schedule, err)
			}
		}
	}
	errs = append(errs, c.validateOperations()...)
	for _, m := range c.validateMatching() {
		bad("%s", m)
	}
	return errors.Join(errs...)
}

func checkComplete(bad func(string, ...any), c *Complete) {
	if c == nil {
		return
	}
	if c.Marker == "" && c.Manifest == "" && c.StableFor == 0 {
		bad("from.*.complete: set marker, manifest or stable_for")
	}
	if c.Marker == "." || strings.ContainsAny(c.Marker, `/\`) {
		bad("from.*.complete.marker: a file name suffix such as .done")
	}
	if c.Manifest != "" {
		if _, err := filepath.Match(c.Manifest, "x"); err != nil || strings.Contains(c.Manifest, "/") {
			bad("from.*.complete.manifest: a glob of manifest file names")
		}
	}
	if c.StableFor < 0 {
		bad("from.*.complete.stable_for: must be positive")
	}
}
