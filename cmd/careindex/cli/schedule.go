package cli

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
	"go.uber.org/zap"

	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/opsweb"
)

// scheduleCmd runs the scheduler: each source's extract job on its cron,
// the publish job on publish.schedule, until SIGTERM or SIGINT.
func scheduleCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var listen string
	var stopTimeout time.Duration
	fs := newFlagSet(env, "schedule", "--config FILE [--store DSN] [--listen ADDR] [--stop-timeout DURATION]", &c)
	fs.StringVar(&listen, "listen", "", "also serve /healthz, /readyz, /metrics and the status page on this address (e.g. :8080)")
	fs.DurationVar(&stopTimeout, "stop-timeout", 2*time.Minute,
		"on SIGTERM or SIGINT, how long running jobs may go on before they are cancelled (give the supervisor's kill timeout a minute more)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := c.loadConfig(env)
	if err != nil {
		return fail(env, "schedule", err)
	}
	if c.logFormat == "" {
		// A daemon's logs go to a collector: JSON unless asked otherwise.
		c.logFormat = "json"
	}
	log, err := c.logger(env)
	if err != nil {
		return fail(env, "schedule", err)
	}
	defer log.Sync()
	st, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return fail(env, "schedule", err)
	}
	defer st.Close()

	opts := daemon.Options{Config: cfg, Store: st, Log: log, StopTimeout: stopTimeout}
	if isPostgres(cfg.Store) {
		db, locker, err := openLocker(ctx, cfg)
		if err != nil {
			return fail(env, "schedule", err)
		}
		defer db.Close()
		opts.Locker = locker
	} else {
		log.Warn("the store is not PostgreSQL: jobs are kept from overlapping in this process only; run a single scheduler")
	}
	if w := cfg.Alerts.Webhook; w != nil {
		hook := alert.NewWebhook(*w, alert.WebhookOptions{Log: log})
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := hook.Close(cctx); err != nil {
				log.Warn("alerts not delivered before exit", zap.Error(err))
			}
		}()
		opts.Notifier = hook
	}
	metrics := opsweb.NewMetrics(opsweb.State(cfg, st, nil, 20))
	opts.Observer = metrics
	d, err := daemon.New(opts)
	if err != nil {
		return fail(env, "schedule", err)
	}

	// The endpoints stay up while the jobs drain after a stop signal, so
	// that a supervisor's liveness probe does not kill the drain.
	var serveErr chan error
	stopServing := func() {}
	if listen != "" {
		h, err := opsweb.NewHandler(opsweb.Options{Config: cfg, Store: st, Metrics: metrics, Jobs: d.Jobs(), Scheduler: true, Log: log})
		if err != nil {
			return fail(env, "schedule", err)
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopServing = cancel
		if serveErr, err = startServing(sctx, listen, h, log); err != nil {
			cancel()
			return fail(env, "schedule", err)
		}
	}
	log.Info("scheduler starting", zap.Int("jobs", len(d.Jobs())), zap.String("timezone", cfg.Timezone),
		zap.String("store", config.RedactDSN(cfg.Store)), zap.Bool("distributed_lock", opts.Locker != nil))
	runErr := d.Run(ctx)
	stopServing()
	if serveErr != nil {
		if err := <-serveErr; err != nil {
			log.Warn("status server", zap.Error(err))
		}
	}
	if runErr != nil {
		return fail(env, "schedule", runErr)
	}
	return ExitOK
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openLocker opens the pool the scheduler's advisory locks live on: a pool
// of its own, so that held locks never starve the runs of connections.
func openLocker(ctx context.Context, cfg *config.Config) (*sql.DB, gocron.Locker, error) {
	db, err := sql.Open("postgres", cfg.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the lock connection: %w", err)
	}
	db.SetMaxOpenConns(len(cfg.Sources) + 4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connecting for the scheduler's locks: %w", err)
	}
	return db, daemon.NewPGLocker(db), nil
}

// startServing serves h on addr in the background until ctx ends; the
// channel receives Serve's result. It returns once the listener is open,
// or with the error that kept it from opening.
func startServing(ctx context.Context, addr string, h http.Handler, log *zap.Logger) (chan error, error) {
	errc := make(chan error, 1)
	ready := make(chan struct{})
	go func() { errc <- opsweb.Serve(ctx, addr, h, log, func(net.Addr) { close(ready) }) }()
	select {
	case <-ready:
		return errc, nil
	case err := <-errc:
		return nil, err
	}
}
