package bench

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq" // the postgres driver
	"go.uber.org/zap"
	_ "modernc.org/sqlite" // the sqlite driver

	"github.com/careindex/careindex/fixtures/regiongen"
	"github.com/careindex/careindex/schedules/config"
)

// bench is one benchmark's state.
type bench struct {
	opts    Options
	log     *zap.Logger
	admin   *sql.DB
	prefix  string // of the databases' names
	scratch string // the run's scratch folder
	region  string
	sum     regiongen.Summary
	dbs     []string // databases created
	paths   []string // folders to remove
	kept    []string
}

func (b *bench) connectAdmin(ctx context.Context) error {
	db, err := sql.Open("postgres", b.opts.AdminDSN)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return fmt.Errorf("bench: PostgreSQL is not reachable at %s (--pg-dsn): %w", config.RedactDSN(b.opts.AdminDSN), err)
	}
	b.admin = db
	return nil
}

// dsnFor returns the admin DSN naming another database.
func (b *bench) dsnFor(name string) (string, error) {
	u, err := url.Parse(b.opts.AdminDSN)
	if err != nil {
		return "", fmt.Errorf("admin DSN: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

var dbSuffix = regexp.MustCompile(`^[a-z0-9_]+$`)

// createDatabase creates prefix_suffix and returns its DSN.
func (b *bench) createDatabase(ctx context.Context, suffix string) (string, error) {
	if !dbSuffix.MatchString(suffix) {
		return "", fmt.Errorf("bad database name suffix %q", suffix)
	}
	name := b.prefix + "_" + suffix
	if _, err := b.admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	b.dbs = append(b.dbs, name)
	return b.dsnFor(name)
}

// dropDatabase drops a database made by createDatabase now (unless Keep).
func (b *bench) dropDatabase(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if b.opts.Keep {
		return nil
	}
	if _, err := b.admin.ExecContext(context.WithoutCancel(ctx), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	for i, n := range b.dbs {
		if n == name {
			b.dbs = append(b.dbs[:i], b.dbs[i+1:]...)
			break
		}
	}
	return nil
}

func (b *bench) remove(path string) { b.paths = append(b.paths, path) }

// cleanup drops the databases and removes the scratch folders, or lists
// them as kept.
func (b *bench) cleanup() error {
	var errs []error
	if b.opts.Keep {
		for _, n := range b.dbs {
			if dsn, err := b.dsnFor(n); err == nil {
				b.kept = append(b.kept, config.RedactDSN(dsn))
			}
		}
		if b.scratch != "" {
			b.kept = append(b.kept, b.scratch)
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range b.dbs {
			if _, err := b.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+n+` WITH (FORCE)`); err != nil {
				errs = append(errs, fmt.Errorf("bench: dropping database %s: %w", n, err))
			}
		}
		for i := len(b.paths) - 1; i >= 0; i-- {
			if err := os.RemoveAll(b.paths[i]); err != nil {
				errs = append(errs, fmt.Errorf("bench: %w", err))
			}
		}
	}
	if b.admin != nil {
		b.admin.Close()
	}
	return errors.Join(errs...)
}

// psql runs psql with args against dsn.
func (b *bench) psql(ctx context.Context, dsn string, args ...string) error {
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1"}, append(args, dsn)...)...)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c client_min_messages=warning")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql %s: %w\n%s", strings.Join(args, " "), err, tail(out, 20))
	}
	return nil
}

// psqlFile runs a script with psql -f.
func (b *bench) psqlFile(ctx context.Context, dsn, path string) error {
	return b.psql(ctx, dsn, "-f", path)
}

// childResult is one finished child process.
type childResult struct {
	elapsed        time.Duration
	maxRSS         int64
	rssFrom        string
	stdout, stderr bytes.Buffer
}

func (r *childResult) output() string {
	return string(tail(r.stdout.Bytes(), 30)) + string(tail(r.stderr.Bytes(), 30))
}

// child runs the careindex binary with args and returns how long it took
// and its peak resident set. A non-zero exit is an error.
func (b *bench) child(ctx context.Context, env []string, args ...string) (*childResult, error) {
	cmd := exec.CommandContext(ctx, b.opts.Binary, args...)
	cmd.Env = append(append(os.Environ(), b.opts.ChildEnv...), env...)
	res := &childResult{}
	cmd.Stdout, cmd.Stderr = &res.stdout, &res.stderr
	// A cancelled benchmark stops the run as an operator would (the run
	// records itself failed), then kills it if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("careindex %s: %w", args[0], err)
	}
	watch := watchRSS(cmd.Process.Pid)
	err := cmd.Wait()
	res.elapsed = time.Since(start)
	res.maxRSS, res.rssFrom = watch.result(cmd.ProcessState)
	if err != nil {
		return res, fmt.Errorf("careindex %s: %w\n%s", args[0], err, res.output())
	}
	return res, nil
}

// tail returns the last n lines of out.
func tail(out []byte, n int) []byte {
	out = bytes.TrimRight(out, "\n")
	lines := bytes.Split(out, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && len(lines[0]) == 0 {
		return nil
	}
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

// machine describes this machine and the database servers.
func (b *bench) machine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					m.MemTotalBytes = kb * 1024
				}
			}
		}
	}
	_ = b.admin.QueryRowContext(ctx, `SHOW server_version`).Scan(&m.PostgreSQL)
	if db, err := sql.Open("sqlite", ":memory:"); err == nil {
		_ = db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&m.SQLite)
		db.Close()
	}
	return m
}
