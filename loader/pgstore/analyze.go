package pgstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lib/pq"
	"go.uber.org/zap"
)

// linkTables are the link state's tables: every batch the linker links
// looks records up in them by index, and the plans of those lookups depend
// on the tables' statistics. Without statistics (a new store, or a server
// without autovacuum) the planner guesses thousands of rows per key, and a
// lookup that finds three spends most of its time sizing a bitmap for
// them: at 100,000 people a batch's candidate query took 1.7 s instead of
// 0.3 s. A store filled by one night also outgrows statistics taken early
// in that night.
var linkTables = []string{"local_link", "nhs_link", "match_record", "match_key_h"}

// Statistics of the link tables are taken again when the rows changed
// since they were last taken (inserted, updated or deleted, as the
// server counts them) exceed a fifth of the rows they then held, and at
// least analyzeMinRows.
const (
	analyzeMinRows  = 20000
	analyzeFraction = 5
	// analyzeEvery is how often the counters are read at most.
	analyzeEvery = 2 * time.Second
)

// linkStats remembers when the link tables' counters were last read.
type linkStats struct {
	mu      sync.Mutex
	checked time.Time
}

// freshLinkStats takes the link tables' statistics again (ANALYZE) when
// they have changed by more than a fifth since they were last taken, by
// this process or any other. It reads the server's counters at most every
// analyzeEvery; each ANALYZE reads a sample of each table (a fraction of
// a second at a million people), so a night that fills the tables from
// empty takes their statistics some tens of times. A failure to refresh
// is logged, not returned: the lookups still work, only slower.
func (s *Store) freshLinkStats(ctx context.Context) {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	if time.Since(s.stats.checked) < analyzeEvery {
		return
	}
	s.stats.checked = time.Now()
	var changed, rows int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(sum(t.n_mod_since_analyze), 0)::bigint,
			COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::bigint
		FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
		WHERE t.schemaname = 'careindex_ops' AND t.relname = ANY($1)`, pq.Array(linkTables)).Scan(&changed, &rows)
	if err != nil {
		s.log.Warn("could not read the link tables' statistics counters", zap.Error(err))
		return
	}
	if changed < analyzeMinRows || changed < rows/analyzeFraction {
		return
	}
	started := time.Now()
	for _, t := range linkTables {
		if _, err := s.db.ExecContext(ctx, `ANALYZE careindex_ops.`+t); err != nil {
			s.log.Warn("could not take the link tables' statistics", zap.String("table", t), zap.Error(err))
			return
		}
	}
	s.log.Debug("link tables' statistics taken", zap.Int64("rows_changed", changed), zap.Int64("rows_before", rows),
		zap.Duration("took", time.Since(started)))
}

// linkTablesAnalyzed reports how many times the link tables were analyzed
// (by ANALYZE or autovacuum), summed over them: for tests.
func (s *Store) linkTablesAnalyzed(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(sum(analyze_count + autoanalyze_count), 0)::bigint
		FROM pg_stat_user_tables WHERE schemaname = 'careindex_ops' AND relname = ANY($1)`, pq.Array(linkTables)).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading the link tables' analyze counts: %w", err)
	}
	return n, nil
}
