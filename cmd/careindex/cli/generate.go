package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/careindex/careindex/fixtures/regiongen"
)

// generateCmd writes a synthetic region (see fixtures/regiongen): one drop
// tree per night, each with a configuration that runs it, and the ground
// truth beside the data.
func generateCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var opts regiongen.Options
	var now string
	fs := newFlagSet(env, "generate", "--patients N [--nights K] [--seed S] [--orgs N] [--now YYYY-MM-DD] --out DIR", nil)
	fs.IntVar(&opts.Patients, "patients", 0, "people in the region on the first night (required)")
	fs.IntVar(&opts.Nights, "nights", regiongen.DefaultNights, "nights to write: night-01, night-02, …")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed: the same arguments give byte-identical files")
	fs.IntVar(&opts.Orgs, "orgs", regiongen.DefaultOrgs, "organisations: GP practices (orgs-4), a hospital, community, social care, mental health")
	fs.StringVar(&now, "now", regiongen.DefaultNow.Format(time.DateOnly), "date of night 1 (YYYY-MM-DD); must not be after the day careindex runs")
	fs.StringVar(&opts.Out, "out", "", "output folder: missing, empty, or an earlier generated region (replaced)")
	fs.StringVar(&c.logFormat, "log-format", "", "log format: json or console (default: console at a terminal, json otherwise)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if opts.Patients <= 0 || opts.Out == "" {
		fmt.Fprintln(env.Stderr, "careindex generate: --patients N (at least 1) and --out DIR are required")
		return ExitUsage
	}
	t, err := time.Parse(time.DateOnly, now)
	if err != nil {
		fmt.Fprintf(env.Stderr, "careindex generate: --now %q: want YYYY-MM-DD\n", now)
		return ExitUsage
	}
	opts.Now = t
	log, err := c.logger(env)
	if err != nil {
		return fail(env, "generate", err)
	}
	defer log.Sync()
	start := time.Now()
	sum, err := regiongen.Generate(ctx, opts, log)
	if err != nil {
		fmt.Fprintf(env.Stderr, "careindex generate: %v\n", err)
		if errors.Is(err, regiongen.ErrInvalidOptions) {
			return ExitUsage
		}
		return ExitFailed
	}
	printGenerated(env, opts, sum, time.Since(start))
	return ExitOK
}

func printGenerated(env Env, opts regiongen.Options, sum regiongen.Summary, elapsed time.Duration) {
	w := env.Stdout
	fmt.Fprintf(w, "Generated %d night(s) of a region of %d people (seed %d, %d organisations) in %s: %s\n",
		len(sum.Nights), sum.Patients, sum.Seed, sum.Orgs, elapsed.Round(time.Millisecond), opts.Out)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "night\tdate\tfiles\trows\tpeople\tperson records\tcare items\tbad rows\tobjections\tin force\toverrides\tchanged\t")
	for _, n := range sum.Nights {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", n.Dir, n.Date, n.FileCount(), n.Rows(),
			n.People, n.PersonRecords, n.CareItems, n.BadRows, n.RegisterRows, n.ObjectionsInForce, n.Overrides, n.Changed)
	}
	tw.Flush()
	if len(sum.Nights) > 1 {
		fmt.Fprintln(w, "\nChanges per night (after the first):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "night\tarrived\tmoved\tleft region\tchanged practice\tnew items\tnew objections\twithdrawals\trefreshed\t")
		for _, n := range sum.Nights[1:] {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d of %d orgs\t\n", n.Dir, n.Arrived, n.Moved, n.LeftRegion,
				n.ChangedPractice, n.NewItems, n.NewObjections, n.Withdrawals, len(n.Refreshed), sum.Orgs)
		}
		tw.Flush()
	}
	first := filepath.Join(opts.Out, sum.Nights[0].Config)
	fmt.Fprintf(w, "\nSummary: %s. Ground truth: night-NN/truth/. To run night 1:\n", filepath.Join(opts.Out, "summary.json"))
	fmt.Fprintf(w, "  createdb -h 127.0.0.1 -U postgres careindex_gen_export; createdb -h 127.0.0.1 -U postgres careindex_gen\n")
	fmt.Fprintf(w, "  psql -q -v ON_ERROR_STOP=1 -f %s \"${%s:-%s}\"\n", filepath.Join(opts.Out, sum.Nights[0].Dir, "exports", "community.sql"),
		regiongen.ExportDSNEnv, regiongen.DefaultExportDSN)
	fmt.Fprintf(w, "  careindex run --config %s\n", first)
}
