// Package daemon runs careindex's jobs on their schedules: each source's
// extract job (pipeline.StageExtract of that source) on the source's cron,
// and the publish job (pipeline.StagePublish) on publish.schedule, in the
// configuration's time zone. `careindex schedule` is this package with
// flags around it.
//
// # Running it
//
//	d, err := daemon.New(daemon.Options{
//		Config:   cfg,                          // schedules, retry policy, alert thresholds
//		Store:    st,                           // the regional store every run uses
//		Locker:   daemon.NewPGLocker(lockDB),   // schedulers sharing the store take turns
//		Notifier: webhook,                      // alerts (optional)
//		Log:      log,
//	})
//	...
//	err = d.Run(ctx) // until ctx ends (SIGTERM, SIGINT)
//
// Jobs are gocron v2 jobs. A job never overlaps itself (gocron's singleton
// mode, and a per-job guard in the process). At most MaxConcurrent jobs run
// at once, so that a burst of catch-up runs does not exhaust the store's
// connection pool.
//
// # Schedules and daylight saving
//
// A schedule is anything with Next(time.Time) time.Time. Cron, from
// ParseSchedule, reads the configuration's cron expressions: five fields,
// or six with seconds first (config.ParseCron) so that drills and tests
// can run jobs seconds apart with no special clock. Cron keeps a fixed-time
// job to one run a day by the wall clock across the daylight saving
// changes: on the UK's spring-forward night (01:00 GMT becomes 02:00 BST) a
// 01:30 job runs once, at 02:30 BST, and on the fall-back night (02:00 BST
// becomes 01:00 GMT) once, at the first 01:30. robfig/cron, under gocron,
// skips the first and repeats the second; gocron's own guard only catches
// the second. The next run time is always computed from the previous
// scheduled time, never from when a run ended.
//
// # Several schedulers, one store
//
// Run two or more schedulers against one store for high availability. A
// PGLocker gives gocron a PostgreSQL advisory lock per job (a session lock
// on a connection held for the run): the first scheduler to reach a run
// time runs it, the others skip it. If the scheduler holding a job dies,
// its connection drops, PostgreSQL releases the lock, and another
// scheduler runs the next run time; the dead one's unfinished run is marked
// abandoned by the store. A scheduler whose clock is behind could reach a
// run time after the first has finished with it: before running, each
// scheduler reads the run ledger and skips a run time whose run is there
// already. The freshness monitor runs on one scheduler at a time, under a
// lock of its own that it keeps until it stops.
//
// # Retries
//
// A run that fails for a transient reason (IsTransient: the store or a
// network unreachable, PostgreSQL restarting, a timeout, the store busy
// with another run, an S3 5xx) is tried again after Backoff, at most
// retry.attempts times in all; bad data is never retried. Every attempt is
// a run in the ledger, the retries noted in its message ("retry 1 of 2:
// …").
//
// # Catch-up
//
// At start-up, each job whose last run (in the ledger) started before its
// previous run time missed that run time while no scheduler was running. It
// runs once, at once (missed extracts first, then a missed publish), and
// its ledger message says so ("catch-up of the run due 2026-11-24 01:30
// GMT: …"). A scheduler down for a week runs each job once, not seven
// times. A job with no run in the ledger at all waits for its next run time.
//
// # Stopping
//
// When ctx ends, no new run starts. Running jobs get StopTimeout to finish;
// then their context is cancelled, and the pipeline records their runs as
// failed (the live index is untouched: a run changes it only in its final
// swap) within RecordTimeout.
//
// # Alerts and freshness
//
// After each job, the daemon raises alerts (package alert) for a failed
// run, a publication blocked by the objection register, and a new delivery
// whose quarantined share of rows is above its source's threshold. Every
// FreshnessEvery it compares each source's newest delivery with the
// source's freshness rule and raises an alert when the source becomes late
// (a warning) or missing (an error), and when it delivers again.
package daemon
