package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
)

func reportCmd(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 || args[0] != "compliance" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(env.Stdout, "Usage: careindex report compliance --config FILE [--store DSN] [--run ID] [--format text|csv|json]")
			return ExitOK
		}
		fmt.Fprintln(env.Stderr, "careindex report: the only report is 'compliance'")
		return ExitUsage
	}
	var c common
	var runID int64
	var format string
	fs := newFlagSet(env, "report compliance", "--config FILE [--store DSN] [--run ID] [--format text|csv|json]", &c)
	fs.Int64Var(&runID, "run", 0, "the publishing run to report on (default: the latest)")
	fs.StringVar(&format, "format", "text", "text, csv or json")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	if format != "text" && format != "csv" && format != "json" {
		fmt.Fprintf(env.Stderr, "careindex report compliance: --format %q is not text, csv or json\n", format)
		return ExitUsage
	}
	return withStore(ctx, env, "report compliance", c, func(_ *config.Config, st store.Store, _ *zap.Logger) int {
		rep, err := st.Compliance(ctx, runID)
		if err != nil {
			return fail(env, "report compliance", err)
		}
		switch format {
		case "json":
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(rep)
		case "csv":
			err = complianceCSV(env.Stdout, rep)
		default:
			complianceText(env.Stdout, rep)
		}
		if err != nil {
			return fail(env, "report compliance", err)
		}
		return ExitOK
	})
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

func complianceText(w io.Writer, rep store.Compliance) {
	fmt.Fprintf(w, "Compliance report: run %d, version %d, published %s\n", rep.RunID, rep.Version, rep.PublishedAt.UTC().Format(time.RFC3339))
	section := func(title string, keep func(store.WithheldCount) bool, label func(store.WithheldCount) string) {
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		total := 0
		for _, c := range rep.Withheld {
			if keep(c) {
				fmt.Fprintf(tw, "  %s\t%s\t%d\n", label(c), orDash(c.SourceID), c.Count)
				total += c.Count
			}
		}
		if total == 0 {
			fmt.Fprintln(tw, "  none")
		}
		tw.Flush()
	}
	section("Patients withheld, by reason:", func(c store.WithheldCount) bool { return c.Kind == "patient" },
		func(c store.WithheldCount) string { return c.Reason })
	section("Person records withheld, by reason and source:", func(c store.WithheldCount) bool { return c.Kind == "record" },
		func(c store.WithheldCount) string { return c.Reason })
	section("Care items withheld, by reason and source:", func(c store.WithheldCount) bool {
		return c.Kind == "item" && !strings.HasPrefix(c.Reason, "sensitive:")
	}, func(c store.WithheldCount) string { return c.Reason })
	section("Sensitive care items withheld, by category and source:", func(c store.WithheldCount) bool {
		return c.Kind == "item" && strings.HasPrefix(c.Reason, "sensitive:")
	}, func(c store.WithheldCount) string { return strings.TrimPrefix(c.Reason, "sensitive:") })
	fmt.Fprintln(w, "\nOverrides applied (objection not upheld):")
	if len(rep.Overrides) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  patient_id\treason\tauthorised by\tvalid from\tvalid to\tscope")
	for _, o := range rep.Overrides {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", o.PatientID, o.Reason, o.AuthorisedBy, date(o.ValidFrom), orDash(date(o.ValidTo)), o.Scope)
	}
	tw.Flush()
}

func complianceCSV(w io.Writer, rep store.Compliance) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"run_id", "version", "section", "kind", "reason", "source_id", "count",
		"patient_id", "authorised_by", "valid_from", "valid_to", "scope"})
	run, ver := strconv.FormatInt(rep.RunID, 10), strconv.FormatInt(rep.Version, 10)
	for _, c := range rep.Withheld {
		cw.Write([]string{run, ver, "withheld", c.Kind, c.Reason, c.SourceID, strconv.Itoa(c.Count), "", "", "", "", ""})
	}
	for _, o := range rep.Overrides {
		cw.Write([]string{run, ver, "override", "", o.Reason, "", "", strconv.FormatInt(o.PatientID, 10), o.AuthorisedBy,
			date(o.ValidFrom), date(o.ValidTo), o.Scope})
	}
	cw.Flush()
	return cw.Error()
}

func auditCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var asJSON bool
	fs := newFlagSet(env, "audit", "--config FILE [--store DSN] [--json]", &c)
	fs.BoolVar(&asJSON, "json", false, "print the leaks as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	return withStore(ctx, env, "audit", c, func(cfg *config.Config, st store.Store, log *zap.Logger) int {
		leaks, err := pipeline.Audit(ctx, pipeline.Options{Config: cfg, Store: st, Log: log})
		if asJSON && (err == nil || errors.Is(err, pipeline.ErrLeaks)) {
			out := struct {
				Leaks any `json:"leaks"`
			}{Leaks: leaks}
			if leaks == nil {
				out.Leaks = []any{}
			}
			json.NewEncoder(env.Stdout).Encode(out)
		} else {
			for _, l := range leaks {
				fmt.Fprintln(env.Stdout, l.String())
			}
		}
		if err != nil {
			return fail(env, "audit", err)
		}
		if !asJSON {
			fmt.Fprintln(env.Stdout, "No leaks: the live version agrees with the objection register, overrides and code lists.")
		}
		return ExitOK
	})
}

func acceptCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var source string
	fs := newFlagSet(env, "accept", "--source ID --config FILE [--store DSN]", &c)
	fs.StringVar(&source, "source", "", "the source whose held delivery is accepted")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if source == "" {
		fmt.Fprintln(env.Stderr, "careindex accept: --source is required")
		return ExitUsage
	}
	return withStore(ctx, env, "accept", c, func(cfg *config.Config, st store.Store, _ *zap.Logger) int {
		if _, ok := cfg.Source(source); !ok {
			return fail(env, "accept", fmt.Errorf("%w: %q is not in the configuration", pipeline.ErrUnknownSource, source))
		}
		d, ok, err := st.AcceptHeld(ctx, source)
		if err != nil {
			return fail(env, "accept", err)
		}
		if !ok {
			fmt.Fprintf(env.Stderr, "careindex accept: source %s has no held delivery\n", source)
			return ExitFailed
		}
		fmt.Fprintf(env.Stdout, "Accepted %s (%d rows) for %s; the next run or 'careindex publish' publishes it.\n", d.Name, d.RowsIn, source)
		return ExitOK
	})
}
