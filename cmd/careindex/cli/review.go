package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
)

const reviewUsage = `Usage:
  careindex review list     --config FILE [--store DSN] [--all] [--json]
  careindex review show     ID --config FILE [--store DSN] [--json]
  careindex review link     ID --config FILE [--store DSN] [--by NAME] [--note TEXT]
  careindex review separate ID --config FILE [--store DSN] [--by NAME] [--note TEXT]

list shows the open review items (--all: every item); show one item with its evidence.
link says the item's record is the candidate patient's: the record is pinned to that
patient, and a patient it was given meanwhile is merged into the candidate. separate says
it is not: the record keeps a patient of its own (a new one, for a held record) and is
never linked to the candidate automatically. A decision takes effect at the next
'careindex run' or 'careindex publish', which publishes a new version for it.`

func reviewCmd(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := env.Stdout
		code := ExitOK
		if len(args) == 0 {
			w, code = env.Stderr, ExitUsage
		}
		fmt.Fprintln(w, reviewUsage)
		return code
	}
	switch args[0] {
	case "list":
		return reviewListCmd(ctx, env, args[1:])
	case "show":
		return reviewShowCmd(ctx, env, args[1:])
	case "link":
		return reviewDecideCmd(ctx, env, store.DecideLink, args[1:])
	case "separate":
		return reviewDecideCmd(ctx, env, store.DecideSeparate, args[1:])
	}
	fmt.Fprintf(env.Stderr, "careindex review: unknown subcommand %q\n\n%s\n", args[0], reviewUsage)
	return ExitUsage
}

// parseWithID parses flags around one positional review item id.
func parseWithID(fs *flag.FlagSet, args []string) (id int64, code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, ExitOK, false
		}
		return 0, ExitUsage, false
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(fs.Output(), "careindex %s: name the review item: careindex %s ID\n", fs.Name(), fs.Name())
		return 0, ExitUsage, false
	}
	arg := fs.Arg(0)
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintf(fs.Output(), "careindex %s: %q is not a review item id\n", fs.Name(), arg)
		return 0, ExitUsage, false
	}
	// Flags may follow the id.
	if code, ok := parse(fs, fs.Args()[1:]); !ok {
		return 0, code, false
	}
	return id, 0, true
}

func reviewListCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var all, asJSON bool
	fs := newFlagSet(env, "review list", "--config FILE [--store DSN] [--all] [--json]", &c)
	fs.BoolVar(&all, "all", false, "every review item, decided ones too (default: the open ones)")
	fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	return withStore(ctx, env, "review list", c, func(_ *config.Config, st store.Store, _ *zap.Logger) int {
		items, err := st.Reviews().ListReviews(ctx, all)
		if err != nil {
			return fail(env, "review list", err)
		}
		if asJSON {
			out := make([]reviewJSON, len(items))
			for i, it := range items {
				out[i] = toJSON(it)
			}
			return printJSON(env, "review list", out)
		}
		printReviewList(env.Stdout, items, all)
		return ExitOK
	})
}

func reviewShowCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var asJSON bool
	fs := newFlagSet(env, "review show", "ID --config FILE [--store DSN] [--json]", &c)
	fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	id, code, ok := parseWithID(fs, args)
	if !ok {
		return code
	}
	return withStore(ctx, env, "review show", c, func(_ *config.Config, st store.Store, _ *zap.Logger) int {
		it, err := st.Reviews().ReviewItem(ctx, id)
		if err != nil {
			return reviewFail(env, "review show", err)
		}
		if asJSON {
			return printJSON(env, "review show", toJSON(it))
		}
		printReview(env.Stdout, it)
		return ExitOK
	})
}

func reviewDecideCmd(ctx context.Context, env Env, kind store.DecisionKind, args []string) int {
	name := "review " + string(kind)
	var c common
	var by, note string
	fs := newFlagSet(env, name, "ID --config FILE [--store DSN] [--by NAME] [--note TEXT]", &c)
	fs.StringVar(&by, "by", "", "who decides (default: $USER)")
	fs.StringVar(&note, "note", "", "why, for the record (no patient values)")
	id, code, ok := parseWithID(fs, args)
	if !ok {
		return code
	}
	if by == "" {
		by, _ = env.LookupEnv("USER")
	}
	if by = strings.TrimSpace(by); by == "" {
		fmt.Fprintf(env.Stderr, "careindex %s: say who decides: --by NAME (or set USER)\n", name)
		return ExitUsage
	}
	return withStore(ctx, env, name, c, func(_ *config.Config, st store.Store, _ *zap.Logger) int {
		d, err := st.Reviews().Decide(ctx, store.Decision{ReviewID: id, Kind: kind, By: by, At: time.Now(), Note: note})
		if err != nil {
			return reviewFail(env, name, err)
		}
		printDecision(env.Stdout, d)
		fmt.Fprintln(env.Stdout, "It takes effect at the next 'careindex run' or 'careindex publish'.")
		return ExitOK
	})
}

// reviewFail reports a review error; an unknown or already decided item,
// or a decision that contradicts an earlier one, is a usage error.
func reviewFail(env Env, name string, err error) int {
	if errors.Is(err, store.ErrNoReview) || errors.Is(err, store.ErrDecided) || errors.Is(err, store.ErrDecisionConflict) {
		fmt.Fprintf(env.Stderr, "careindex %s: %v\n", name, err)
		return ExitUsage
	}
	return fail(env, name, err)
}

func printJSON(env Env, name string, v any) int {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(env, name, err)
	}
	return ExitOK
}

// evidence is the linker's summary of a comparison (transform/link): levels
// and weights, never values.
type evidence struct {
	Decision    string   `json:"decision"`
	Weight      float64  `json:"weight"`
	Probability float64  `json:"probability"`
	Demographic float64  `json:"demographic"`
	Reasons     []string `json:"reasons"`
	Candidate   *struct {
		OrgCode string `json:"org_code"`
		LocalID string `json:"local_id"`
	} `json:"candidate"`
	Others int `json:"other_patients"`
	Fields []struct {
		Field  string  `json:"field"`
		Level  string  `json:"level"`
		Weight float64 `json:"weight"`
	} `json:"fields"`
}

func parseEvidence(s string) *evidence {
	if s == "" {
		return nil
	}
	var ev evidence
	if err := json.Unmarshal([]byte(s), &ev); err != nil {
		return nil
	}
	return &ev
}

// reviewJSON is a review item for --json, its evidence as JSON.
type reviewJSON struct {
	store.ReviewItem
	Held     bool            `json:"held"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

func toJSON(it store.ReviewItem) reviewJSON {
	out := reviewJSON{ReviewItem: it, Held: it.Held()}
	if parseEvidence(it.Evidence) != nil {
		out.Evidence = json.RawMessage(it.Evidence)
	}
	return out
}

func score(it store.ReviewItem) string {
	ev := parseEvidence(it.Evidence)
	if ev == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f (%.2f)", ev.Probability, ev.Weight)
}

func assignedText(it store.ReviewItem) string {
	if it.Held() {
		if it.Status != store.ReviewOpen {
			// Released by the decision: 'review show' names its patient.
			return "held, decided"
		}
		return "held"
	}
	return strconv.FormatInt(it.Assigned, 10)
}

func printReviewList(w io.Writer, items []store.ReviewItem, all bool) {
	if len(items) == 0 {
		if all {
			fmt.Fprintln(w, "No review items.")
		} else {
			fmt.Fprintln(w, "No open review items.")
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tcreated\tsource\torg\treason\tcandidate\tassigned\tprobability (weight)\tstatus")
	for _, it := range items {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", it.ID, it.CreatedAt.UTC().Format("2006-01-02 15:04Z"), it.SourceID,
			it.OrgCode, it.Reason, it.PatientID, assignedText(it), score(it), it.Status)
	}
	tw.Flush()
}

// printReview lays a review item out for a person: where the record is,
// the candidate's records, the evidence as a table, and any decision.
func printReview(w io.Writer, it store.ReviewItem) {
	fmt.Fprintf(w, "Review item %d (%s)\n", it.ID, it.Status)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  reason:\t%s\n", it.Reason)
	fmt.Fprintf(tw, "  created:\t%s by run %d\n", it.CreatedAt.UTC().Format(time.RFC3339), it.RunID)
	fmt.Fprintf(tw, "  record:\torg %s, local id %s (source %s)\n", it.OrgCode, it.LocalID, it.SourceID)
	where := fmt.Sprintf("%s, line %d", it.File, it.Line)
	if it.DeliveryID != 0 {
		where += fmt.Sprintf(" (delivery %d)", it.DeliveryID)
	}
	fmt.Fprintf(tw, "  from:\t%s\n", where)
	fmt.Fprintf(tw, "  candidate patient:\t%d\n", it.PatientID)
	if it.Held() {
		fmt.Fprintf(tw, "  assigned patient:\tnone: the record is held and not published until decided\n")
	} else {
		fmt.Fprintf(tw, "  assigned patient:\t%d (given meanwhile)\n", it.Assigned)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nCandidate patient %d's records (live version):\n", it.PatientID)
	if len(it.Candidates) == 0 {
		fmt.Fprintln(w, "  none published")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  org\tlocal id")
		for _, l := range it.Candidates {
			fmt.Fprintf(tw, "  %s\t%s\n", l.OrgCode, l.LocalID)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nEvidence:")
	ev := parseEvidence(it.Evidence)
	if ev == nil {
		fmt.Fprintln(w, "  none recorded (the record's date of birth differs from the one its NHS number is linked with)")
	} else {
		if ev.Candidate != nil {
			fmt.Fprintf(w, "  compared with record: org %s, local id %s\n", ev.Candidate.OrgCode, ev.Candidate.LocalID)
		}
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  field\tagreement level\t weight")
		for _, f := range ev.Fields {
			fmt.Fprintf(tw, "  %s\t%s\t%+7.2f\n", f.Field, f.Level, f.Weight)
		}
		fmt.Fprintf(tw, "  total weight\t\t%+7.2f\n", ev.Weight)
		fmt.Fprintf(tw, "  probability\t\t%7.4f\n", ev.Probability)
		fmt.Fprintf(tw, "  demographic weight\t\t%+7.2f\n", ev.Demographic)
		tw.Flush()
		if len(ev.Reasons) > 0 {
			fmt.Fprintf(w, "  held back by: %s\n", strings.Join(ev.Reasons, "; "))
		}
		if ev.Others > 0 {
			fmt.Fprintf(w, "  other candidate patients: %d\n", ev.Others)
		}
	}
	if it.Decision != nil {
		fmt.Fprintln(w)
		printDecision(w, *it.Decision)
		d := it.Decision
		switch {
		case d.PublishedVersion != 0:
			fmt.Fprintf(w, "Applied by run %d; published in version %d.\n", d.AppliedRun, d.PublishedVersion)
		case d.AppliedRun != 0:
			fmt.Fprintf(w, "Applied by run %d; not published yet.\n", d.AppliedRun)
		default:
			fmt.Fprintln(w, "Not applied yet: the next 'careindex run' or 'careindex publish' applies it.")
		}
	}
}

func printDecision(w io.Writer, d store.Decision) {
	verb := "linked"
	if d.Kind == store.DecideSeparate {
		verb = "separated"
	}
	fmt.Fprintf(w, "Review item %d %s by %s at %s", d.ReviewID, verb, d.By, d.At.UTC().Format(time.RFC3339))
	if d.Note != "" {
		fmt.Fprintf(w, " (note: %s)", d.Note)
	}
	fmt.Fprintf(w, ": record %s/%s is patient %d", d.OrgCode, d.LocalID, d.PatientID)
	if d.Kind == store.DecideSeparate && d.OtherPatientID != 0 {
		fmt.Fprintf(w, ", never linked automatically to patient %d", d.OtherPatientID)
	}
	fmt.Fprintln(w, ".")
	if c := d.Change; c != nil {
		switch c.Kind {
		case store.ChangeMerge:
			fmt.Fprintf(w, "Merge: patient %d into patient %d.\n", c.From, c.To)
		case store.ChangeSplit:
			fmt.Fprintf(w, "Split: the record leaves patient %d for the new patient %d.\n", c.From, c.To)
		}
	}
}
