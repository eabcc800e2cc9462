package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/careindex/careindex/schedules/config"
)

// FuzzParse checks that Parse never panics, that every failure is
// ErrInvalid, and that every configuration it accepts is valid and has its
// defaults filled in.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"good.yaml", "minimal.yaml", "many_problems.yaml"} {
		f.Add(string(readTestdata(f, name)))
	}
	f.Add("store: ${S:-sqlite:x.db}\n")
	f.Add("store: ${S}\n")
	f.Add("objections: {register: {path: r}, max_age: 1h}\nsources: [{id: a, org: ABC, kind: persons, from: {sql: {dsn: x, query: q}}, columns: {local_id: L}}]\n")
	f.Add("sources: [{}]\n")
	f.Add("")
	f.Add("&a [*a]")
	lookup := env(map[string]string{"EXPORT_PASSWORD": "pw", "S": "sqlite:y.db"})
	f.Fuzz(func(t *testing.T, yml string) {
		cfg, err := config.Parse([]byte(yml), dir, lookup)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config and an error %v", err)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Parse error is not ErrInvalid: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if cfg.Timezone == "" || cfg.Publish.KeepVersions < 2 || cfg.Objections.MaxAge <= 0 || len(cfg.Sources) == 0 {
			t.Fatalf("defaults not filled: %+v", cfg)
		}
		for _, s := range cfg.Sources {
			if s.Mode != "snapshot" || len(s.DateFormats) == 0 {
				t.Fatalf("source defaults not filled: %+v", s)
			}
		}
		r := cfg.Redacted()
		if strings.Contains(r.Store, "pw@") {
			t.Fatalf("redacted store %q", r.Store)
		}
	})
}
