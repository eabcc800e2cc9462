// Package opsweb serves careindex's operations endpoints over HTTP:
//
//	/healthz   200 while the process is alive
//	/readyz    200 when the store answers, 503 otherwise
//	/metrics   Prometheus text format, from a registry of careindex's own
//	/          the status page: each source's newest delivery and its
//	           freshness, its latest counts and reject rate, the recent runs
//	           and their errors, the schedule and the live version
//
// The scheduler serves them beside its jobs (careindex schedule --listen),
// and careindex serve serves them alone. Everything shown is read from the
// store at each request (package opstate), so every process shows the
// same; nothing shown is patient data.
package opsweb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/opstate"
)

//go:embed templates/*.html
var templates embed.FS

var pageTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
}).ParseFS(templates, "templates/status.html"))

// Options configure the handler. Config and Store are required.
type Options struct {
	Config *config.Config
	Store  store.Store
	// Metrics is served at /metrics. Defaults to NewMetrics(State(...)).
	Metrics *Metrics
	// Jobs are shown with their next run times. Defaults to the
	// configuration's jobs.
	Jobs []daemon.Job
	// Scheduler says a scheduler runs in this process (shown on the page).
	Scheduler bool
	// Clock is the time source. Defaults to the real clock.
	Clock clockwork.Clock
	// Log hears about failed requests. Defaults to none.
	Log *zap.Logger
	// Runs is how many recent runs the page shows. Defaults to 15.
	Runs int
}

// State returns a StateFunc reading cfg's region from st.
func State(cfg *config.Config, st store.Store, clock clockwork.Clock, runs int) StateFunc {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return func(ctx context.Context) (opstate.Snapshot, error) {
		return opstate.Read(ctx, opstate.Options{Config: cfg, Store: st, Now: clock.Now(), Runs: runs})
	}
}

type handler struct {
	opts  Options
	state StateFunc
	loc   *time.Location
}

// NewHandler returns the operations endpoints.
func NewHandler(opts Options) (http.Handler, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("opsweb: Config and Store are required")
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Runs <= 0 {
		opts.Runs = 15
	}
	loc, err := opts.Config.Location()
	if err != nil {
		return nil, err
	}
	if opts.Jobs == nil {
		if opts.Jobs, err = daemon.Jobs(opts.Config); err != nil {
			return nil, err
		}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(State(opts.Config, opts.Store, opts.Clock, 20))
	}
	h := &handler{opts: opts, state: State(opts.Config, opts.Store, opts.Clock, opts.Runs), loc: loc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", h.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics.Registry(), promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(opts.Log)}))
	mux.HandleFunc("GET /{$}", h.status)
	return mux, nil
}

func (h *handler) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, _, err := h.opts.Store.Live(ctx); err != nil {
		h.opts.Log.Warn("not ready: the store does not answer", zap.Error(err))
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "store unreachable")
		return
	}
	fmt.Fprintln(w, "ready")
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	snap, err := h.state(ctx)
	p := h.page(snap, err)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		h.opts.Log.Warn("status page: the store does not answer", zap.Error(err))
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if err := pageTemplate.Execute(w, p); err != nil {
		h.opts.Log.Error("status page", zap.Error(err))
	}
}

// Serve serves h on addr until ctx ends, then shuts down gracefully.
// listening, if not nil, is told the address once the listener is open
// (":0" picks a free port).
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger, listening func(net.Addr)) error {
	if log == nil {
		log = zap.NewNop()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log)}
	log.Info("serving health, metrics and the status page", zap.String("addr", ln.Addr().String()))
	if listening != nil {
		listening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
