// Package pgstore is the PostgreSQL backend of the regional store.
//
// The published index lives in list-partitioned tables in the schema
// careindex_data, one partition per version, and readers query the views in
// the schema careindex, which show the rows of the version named in the
// one-row table careindex_data.live. A new version is copied into tables of
// its own (COPY … FROM STDIN through lib/pq), indexed, checked, and then, in
// one transaction, attached as partitions while the live pointer moves to
// it. PostgreSQL's MVCC gives every reader either the old version or the new
// one whole. The previous version stays attached for rollback.
//
// The role careindex_reader gets USAGE on careindex and SELECT on its views
// and nothing else; viewers' login roles are granted careindex_reader.
//
// Only one run writes to a store at a time: StartRun takes a session
// advisory lock that FinishRun releases (and that PostgreSQL releases when a
// killed process's connection drops).
package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
)

// runLockKey is the advisory lock key that serialises runs on one database.
const runLockKey = 0x63617265696e6478 // "careindx"

// ErrBusy means another run holds the store.
var ErrBusy = errors.New("another careindex run is using this store")

// Store is a PostgreSQL regional store.
type Store struct {
	db      *sql.DB
	log     *zap.Logger
	lock    *sql.Conn // holds the run advisory lock while a run is open
	lockRun int64
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL; say
// sslmode=disable for a local server) and checks the connection.
func Open(ctx context.Context, dsn string, log *zap.Logger) (*Store, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store: %w", err)
	}
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(6)
	db.SetConnMaxIdleTime(time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to postgres store: %w", err)
	}
	return &Store{db: db, log: log}, nil
}

// DB returns the underlying pool, for tests and tools.
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the connections and any run lock still held.
func (s *Store) Close() error {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return s.db.Close()
}

// Migrate creates the schemas, tables, views and the reader role.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.ensureRole(ctx); err != nil {
		return err
	}
	// Serialise concurrent migrations of one database.
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, runLockKey+1); err != nil {
			return fmt.Errorf("locking for migration: %w", err)
		}
		if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
		return nil
	})
}

// ensureRole creates the cluster-wide reader role once. Roles are shared by
// every database of a cluster, so two stores migrating at once may race:
// a duplicate is fine.
func (s *Store) ensureRole(ctx context.Context) error {
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'careindex_reader')`).Scan(&exists); err != nil {
		return fmt.Errorf("checking reader role: %w", err)
	}
	if exists {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `CREATE ROLE careindex_reader NOLOGIN`)
	var pqErr *pq.Error
	if err != nil && !(errors.As(err, &pqErr) && (pqErr.Code == "42710" || pqErr.Code == "23505" || pqErr.Code == "XX000")) {
		return fmt.Errorf("creating role careindex_reader: %w", err)
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// StartRun takes the store's run lock and records a new run.
func (s *Store) StartRun(ctx context.Context, info store.RunInfo) (int64, error) {
	if s.lock != nil {
		return 0, fmt.Errorf("%w: run %d is still open in this process", ErrBusy, s.lockRun)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("starting run: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, runLockKey).Scan(&got); err != nil {
		conn.Close()
		return 0, fmt.Errorf("taking run lock: %w", err)
	}
	if !got {
		conn.Close()
		return 0, ErrBusy
	}
	kind := info.Kind
	if kind == "" {
		kind = "run"
	}
	var id int64
	err = s.db.QueryRowContext(ctx,
		`INSERT INTO careindex_ops.run (kind, started_at, sources) VALUES ($1, $2, $3) RETURNING run_id`,
		kind, info.Started, strings.Join(info.Sources, ",")).Scan(&id)
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("recording run: %w", err)
	}
	// A run killed before it finished is still "running": it was abandoned.
	if _, err := s.db.ExecContext(ctx, `UPDATE careindex_ops.run SET status = 'abandoned', finished_at = now(),
		message = 'the process ended before the run finished' WHERE status = 'running' AND run_id <> $1`, id); err != nil {
		conn.Close()
		return 0, fmt.Errorf("closing abandoned runs: %w", err)
	}
	s.lock, s.lockRun = conn, id
	return id, nil
}

// FinishRun records the run's end and the sources' outcomes (if the run did
// not already record them when it published), then releases the run lock.
func (s *Store) FinishRun(ctx context.Context, runID int64, status store.RunStatus, message string, sources []store.SourceOutcome) error {
	defer s.releaseLock(runID)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.run SET status = $2, message = $3, finished_at = now() WHERE run_id = $1`,
			runID, string(status), message); err != nil {
			return fmt.Errorf("finishing run %d: %w", runID, err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM careindex_ops.run_source WHERE run_id = $1`, runID).Scan(&have); err != nil {
			return fmt.Errorf("finishing run %d: %w", runID, err)
		}
		if have == 0 {
			if err := insertOutcomes(ctx, tx, runID, sources); err != nil {
				return err
			}
		}
		return touchSources(ctx, tx, sources)
	})
}

func (s *Store) releaseLock(runID int64) {
	if s.lock == nil || s.lockRun != runID {
		return
	}
	_, _ = s.lock.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, runLockKey)
	s.lock.Close()
	s.lock, s.lockRun = nil, 0
}

func insertOutcomes(ctx context.Context, tx *sql.Tx, runID int64, sources []store.SourceOutcome) error {
	for _, o := range sources {
		var did any
		if o.DeliveryID != 0 {
			did = o.DeliveryID
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.run_source
			(run_id, source_id, org_code, status, delivery_id, delivery, rows_in, loaded, quarantined, withheld, merged, pending, stale, error)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
			runID, o.SourceID, o.OrgCode, o.Status, did, o.Delivery, o.RowsIn, o.Loaded, o.Quarantined, o.Withheld, o.Merged, o.Pending, o.Stale, o.Error); err != nil {
			return fmt.Errorf("recording source %s of run %d: %w", o.SourceID, runID, err)
		}
	}
	return nil
}

func touchSources(ctx context.Context, tx *sql.Tx, sources []store.SourceOutcome) error {
	for _, o := range sources {
		if o.Status == "skipped" {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.source_state (source_id, org_code, last_attempt_at, last_error)
			VALUES ($1, $2, now(), $3)
			ON CONFLICT (source_id) DO UPDATE SET org_code = EXCLUDED.org_code, last_attempt_at = now(), last_error = EXCLUDED.last_error`,
			o.SourceID, o.OrgCode, o.Error); err != nil {
			return fmt.Errorf("recording state of source %s: %w", o.SourceID, err)
		}
	}
	return nil
}

// CurrentDelivery returns the delivery of sourceID in the live version.
func (s *Store) CurrentDelivery(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	var d store.Delivery
	err := s.db.QueryRowContext(ctx, `SELECT d.delivery_id, d.source_id, d.org_code, d.kind, d.name, d.hash, d.received_at,
			d.rows_in, d.quarantined, d.merged
		FROM careindex_data.live l
		JOIN careindex_ops.version_delivery vd ON vd.version = l.version AND vd.source_id = $1
		JOIN careindex_ops.delivery d ON d.delivery_id = vd.delivery_id`, sourceID).
		Scan(&d.ID, &d.SourceID, &d.OrgCode, &d.Kind, &d.Name, &d.Hash, &d.ReceivedAt, &d.RowsIn, &d.Quarantined, &d.Merged)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("reading current delivery of %s: %w", sourceID, err)
	}
	return d, true, nil
}

// PendingDelivery returns the newest staged, unpublished delivery.
func (s *Store) PendingDelivery(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	var d store.Delivery
	err := s.db.QueryRowContext(ctx, `SELECT d.delivery_id, d.source_id, d.org_code, d.kind, d.name, d.hash, d.received_at,
			d.rows_in, d.quarantined, d.merged
		FROM careindex_ops.delivery d WHERE d.source_id = $1 AND d.status = 'staged'
		ORDER BY d.delivery_id DESC LIMIT 1`, sourceID).
		Scan(&d.ID, &d.SourceID, &d.OrgCode, &d.Kind, &d.Name, &d.Hash, &d.ReceivedAt, &d.RowsIn, &d.Quarantined, &d.Merged)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("reading pending delivery of %s: %w", sourceID, err)
	}
	return d, true, nil
}

// Live returns the live publication.
func (s *Store) Live(ctx context.Context) (store.Publication, bool, error) {
	var p store.Publication
	var stale string
	err := s.db.QueryRowContext(ctx, `SELECT v.version, v.run_id, v.published_at, v.register_hash, v.stale_sources
		FROM careindex_data.live l JOIN careindex_data.version v ON v.version = l.version`).
		Scan(&p.Version, &p.RunID, &p.PublishedAt, &p.RegisterHash, &stale)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("reading live version: %w", err)
	}
	if stale != "" {
		p.Stale = strings.Split(stale, ",")
	}
	return p, true, nil
}
