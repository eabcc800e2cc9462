package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
)

// sourceList is a repeatable --source flag.
type sourceList []string

func (s *sourceList) String() string { return strings.Join(*s, ",") }
func (s *sourceList) Set(v string) error {
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			*s = append(*s, id)
		}
	}
	return nil
}

func runCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var sources sourceList
	var dryRun, extractOnly bool
	fs := newFlagSet(env, "run", "--config FILE [--source ID ...] [--store DSN] [--dry-run] [--extract-only]", &c)
	fs.Var(&sources, "source", "extract only this source (repeatable, or comma-separated); the others keep their current delivery")
	fs.BoolVar(&dryRun, "dry-run", false, "read and check every delivery and the objection register; write nothing")
	fs.BoolVar(&extractOnly, "extract-only", false, "stage the deliveries without publishing; 'careindex publish' publishes them")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	stage := pipeline.StageAll
	if extractOnly {
		stage = pipeline.StageExtract
	}
	return runPipeline(ctx, env, "run", c, sources, dryRun, stage)
}

func publishCmd(ctx context.Context, env Env, args []string) int {
	var c common
	fs := newFlagSet(env, "publish", "--config FILE [--store DSN]", &c)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	return runPipeline(ctx, env, "publish", c, nil, false, pipeline.StagePublish)
}

func runPipeline(ctx context.Context, env Env, name string, c common, sources []string, dryRun bool, stage pipeline.Stage) int {
	cfg, err := c.loadConfig(env)
	if err != nil {
		return fail(env, name, err)
	}
	log, err := c.logger(env)
	if err != nil {
		return fail(env, name, err)
	}
	defer log.Sync()
	opts := pipeline.Options{Config: cfg, Sources: sources, DryRun: dryRun, Stage: stage, Log: log, LookupEnv: env.LookupEnv}
	if env.StdoutIsTerminal {
		opts.Progress = func(p pipeline.Progress) {
			rate := float64(p.Rows) / max(p.Elapsed.Seconds(), 0.001)
			end := "\r"
			if p.Done {
				end = "\n"
			}
			fmt.Fprintf(env.Stdout, "\x1b[2K  %-24s %10d rows  %9.0f rows/s%s", p.SourceID, p.Rows, rate, end)
		}
	}
	if !dryRun {
		st, err := openStore(ctx, cfg.Store, log)
		if err != nil {
			return fail(env, name, err)
		}
		defer st.Close()
		opts.Store = st
	}
	res, err := pipeline.Run(ctx, opts)
	printRun(env.Stdout, res, dryRun)
	if err != nil {
		return fail(env, name, err)
	}
	return ExitOK
}

func printRun(w io.Writer, res pipeline.Result, dryRun bool) {
	if dryRun {
		fmt.Fprintln(w, "Dry run: nothing was written.")
	} else if res.RunID != 0 {
		fmt.Fprintf(w, "Run %d %s: %s\n", res.RunID, res.Status, res.Message)
	}
	if len(res.Sources) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "source\tstatus\trows in\tloaded\tquarantined\twithheld\tmerged\tpending\tduplicates\tstale\t")
		for _, o := range res.Sources {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", o.SourceID, o.Status, o.RowsIn, o.Loaded, o.Quarantined,
				o.Withheld, o.Merged, o.Pending, o.Duplicates, yesNo(o.Stale))
		}
		tw.Flush()
	}
	if res.Version != 0 {
		fmt.Fprintf(w, "Published version %d: %d patients (%d withheld markers), %d record locations, %d care items.\n",
			res.Version, res.Patients, res.WithheldPatients, res.Locations, res.Items)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func validateCmd(ctx context.Context, env Env, args []string) int {
	var c common
	fs := newFlagSet(env, "validate", "--config FILE", &c)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := c.loadConfig(env)
	if err != nil {
		return fail(env, "validate", err)
	}
	fmt.Fprintf(env.Stdout, "%s: valid: %d sources, store %s\n", c.config, len(cfg.Sources), redacted(cfg.Store))
	return ExitOK
}

func statusCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var asJSON bool
	var runs int
	fs := newFlagSet(env, "status", "--config FILE [--store DSN] [--runs N] [--json]", &c)
	fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	fs.IntVar(&runs, "runs", 10, "how many recent runs to show")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := c.loadConfig(env)
	if err != nil {
		return fail(env, "status", err)
	}
	log, err := c.logger(env)
	if err != nil {
		return fail(env, "status", err)
	}
	st, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return fail(env, "status", err)
	}
	defer st.Close()
	status, err := st.Status(ctx, runs)
	if err != nil {
		return fail(env, "status", err)
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(status); err != nil {
			return fail(env, "status", err)
		}
		return ExitOK
	}
	printStatus(env.Stdout, status)
	return ExitOK
}

func printStatus(w io.Writer, s store.Status) {
	if s.Live != nil {
		fmt.Fprintf(w, "Live version %d, published %s by run %d.\n", s.Live.Version, s.Live.PublishedAt.Local().Format(time.DateTime), s.Live.RunID)
	} else {
		fmt.Fprintln(w, "Nothing published yet.")
	}
	if len(s.Sources) > 0 {
		fmt.Fprintln(w, "\nSources:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  source\torg\tdelivery in index\tdelivered\tlast attempt\tstale")
		for _, ss := range s.Sources {
			stale := yesNo(ss.Stale)
			if ss.StaleReason != "" {
				stale += " (" + ss.StaleReason + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", ss.SourceID, ss.OrgCode, orDash(ss.Delivery), when(ss.LastDeliveryAt),
				when(ss.LastAttemptAt), stale)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nRecent runs:")
	if len(s.Runs) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, r := range s.Runs {
		fmt.Fprintf(w, "  run %d  %s  %-9s  %s\n", r.RunID, r.StartedAt.Local().Format(time.DateTime), r.Status, r.Message)
		if len(r.Sources) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tsource\tstatus\tin\tloaded\tquarantined\twithheld\tmerged\tduplicates\t")
		for _, o := range r.Sources {
			fmt.Fprintf(tw, "\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", o.SourceID, o.Status, o.RowsIn, o.Loaded, o.Quarantined, o.Withheld, o.Merged,
				o.Duplicates)
		}
		tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func rollbackCmd(ctx context.Context, env Env, args []string) int {
	var c common
	fs := newFlagSet(env, "rollback", "--config FILE [--store DSN]", &c)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	return withStore(ctx, env, "rollback", c, func(cfg *config.Config, st store.Store, log *zap.Logger) int {
		res, err := pipeline.Rollback(ctx, pipeline.Options{Config: cfg, Store: st, Log: log})
		if err != nil {
			return fail(env, "rollback", err)
		}
		fmt.Fprintf(env.Stdout, "Rollback (run %d): %s.\n", res.RunID, res.Message)
		printRun(env.Stdout, pipeline.Result{Version: res.Version, Patients: res.Patients, WithheldPatients: res.WithheldPatients,
			Locations: res.Locations, Items: res.Items}, false)
		return ExitOK
	})
}

// withStore loads the config, builds the logger, opens the store and runs fn.
func withStore(ctx context.Context, env Env, name string, c common, fn func(*config.Config, store.Store, *zap.Logger) int) int {
	cfg, err := c.loadConfig(env)
	if err != nil {
		return fail(env, name, err)
	}
	log, err := c.logger(env)
	if err != nil {
		return fail(env, name, err)
	}
	defer log.Sync()
	st, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return fail(env, name, err)
	}
	defer st.Close()
	return fn(cfg, st, log)
}
