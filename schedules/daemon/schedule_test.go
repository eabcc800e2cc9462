package daemon_test

import (
	"testing"
	"time"

	"github.com/careindex/careindex/schedules/daemon"
)

func london(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// The 2026 changes in the UK: 29 March 01:00 GMT → 02:00 BST, and
// 25 October 02:00 BST → 01:00 GMT.
func TestCronNextAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	loc := london(t)
	tests := []struct {
		name string
		expr string
		from string
		want []string // UTC instants
	}{
		{"fixed time, spring forward: runs once, at 02:30 BST (01:30 GMT)", "30 1 * * *", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}},
		{"fixed time, fall back: runs once, at the first 01:30 (BST)", "30 1 * * *", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"fixed time, starting inside the repeated hour after the first 01:30", "30 1 * * *", "2026-10-25T01:10:00Z",
			[]string{"2026-10-26T01:30:00Z"}},
		{"fixed time outside the changes keeps its wall time", "0 5 * * *", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T04:00:00Z", "2026-03-30T04:00:00Z"}},
		{"two fixed times, one skipped by spring forward", "30 1,3 * * *", "2026-03-29T00:00:00Z",
			[]string{"2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z", "2026-03-30T00:30:00Z"}},
		{"hourly follows real time: both 01:00s on the fall-back night", "0 * * * *", "2026-10-24T23:30:00Z",
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
		{"hourly: the skipped hour does not happen", "0 * * * *", "2026-03-28T23:30:00Z",
			[]string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		{"six fields: seconds first", "*/20 * * * * *", "2026-06-01T10:00:05Z",
			[]string{"2026-06-01T10:00:20Z", "2026-06-01T10:00:40Z", "2026-06-01T10:01:00Z"}},
		{"descriptor", "@daily", "2026-06-01T10:00:00Z",
			[]string{"2026-06-01T23:00:00Z", "2026-06-02T23:00:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := daemon.ParseSchedule(tc.expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tc.from)
			for i, w := range tc.want {
				at = c.Next(at)
				if !at.Equal(utc(w)) {
					t.Fatalf("run %d: Next = %s (%s), want %s", i+1, at.UTC().Format(time.RFC3339), at.Format("15:04 MST"), w)
				}
				if at.Location() != loc {
					t.Errorf("run %d: Next is in %s, want Europe/London", i+1, at.Location())
				}
			}
		})
	}
}

// Each night around both changes, a 01:30 job runs exactly once.
func TestCronOncePerNight(t *testing.T) {
	t.Parallel()
	loc := london(t)
	c, err := daemon.ParseSchedule("30 1 * * *", loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, month := range []time.Month{time.March, time.October} {
		perDay := map[string]int{}
		for at := c.Next(time.Date(2026, month, 20, 0, 0, 0, 0, loc)); at.Before(time.Date(2026, month+1, 5, 0, 0, 0, 0, loc)); at = c.Next(at) {
			perDay[at.Format("2006-01-02")]++
		}
		for day, n := range perDay {
			if n != 1 {
				t.Errorf("%s: %d runs, want 1", day, n)
			}
		}
		if len(perDay) != 16 {
			t.Errorf("%s: runs on %d days, want 16", month, len(perDay))
		}
	}
}

func TestPrev(t *testing.T) {
	t.Parallel()
	loc := london(t)
	tests := []struct{ expr, at, want string }{
		{"30 1 * * *", "2026-11-24T10:00:00Z", "2026-11-24T01:30:00Z"},
		{"30 1 * * *", "2026-11-24T01:30:00Z", "2026-11-24T01:30:00Z"},
		{"30 1 * * *", "2026-11-24T01:29:59Z", "2026-11-23T01:30:00Z"},
		{"30 1 * * *", "2026-03-29T12:00:00Z", "2026-03-29T01:30:00Z"},
		{"0 5 * * 1", "2026-11-26T10:00:00Z", "2026-11-23T05:00:00Z"},
		{"0 0 1 1 *", "2026-11-26T10:00:00Z", "2026-01-01T00:00:00Z"},
		{"*/2 * * * * *", "2026-11-26T10:00:03.5Z", "2026-11-26T10:00:02Z"},
	}
	for _, tc := range tests {
		c, err := daemon.ParseSchedule(tc.expr, loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := daemon.Prev(c, utc(tc.at)); !got.Equal(utc(tc.want)) {
			t.Errorf("Prev(%q, %s) = %s, want %s", tc.expr, tc.at, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}

func TestParseScheduleRejects(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{"", "61 * * * *", "* * * *", "1 2 3 4 5 6 7", "at five"} {
		if _, err := daemon.ParseSchedule(expr, time.UTC); err == nil {
			t.Errorf("ParseSchedule(%q) = nil error", expr)
		}
	}
}
