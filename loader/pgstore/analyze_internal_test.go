package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/loader/store"
)

// TestFreshLinkStats: the link tables' statistics are taken once the rows
// filed since they were last taken pass the threshold, and not before,
// and the candidate lookup is planned with them (an index scan sized for
// the few rows a key holds).
func TestFreshLinkStats(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t, "careindex_stats"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	analyzed := func() int64 {
		t.Helper()
		n, err := s.linkTablesAnalyzed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// check reads the counters now, however recently they were read.
	check := func() {
		s.stats.mu.Lock()
		s.stats.checked = time.Time{}
		s.stats.mu.Unlock()
		s.freshLinkStats(ctx)
	}
	file := func(from, n int) {
		t.Helper()
		recs := make([]store.MatchRecord, 0, n)
		for i := from; i < from+n; i++ {
			recs = append(recs, store.MatchRecord{OrgCode: "A81001", LocalID: fmt.Sprint(i), PatientID: int64(i + 1),
				Keys: []string{fmt.Sprintf("dob:%d", i%5000), fmt.Sprintf("name:%d", i%7000)}})
		}
		if err := s.Links().SaveMatch(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	// waitAnalyzed checks until the server's counters (flushed by each
	// backend about once a second) show the writes and an ANALYZE ran.
	waitAnalyzed := func(before int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for analyzed() <= before {
			if time.Now().After(deadline) {
				t.Fatalf("the link tables were not analyzed after %d rows were filed", analyzeMinRows)
			}
			time.Sleep(300 * time.Millisecond)
			check()
		}
	}

	base := analyzed()
	file(0, 1000) // 3,000 rows with their keys: below analyzeMinRows
	time.Sleep(1500 * time.Millisecond)
	check()
	if got := analyzed(); got != base {
		t.Fatalf("analyzed %d times after 3,000 rows, want none", got-base)
	}
	file(1000, 9000) // 30,000 rows in all
	waitAnalyzed(base)
	after := analyzed()
	// A fifth more is needed now: 3,000 further rows are not enough.
	file(10000, 1000)
	time.Sleep(1500 * time.Millisecond)
	check()
	if got := analyzed(); got != after {
		t.Fatalf("analyzed again after 3,000 of 30,000 rows changed, want not before a fifth")
	}

	var plan string
	if err := s.db.QueryRowContext(ctx, `EXPLAIN SELECT org_code, local_id FROM careindex_ops.match_key_h WHERE key_hash = 42`).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var rows int
	if _, err := fmt.Sscanf(plan[max(strings.Index(plan, "rows="), 0):], "rows=%d", &rows); err != nil {
		t.Fatalf("no row estimate in %q: %v", plan, err)
	}
	if rows > 50 {
		t.Errorf("the planner expects %d rows under one key (plan %q), want the few the statistics say", rows, plan)
	}
}
