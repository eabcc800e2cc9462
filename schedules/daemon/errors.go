package daemon

import "errors"

// ErrLockHeld means another scheduler (or another run in this one) holds
// a job's lock.
var ErrLockHeld = errors.New("lock held elsewhere")

// ErrNoJobs means the configuration schedules nothing: no source has a
// schedule and publish has none.
var ErrNoJobs = errors.New("nothing is scheduled")
