package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/lib/pq"
)

// copier streams rows into one table with COPY … FROM STDIN inside a
// transaction of its own.
type copier struct {
	table string
	tx    *sql.Tx
	stmt  *sql.Stmt
	n     int
}

func beginCopy(ctx context.Context, db *sql.DB, table string, cols []string) (*copier, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("copy into %s: %w", table, err)
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pq.QuoteIdentifier(c)
	}
	stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("COPY %s (%s) FROM STDIN", table, strings.Join(quoted, ", ")))
	if err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("copy into %s: %w", table, err)
	}
	return &copier{table: table, tx: tx, stmt: stmt}, nil
}

func (c *copier) add(ctx context.Context, vals ...any) error {
	if _, err := c.stmt.ExecContext(ctx, vals...); err != nil {
		return fmt.Errorf("copy into %s: %w", c.table, err)
	}
	c.n++
	return nil
}

// commit flushes the COPY and commits its transaction.
func (c *copier) commit(ctx context.Context) error {
	if _, err := c.stmt.ExecContext(ctx); err != nil {
		c.abort()
		return fmt.Errorf("copy into %s: %w", c.table, err)
	}
	if err := c.stmt.Close(); err != nil {
		c.tx.Rollback()
		return fmt.Errorf("copy into %s: %w", c.table, err)
	}
	if err := c.tx.Commit(); err != nil {
		return fmt.Errorf("copy into %s: committing: %w", c.table, err)
	}
	return nil
}

func (c *copier) abort() {
	if c == nil {
		return
	}
	c.stmt.Close()
	c.tx.Rollback()
}

// nullable turns "" into NULL for date columns.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
