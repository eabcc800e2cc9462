package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/careindex/careindex/schedules/bench"
)

// benchCmd benchmarks a full night and an incremental night of a generated
// region on fresh databases, against a raw COPY of the rows published (see
// schedules/bench). It runs this executable as a child process for each
// stage.
func benchCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var opts bench.Options
	var backends string
	var asJSON bool
	fs := newFlagSet(env, "bench", "--patients N [--seed S] [--work DIR] [--pg-dsn ADMIN_DSN] [--backends postgres,sqlite] [--json] [--keep] [--profile DIR]", nil)
	fs.IntVar(&opts.Patients, "patients", 0, "people in the generated region (required)")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed of the generated region")
	fs.StringVar(&opts.Work, "work", "", "folder for the region (DIR/region, reused when its summary matches) and scratch files; default a temporary folder")
	fs.StringVar(&opts.AdminDSN, "pg-dsn", bench.DefaultAdminDSN, "PostgreSQL DSN of a user who may create databases; the benchmark's fresh databases are made on that server")
	fs.StringVar(&backends, "backends", bench.Postgres+","+bench.SQLite, "store backends to benchmark, comma-separated: postgres, sqlite")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the databases and scratch files (listed in the report)")
	fs.StringVar(&opts.ProfileDir, "profile", "", "write a CPU and a heap profile of each stage's careindex process into this folder (BACKEND-STAGE.cpu.pprof, .mem.pprof)")
	fs.StringVar(&c.logFormat, "log-format", "", "log format: json or console (default: console at a terminal, json otherwise)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if opts.Patients <= 0 {
		fmt.Fprintln(env.Stderr, "careindex bench: --patients N (at least 1) is required")
		return ExitUsage
	}
	for _, b := range strings.Split(backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			opts.Backends = append(opts.Backends, b)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(env, "bench", fmt.Errorf("finding the careindex executable: %w", err))
	}
	opts.Binary = exe
	log, err := c.logger(env)
	if err != nil {
		return fail(env, "bench", err)
	}
	defer log.Sync()
	opts.Log = log
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "careindex bench: %s\n", strings.TrimPrefix(err.Error(), "bench: "))
		if errors.Is(err, bench.ErrInvalidOptions) {
			return ExitUsage
		}
		return ExitFailed
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(env, "bench", err)
		}
		return ExitOK
	}
	if err := rep.WriteText(env.Stdout); err != nil {
		return fail(env, "bench", err)
	}
	return ExitOK
}
