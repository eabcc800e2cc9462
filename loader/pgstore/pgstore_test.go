package pgstore_test

import (
	"context"
	"database/sql"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/loader/storetest"
)

func open(t testing.TB, dsn string) *pgstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, dsn, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func newBackend(t *testing.T) *storetest.Backend {
	dsn := pgtest.NewDatabase(t, "careindex_store")
	s := open(t, dsn)
	viewer, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viewer.Close() })
	return &storetest.Backend{
		Store:  s,
		Reopen: func(t *testing.T) store.Store { return open(t, dsn) },
		// Read as the reader role, which may read the views and nothing else.
		Published: func(t testing.TB) storetest.Snapshot {
			t.Helper()
			ctx := context.Background()
			conn, err := viewer.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, `SET ROLE careindex_reader`); err != nil {
				t.Fatal(err)
			}
			defer conn.ExecContext(ctx, `RESET ROLE`)
			snap, err := storetest.ReadSnapshot(ctx, conn, "careindex.")
			if err != nil {
				t.Fatal(err)
			}
			return snap
		},
		ErrBusy: pgstore.ErrBusy, ErrCheck: pgstore.ErrCheck, ErrNoPublication: pgstore.ErrNoPublication,
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newBackend)
}

func BenchmarkPublish(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, pgtest.NewDatabase(b, "careindex_bench")) })
}
