package opsweb

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/opstate"
	"github.com/careindex/careindex/schedules/pipeline"
)

// StateFunc takes a snapshot of the region's state.
type StateFunc func(ctx context.Context) (opstate.Snapshot, error)

// Metrics are careindex's Prometheus metrics, in a registry of their own.
//
// Counters of what this process did (zero in a process that only serves):
//
//	careindex_runs_total{job,kind,status}          run attempts by how they ended
//	careindex_run_duration_seconds{kind}            run attempts' durations
//	careindex_rows_total{source,outcome}            rows read (rows_in, quarantined, merged, pending)
//	                                                and published (loaded, withheld) by new deliveries
//	careindex_job_retries_total{job}                transient failures retried
//	careindex_job_skipped_total{job,reason}         run times skipped: locked, running, done
//	careindex_alerts_total{kind}                    alerts raised
//
// Gauges read from the store at each scrape (the same in every process):
//
//	careindex_store_up                              1 if the store answered
//	careindex_live_version                          the live version
//	careindex_last_publish_timestamp_seconds        when the live version was published
//	careindex_source_freshness_seconds{source}      age of the source's newest delivery
//	careindex_source_freshness{source,state}        1 for the state: fresh, late, missing, not_monitored
//	careindex_source_stale{source}                  1 if the index keeps an older delivery
//	careindex_source_rows{source,outcome}           counts of the source's latest counted delivery
//	careindex_source_reject_ratio{source}           its quarantined share of rows in
//	careindex_last_run_timestamp_seconds{kind,status}  start of the newest recent run of each kind and status
type Metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rows     *prometheus.CounterVec
	retries  *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	alerts   *prometheus.CounterVec
}

var _ daemon.Observer = (*Metrics)(nil)

// NewMetrics registers the metrics; state feeds the gauges (nil: none).
func NewMetrics(state StateFunc) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "careindex_runs_total",
			Help: "Run attempts made by this process, by job, kind and final status."}, []string{"job", "kind", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "careindex_run_duration_seconds",
			Help:    "Duration of run attempts made by this process.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 2400, 3600}}, []string{"kind"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "careindex_rows_total",
			Help: "Rows of new deliveries by source and outcome (rows_in, loaded, quarantined, withheld, merged, pending)."}, []string{"source", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "careindex_job_retries_total",
			Help: "Transient job failures that were retried."}, []string{"job"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "careindex_job_skipped_total",
			Help: "Run times skipped: locked (another scheduler ran it), running (still running), done (already in the ledger)."}, []string{"job", "reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "careindex_alerts_total",
			Help: "Alerts raised by this process, by kind."}, []string{"kind"}),
	}
	m.reg.MustRegister(m.runs, m.duration, m.rows, m.retries, m.skipped, m.alerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if state != nil {
		m.reg.MustRegister(&stateCollector{state: state})
	}
	return m
}

// Registry is the registry to serve.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// RunFinished counts a run attempt.
func (m *Metrics) RunFinished(job daemon.Job, res pipeline.Result, err error, took time.Duration) {
	status := string(res.Status)
	if status == "" {
		status = "failed"
	}
	m.runs.WithLabelValues(job.Name, job.Stage.String(), status).Inc()
	m.duration.WithLabelValues(job.Stage.String()).Observe(took.Seconds())
	for _, o := range res.Sources {
		add := func(outcome string, n int) {
			if n > 0 {
				m.rows.WithLabelValues(o.SourceID, outcome).Add(float64(n))
			}
		}
		switch o.Status {
		case "new": // read by this run
			add("rows_in", o.RowsIn)
			add("quarantined", o.Quarantined)
			add("merged", o.Merged)
			add("pending", o.Pending)
			add("loaded", o.Loaded)
			add("withheld", o.Withheld)
		case "pending": // published by this run, read by an earlier one
			add("loaded", o.Loaded)
			add("withheld", o.Withheld)
		}
	}
}

// JobSkipped counts a skipped run time.
func (m *Metrics) JobSkipped(job daemon.Job, reason string) {
	m.skipped.WithLabelValues(job.Name, reason).Inc()
}

// Retrying counts a retry.
func (m *Metrics) Retrying(job daemon.Job, _ int, _ time.Duration) {
	m.retries.WithLabelValues(job.Name).Inc()
}

// AlertRaised counts an alert.
func (m *Metrics) AlertRaised(a alert.Alert) {
	m.alerts.WithLabelValues(string(a.Kind)).Inc()
}

// stateCollector reads the gauges from the store at each scrape. It is
// unchecked: the sources' label values are only known at scrape time.
type stateCollector struct {
	state StateFunc
}

var (
	descUp          = prometheus.NewDesc("careindex_store_up", "1 if the store answered the scrape's queries.", nil, nil)
	descLive        = prometheus.NewDesc("careindex_live_version", "The live published version.", nil, nil)
	descLastPublish = prometheus.NewDesc("careindex_last_publish_timestamp_seconds", "When the live version was published (the last successful publish).", nil, nil)
	descFreshSecs   = prometheus.NewDesc("careindex_source_freshness_seconds", "Age of the source's newest delivery.", []string{"source"}, nil)
	descFreshState  = prometheus.NewDesc("careindex_source_freshness", "1 for the source's freshness state.", []string{"source", "state"}, nil)
	descStale       = prometheus.NewDesc("careindex_source_stale", "1 if the live index keeps an older delivery of the source.", []string{"source"}, nil)
	descRows        = prometheus.NewDesc("careindex_source_rows", "Counts of the source's latest counted delivery.", []string{"source", "outcome"}, nil)
	descReject      = prometheus.NewDesc("careindex_source_reject_ratio", "Quarantined share of the rows of the source's latest counted delivery.", []string{"source"}, nil)
	descLastRun     = prometheus.NewDesc("careindex_last_run_timestamp_seconds", "Start of the newest recent run of each kind and status.", []string{"kind", "status"}, nil)
)

func (c *stateCollector) Describe(chan<- *prometheus.Desc) {}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := c.state(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	if snap.Live != nil {
		ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(snap.Live.Version))
		ch <- prometheus.MustNewConstMetric(descLastPublish, prometheus.GaugeValue, float64(snap.Live.PublishedAt.UnixMilli())/1000)
	}
	states := []opstate.Freshness{opstate.Fresh, opstate.Late, opstate.Missing, opstate.Unmonitored}
	for _, s := range snap.Sources {
		id := s.Config.ID
		if !s.DeliveredAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descFreshSecs, prometheus.GaugeValue, s.Age.Seconds(), id)
		}
		for _, st := range states {
			v := 0.0
			if s.Freshness == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descFreshState, prometheus.GaugeValue, v, id, stateLabel(st))
		}
		stale := 0.0
		if s.Stale {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, stale, id)
		if o := s.Counts; o != nil {
			for _, kv := range []struct {
				k string
				v int
			}{{"rows_in", o.RowsIn}, {"loaded", o.Loaded}, {"quarantined", o.Quarantined}, {"withheld", o.Withheld}, {"merged", o.Merged}, {"pending", o.Pending}} {
				ch <- prometheus.MustNewConstMetric(descRows, prometheus.GaugeValue, float64(kv.v), id, kv.k)
			}
			ch <- prometheus.MustNewConstMetric(descReject, prometheus.GaugeValue, s.RejectRate, id)
		}
	}
	seen := map[[2]string]bool{}
	for _, r := range snap.Runs {
		key := [2]string{r.Kind, string(r.Status)}
		if seen[key] {
			continue
		}
		seen[key] = true
		ch <- prometheus.MustNewConstMetric(descLastRun, prometheus.GaugeValue, float64(r.StartedAt.UnixMilli())/1000, key[0], key[1])
	}
}

func stateLabel(f opstate.Freshness) string {
	if f == opstate.Unmonitored {
		return "not_monitored"
	}
	return f.String()
}
