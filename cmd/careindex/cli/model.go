package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

// modelCmd runs the model subcommands: "model estimate".
func modelCmd(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.Stdout, "Usage: careindex model estimate --config FILE [--source ID ... | --from-store] [-o model.json]")
		fmt.Fprintln(env.Stdout, "\n  estimate  learn a match model (transform/match, EM without labels) from the persons sources' newest deliveries,")
		fmt.Fprintln(env.Stdout, "            or with --from-store from every record of the store's match state")
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] != "estimate" {
		fmt.Fprintf(env.Stderr, "careindex model: unknown subcommand %q (want estimate)\n", args[0])
		return ExitUsage
	}
	return modelEstimateCmd(ctx, env, args[1:])
}

// modelEstimateCmd estimates a match model from the newest deliveries of
// persons sources, or from the store's match state, writes it as JSON and
// prints a summary of it (levels, probabilities, prior: never a patient
// value).
func modelEstimateCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var sources sourceList
	var out string
	var fromStore bool
	fs := newFlagSet(env, "model estimate", "--config FILE [--source ID ... | --from-store] [-o model.json]", &c)
	fs.Var(&sources, "source", "estimate from this persons source (repeatable, or comma-separated); default every persons source")
	fs.BoolVar(&fromStore, "from-store", false, "estimate from every record of the store's match state (the whole index, delta sources' earlier deliveries included) instead of the sources' newest deliveries")
	fs.StringVar(&out, "o", "", "write the model here (default: standard output, with the summary on standard error)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fromStore && len(sources) > 0 {
		fmt.Fprintln(env.Stderr, "careindex model estimate: --from-store and --source cannot be used together")
		return ExitUsage
	}
	cfg, err := loadConfigWithoutModel(c, env)
	if err != nil {
		return fail(env, "model estimate", err)
	}
	if fromStore {
		log, err := c.logger(env)
		if err != nil {
			return fail(env, "model estimate", err)
		}
		st, err := openStore(ctx, cfg.Store, log)
		if err != nil {
			return fail(env, "model estimate", err)
		}
		defer st.Close()
		model, rep, n, err := EstimateModelFromStore(ctx, st.Links())
		if err != nil {
			return fail(env, "model estimate", err)
		}
		return writeModel(env, out, model, rep, fmt.Sprintf("match state: %d records\n", n))
	}
	if len(sources) == 0 {
		for _, s := range cfg.Sources {
			if s.Kind == "persons" {
				sources = append(sources, s.ID)
			}
		}
		if len(sources) == 0 {
			return fail(env, "model estimate", fmt.Errorf("%w: the configuration has no persons source", config.ErrInvalid))
		}
	}
	model, rep, reads, err := EstimateModel(ctx, cfg, sources, env.LookupEnv)
	if err != nil {
		return fail(env, "model estimate", err)
	}
	var read strings.Builder
	for i, r := range reads {
		fmt.Fprintf(&read, "source %s: delivery %s, %d rows, %d quarantined (left out)\n", sources[i], r.Delivery, r.Rows, r.Quarantined)
	}
	return writeModel(env, out, model, rep, read.String())
}

// writeModel writes the model as JSON to out (standard output when empty)
// and prints what it was read from and its summary (to standard error
// when the model went to standard output).
func writeModel(env Env, out string, model *match.Model, rep *match.EstimateReport, read string) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(model); err != nil {
		return fail(env, "model estimate", err)
	}
	summary := env.Stdout
	if out == "" {
		if _, err := env.Stdout.Write(b.Bytes()); err != nil {
			return fail(env, "model estimate", err)
		}
		summary = env.Stderr
	} else if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return fail(env, "model estimate", fmt.Errorf("writing the model: %w", err))
	}
	fmt.Fprint(summary, read)
	printModelSummary(summary, model, rep)
	if out != "" {
		fmt.Fprintf(summary, "model written to %s\n", out)
	}
	return ExitOK
}

// loadConfigWithoutModel loads the configuration without reading the
// matching model it names, which may not exist yet (it may be the model
// being made).
func loadConfigWithoutModel(c common, env Env) (*config.Config, error) {
	path := c.config
	if path == "" {
		path, _ = env.LookupEnv("CAREINDEX_CONFIG")
	}
	if path == "" {
		return nil, fmt.Errorf("%w: no configuration: pass --config FILE or set CAREINDEX_CONFIG", config.ErrInvalid)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w: %w", path, config.ErrInvalid, err)
	}
	if dropMatchingModel(&doc) {
		if raw, err = yaml.Marshal(&doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	cfg, err := config.Parse(raw, filepath.Dir(path), env.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.store != "" {
		cfg.Store = c.store
	}
	return cfg, nil
}

// dropMatchingModel removes matching.model from a YAML document and
// reports whether it was there.
func dropMatchingModel(doc *yaml.Node) bool {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value != "matching" || top[i+1].Kind != yaml.MappingNode {
			continue
		}
		m := top[i+1]
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == "model" {
				m.Content = append(m.Content[:j], m.Content[j+2:]...)
				return true
			}
		}
	}
	return false
}

// errNoRecords means the sources gave fewer than two records.
var errNoRecords = errors.New("no person records to estimate from")

// EstimateModel reads the newest delivery of each named persons source as
// a run reads it (rows a run would quarantine left out; a local id sent
// twice counts once) and estimates a match model from the records with
// match.Estimate's defaults: unsupervised, as a region estimates its own.
// The records stream into the estimator's compact form; they are read
// once. It returns the model, the estimate's report and what was read
// from each source.
func EstimateModel(ctx context.Context, cfg *config.Config, sources []string, lookupEnv func(string) (string, bool)) (*match.Model, *match.EstimateReport, []pipeline.PersonsRead, error) {
	opts := pipeline.Options{Config: cfg, LookupEnv: lookupEnv}
	reads := make([]pipeline.PersonsRead, len(sources))
	model, rep, _, err := estimateFrom(ctx, "read", func(emit func(match.Record) error) error {
		for i, id := range sources {
			src, _ := cfg.Source(id)
			seen := map[string]bool{}
			r, err := pipeline.Persons(ctx, opts, id, func(p record.Person) error {
				if seen[p.LocalID] {
					return nil
				}
				seen[p.LocalID] = true
				return emit(link.MatchRecord(src.Org, p))
			})
			reads[i] = r
			if err != nil {
				return err
			}
		}
		return nil
	})
	return model, rep, reads, err
}

// EstimateModelFromStore estimates a match model, as EstimateModel does,
// from every record of a store's match state: the region's whole index as
// the linker filed it (records without a usable NHS number and with one,
// delta sources' earlier deliveries included). It returns the model, the
// estimate's report and the number of records read.
func EstimateModelFromStore(ctx context.Context, links store.MatchState) (*match.Model, *match.EstimateReport, int, error) {
	return estimateFrom(ctx, "in the match state (run the sync with matching enabled first)", func(emit func(match.Record) error) error {
		return links.EachMatchRecord(ctx, func(r store.MatchRecord) error {
			rec := r.Record
			rec.ID = store.MatchID(r.OrgCode, r.LocalID)
			return emit(rec)
		})
	})
}

// estimateFrom estimates a match model from the records read gives emit,
// streamed into the estimator as they are read. An error from emit means
// the estimator stopped reading; read returns it (or its own error). It
// returns the model, the estimate's report and the number of records;
// fewer than two is errNoRecords, its message ending with where.
func estimateFrom(ctx context.Context, where string, read func(emit func(match.Record) error) error) (*match.Model, *match.EstimateReport, int, error) {
	var readErr error
	n := 0
	errStop := errors.New("stopped")
	recs := func(yield func(match.Record, error) bool) {
		err := read(func(r match.Record) error {
			n++
			if !yield(r, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			readErr = err
			yield(match.Record{}, err)
		}
	}
	model, rep, err := match.Estimate(ctx, recs, match.EstimateOptions{})
	if readErr != nil {
		return nil, nil, n, readErr
	}
	if n < 2 {
		return nil, nil, n, fmt.Errorf("%w: %d record(s) %s", errNoRecords, n, where)
	}
	if err != nil {
		return nil, nil, n, fmt.Errorf("estimating the model: %w", err)
	}
	return model, rep, n, nil
}

// printModelSummary prints a model's parameters: the prior, each field's
// levels with m, u and weight, the blocking rules' EM runs and the size of
// the term-frequency tables (not their values, which are names).
func printModelSummary(w io.Writer, m *match.Model, rep *match.EstimateReport) {
	fmt.Fprintf(w, "records %d, random pairs %d, expected links among the candidate pairs %.0f\n", rep.Records, rep.RandomPairs, rep.ExpectedLinks)
	fmt.Fprintf(w, "prior (lambda) %.6g: %.2f bits\n", m.Prior, math.Log2(m.Prior/(1-m.Prior)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "field\tlevel\tm\tu\tweight (bits)\t")
	for _, f := range match.Fields() {
		fp, ok := m.Fields[f]
		if !ok {
			continue
		}
		for _, l := range match.Levels(f) {
			lp := fp.Levels[l]
			fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%.2f\t\n", f, l, lp.M, lp.U, math.Log2(lp.M/lp.U))
		}
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "blocking rule\tpairs\tused by EM\titerations\tmatch share\tskipped blocks\t")
	for _, r := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%d\t\n", r.Rule, r.Pairs, r.Sampled, r.Iterations, r.MatchShare, len(r.SkippedBlocks))
	}
	tw.Flush()
	for _, f := range match.Fields() {
		if t := m.TermFrequencies[f]; t != nil {
			fmt.Fprintf(w, "term frequencies %s: %d values from %d records\n", f, len(t.Values), t.Records)
		}
	}
}
