package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/careindex/careindex/schedules/config"
)

// Schedule says when a job runs next. Next returns the first run time
// strictly after t, or the zero time if there is none.
type Schedule interface {
	Next(t time.Time) time.Time
}

// Cron is a cron expression read in a time zone, with the daylight saving
// rules of the classic cron daemon:
//
//   - A job at a fixed time of day runs once a day by the wall clock. On
//     the spring-forward night a time the clock skips (01:30 when 01:00 GMT
//     becomes 02:00 BST) runs as if the clock had not changed yet: 01:30 GMT,
//     which the clock shows as 02:30 BST, exactly one day after the run
//     before. On the fall-back night a time the clock shows twice (01:30
//     BST, then 01:30 GMT an hour later) runs the first time only.
//   - A job whose hour field is "*" (every hour, every few minutes or
//     seconds) follows real time: on the fall-back night it runs in both
//     passes of the repeated hour, and on the spring-forward night the
//     skipped hour simply does not happen.
//
// robfig/cron, which gocron uses by default, skips the fixed-time job on
// the spring-forward night and runs it twice on the fall-back night.
type Cron struct {
	expr string
	loc  *time.Location
	// spec is the parsed expression; wall is the same read in UTC, whose
	// times are wall-clock times without daylight saving.
	spec cron.Schedule
	wall *cron.SpecSchedule
}

// ParseSchedule parses a cron expression as config.ParseCron does (five
// fields, or six with seconds first, or a descriptor) in loc. A "TZ=" or
// "CRON_TZ=" prefix overrides loc.
func ParseSchedule(expr string, loc *time.Location) (*Cron, error) {
	spec, err := config.ParseCron(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	c := &Cron{expr: expr, loc: loc, spec: spec}
	if s, ok := spec.(*cron.SpecSchedule); ok {
		if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
			c.loc = s.Location
		}
		local := *s
		local.Location = c.loc
		c.spec = &local
		if s.Hour&allHours != allHours {
			wall := *s
			wall.Location = time.UTC
			c.wall = &wall
		}
	}
	return c, nil
}

// allHours has a bit for each hour of the day.
const allHours = 1<<24 - 1

func (c *Cron) String() string { return c.expr }

// Location is the time zone the expression is read in.
func (c *Cron) Location() *time.Location { return c.loc }

// Next returns the first run time after t, in the schedule's time zone.
func (c *Cron) Next(t time.Time) time.Time {
	if c.wall == nil {
		n := c.spec.Next(t.In(c.loc))
		if n.IsZero() {
			return n
		}
		return n.In(c.loc)
	}
	// Find the next wall-clock time, then the instant the wall clock
	// shows it (the first of two, or the pre-change reading of a skipped
	// one); skip instants not after t, which the fall-back night's
	// second pass through the repeated hour produces.
	w := c.wall.Next(wallTime(t.In(c.loc)))
	for i := 0; i < 1000 && !w.IsZero(); i++ {
		if at := c.instant(w); at.After(t) {
			return at
		}
		w = c.wall.Next(w)
	}
	return time.Time{}
}

// wallTime returns t's wall-clock reading as a UTC time.
func wallTime(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant returns the first instant at which the wall clock of c's zone
// reads w (a UTC time standing for a wall-clock reading). If the clock
// never reads w (it jumped over it), it is w read in the offset in force
// before the jump.
func (c *Cron) instant(w time.Time) time.Time {
	var first time.Time
	var before int
	for i, probe := range []time.Time{w.Add(-36 * time.Hour), w, w.Add(36 * time.Hour)} {
		_, off := probe.In(c.loc).Zone()
		if i == 0 {
			before = off
		}
		at := w.Add(-time.Duration(off) * time.Second).In(c.loc)
		if wallTime(at).Equal(w) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if first.IsZero() {
		return w.Add(-time.Duration(before) * time.Second).In(c.loc)
	}
	return first
}

// Prev returns the latest run time of s at or before t, searching up to
// about a year back; the zero time if there is none.
func Prev(s Schedule, t time.Time) time.Time {
	for _, back := range []time.Duration{time.Minute, time.Hour, 26 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
		n := s.Next(t.Add(-back))
		if n.IsZero() || n.After(t) {
			continue
		}
		for {
			nn := s.Next(n)
			if nn.IsZero() || nn.After(t) {
				return n
			}
			n = nn
		}
	}
	return time.Time{}
}

// slotOf returns the run time a trigger at t belongs to: the nearer of
// the run times either side of t. A timer firing a little late or (after a
// clock adjustment) a little early still names the run time it was set for.
func slotOf(s Schedule, t time.Time) time.Time {
	prev := Prev(s, t)
	next := s.Next(t)
	switch {
	case prev.IsZero():
		return next
	case next.IsZero() || t.Sub(prev) <= next.Sub(t):
		return prev
	default:
		return next
	}
}

// margin is how long before its run time a run may have started and still
// count as that run time's: a quarter of the interval to the next run time,
// at most a minute. It absorbs clock differences between schedulers.
func margin(s Schedule, slot time.Time) time.Duration {
	next := s.Next(slot)
	if next.IsZero() {
		return time.Minute
	}
	return min(next.Sub(slot)/4, time.Minute)
}

// covers reports whether a run started at started counts as the run of
// the run time slot (or a later one).
func covers(s Schedule, started, slot time.Time) bool {
	return !started.Before(slot.Add(-margin(s, slot)))
}
