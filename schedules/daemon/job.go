package daemon

import (
	"fmt"

	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
)

// Job is one scheduled job: a source's extract job, or the publish job.
type Job struct {
	// Name identifies the job in logs, alerts, metrics and lock keys:
	// "extract SOURCE-ID" or "publish".
	Name string
	// Stage is pipeline.StageExtract or pipeline.StagePublish.
	Stage pipeline.Stage
	// Source is the source an extract job reads; empty for publish.
	Source string
	// Schedule says when the job runs.
	Schedule *Cron
}

// Jobs returns the configuration's jobs: one extract job per source with
// a schedule, in the configuration's order, then the publish job if
// publish has a schedule. Their times are in the configured time zone.
func Jobs(cfg *config.Config) ([]Job, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	var jobs []Job
	for _, s := range cfg.Sources {
		if s.Schedule == "" {
			continue
		}
		sched, err := ParseSchedule(s.Schedule, loc)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.ID, err)
		}
		jobs = append(jobs, Job{Name: "extract " + s.ID, Stage: pipeline.StageExtract, Source: s.ID, Schedule: sched})
	}
	if cfg.Publish.Schedule != "" {
		sched, err := ParseSchedule(cfg.Publish.Schedule, loc)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		jobs = append(jobs, Job{Name: "publish", Stage: pipeline.StagePublish, Schedule: sched})
	}
	return jobs, nil
}
