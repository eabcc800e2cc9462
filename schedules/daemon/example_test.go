package daemon_test

import (
	"fmt"
	"time"

	"github.com/careindex/careindex/schedules/daemon"
)

// A 01:30 job around the UK's 2026 daylight saving changes: one run each
// night.
func ExampleParseSchedule() {
	london, _ := time.LoadLocation("Europe/London")
	nightly, _ := daemon.ParseSchedule("30 1 * * *", london)
	for _, from := range []time.Time{
		time.Date(2026, 3, 28, 12, 0, 0, 0, london),
		time.Date(2026, 10, 24, 12, 0, 0, 0, london),
	} {
		at := from
		for range 3 {
			at = nightly.Next(at)
			fmt.Println(at.Format("Mon 2 Jan 15:04 MST"))
		}
	}
	// Output:
	// Sun 29 Mar 02:30 BST
	// Mon 30 Mar 01:30 BST
	// Tue 31 Mar 01:30 BST
	// Sun 25 Oct 01:30 BST
	// Mon 26 Oct 01:30 GMT
	// Tue 27 Oct 01:30 GMT
}
