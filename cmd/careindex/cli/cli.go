// Package cli implements careindex's commands. Main parses the arguments,
// runs one command and returns the process exit code; each command writes
// to the writers in Env, so tests run them in process.
//
// Exit codes: 0 success; 1 the command failed (a run that failed or
// published with failed sources); 2 bad usage or an invalid configuration;
// 3 publication blocked by the objection register; 4 the store is busy
// with another run; 5 the audit found leaks.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/loader/sqlitestore"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	ExitBlocked = 3
	ExitBusy    = 4
	ExitLeaks   = 5
)

// Env is the process environment a command sees.
type Env struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	// IsTerminal says whether Stderr is a terminal (console logs) or not
	// (JSON logs).
	IsTerminal bool
	// StdoutIsTerminal turns on progress lines for long runs.
	StdoutIsTerminal bool
}

// IsTerminal reports whether f is a character device.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env Env, args []string) int
}

func commands() []command {
	return []command{
		{"run", "extract every source and publish a new version of the index", runCmd},
		{"publish", "publish every source's newest good delivery without extracting", publishCmd},
		{"validate", "check a configuration file and report every problem", validateCmd},
		{"status", "show recent runs, per-source counts and the live version", statusCmd},
		{"rollback", "republish the previous version's deliveries under the current objection rules", rollbackCmd},
		{"accept", "release a delivery held for review (a drastically smaller snapshot) for the next publish", acceptCmd},
		{"review", "the review queue: list and show possible matches and held records; link or separate them", reviewCmd},
		{"audit", "check the live version against the objection register and code lists; list any leak", auditCmd},
		{"report", "reports for information governance: 'report compliance'", reportCmd},
		{"model", "'model estimate': learn a match model from the persons sources' newest deliveries", modelCmd},
		{"generate", "write a synthetic region (deliveries, configuration, ground truth) for tests and benchmarks", generateCmd},
		{"bench", "time a full and an incremental night of a generated region against a raw COPY; linkage quality", benchCmd},
		{"schedule", "run each source's extract and the publish job on their schedules, until stopped", scheduleCmd},
		{"serve", "serve health, readiness, metrics and the status page", serveCmd},
	}
}

// Main runs the command named by args[0].
func Main(ctx context.Context, args []string, env Env) int {
	if env.LookupEnv == nil {
		env.LookupEnv = func(string) (string, bool) { return "", false }
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.Stderr, "careindex: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "careindex builds the regional shared care record index from organisations' deliveries.")
	fmt.Fprintln(w, "\nUsage:\n  careindex <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'careindex <command> --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 failed, 2 usage or invalid configuration, 3 publication blocked, 4 store busy, 5 leaks found.")
}

// common holds the flags every store command takes.
type common struct {
	config    string
	store     string
	logFormat string
	logLevel  string
}

func newFlagSet(env Env, name, synopsis string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: careindex %s %s\n\nFlags:\n", name, synopsis)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(env.Stderr)
	}
	if c != nil {
		fs.StringVar(&c.config, "config", "", "configuration file (YAML); $CAREINDEX_CONFIG if unset")
		fs.StringVar(&c.store, "store", "", "store DSN (postgres://… or sqlite:PATH), overriding the configuration's")
		fs.StringVar(&c.logFormat, "log-format", "", "log format: json or console (default: console at a terminal, json otherwise)")
		fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	}
	return fs
}

// parse parses flags; ok is false when the command should exit with code.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "careindex %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}

func (c *common) loadConfig(env Env) (*config.Config, error) {
	path := c.config
	if path == "" {
		path, _ = env.LookupEnv("CAREINDEX_CONFIG")
	}
	if path == "" {
		return nil, fmt.Errorf("%w: no configuration: pass --config FILE or set CAREINDEX_CONFIG", config.ErrInvalid)
	}
	cfg, err := config.Load(path, env.LookupEnv)
	if err != nil {
		return nil, err
	}
	if c.store != "" {
		cfg.Store = c.store
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (c *common) logger(env Env) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	format := c.logFormat
	if format == "" {
		format = "json"
		if env.IsTerminal {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format: %q is neither json nor console", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(env.Stderr), level)), nil
}

// openStore opens the store a DSN names and migrates it.
func openStore(ctx context.Context, dsn string, log *zap.Logger) (store.Store, error) {
	var st store.Store
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := pgstore.Open(ctx, dsn, log)
		if err != nil {
			return nil, err
		}
		st = s
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if path == "" {
			return nil, fmt.Errorf("%w: store %q names no file", config.ErrInvalid, dsn)
		}
		s, err := sqlitestore.Open(ctx, path, log)
		if err != nil {
			return nil, err
		}
		st = s
	default:
		return nil, fmt.Errorf("%w: store %q is neither postgres:// nor sqlite:PATH", config.ErrInvalid, config.RedactDSN(dsn))
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, config.ErrInvalid), errors.Is(err, pipeline.ErrUnknownSource):
		return ExitUsage
	case errors.Is(err, pipeline.ErrBlocked):
		return ExitBlocked
	case errors.Is(err, pipeline.ErrLeaks):
		return ExitLeaks
	case errors.Is(err, pgstore.ErrBusy), errors.Is(err, sqlitestore.ErrBusy):
		return ExitBusy
	default:
		return ExitFailed
	}
}

// fail prints err and returns its exit code.
func fail(env Env, cmd string, err error) int {
	fmt.Fprintf(env.Stderr, "careindex %s: %v\n", cmd, err)
	return exitCode(err)
}

func redacted(dsn string) string { return config.RedactDSN(dsn) }
