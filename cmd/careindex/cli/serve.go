package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/opsweb"
)

// serveCmd serves the operations endpoints alone, without running jobs:
// for a status page beside a scheduler on another machine.
func serveCmd(ctx context.Context, env Env, args []string) int {
	var c common
	var listen string
	fs := newFlagSet(env, "serve", "--config FILE [--store DSN] --listen ADDR", &c)
	fs.StringVar(&listen, "listen", "", "address to serve /healthz, /readyz, /metrics and the status page on (e.g. :8080)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if listen == "" {
		return fail(env, "serve", fmt.Errorf("%w: --listen ADDR is required", config.ErrInvalid))
	}
	cfg, err := c.loadConfig(env)
	if err != nil {
		return fail(env, "serve", err)
	}
	log, err := c.logger(env)
	if err != nil {
		return fail(env, "serve", err)
	}
	defer log.Sync()
	st, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	defer st.Close()
	h, err := opsweb.NewHandler(opsweb.Options{Config: cfg, Store: st, Log: log})
	if err != nil {
		return fail(env, "serve", err)
	}
	if err := opsweb.Serve(ctx, listen, h, log, nil); err != nil && !errors.Is(err, context.Canceled) {
		return fail(env, "serve", err)
	}
	return ExitOK
}
