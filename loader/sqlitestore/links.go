package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/careindex/careindex/loader/store"
)

// Links returns the persistent link state. Each call is a short
// transaction of its own, as in pgstore: links persist whatever becomes of
// the delivery being staged.
func (s *Store) Links() store.Links { return links{s} }

type links struct{ s *Store }

// jsonArray encodes a list for json_each, which lets one statement take a
// list of any length.
func jsonArray(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func (l links) ByNHS(ctx context.Context, nhs []string) (map[string]store.Link, error) {
	out := make(map[string]store.Link, len(nhs))
	if len(nhs) == 0 {
		return out, nil
	}
	arr, err := jsonArray(nhs)
	if err != nil {
		return nil, fmt.Errorf("looking up NHS number links: %w", err)
	}
	err = store.EachRow(ctx, l.s.db, store.ScanLinks(out), `SELECT nhs_number, patient_id, COALESCE(date_of_birth, '')
		FROM ops.nhs_link WHERE nhs_number IN (SELECT value FROM json_each(?))`, arr)
	if err != nil {
		return nil, fmt.Errorf("looking up NHS number links: %w", err)
	}
	return out, nil
}

func (l links) ByLocal(ctx context.Context, org string, ids []string) (map[string]int64, error) {
	if len(ids) == 0 {
		return map[string]int64{}, nil
	}
	arr, err := jsonArray(ids)
	if err != nil {
		return nil, fmt.Errorf("looking up local links: %w", err)
	}
	out, err := store.QueryMap[string, int64](ctx, l.s.db, `SELECT local_id, patient_id FROM ops.local_link
		WHERE org_code = ? AND local_id IN (SELECT value FROM json_each(?))`, org, arr)
	if err != nil {
		return nil, fmt.Errorf("looking up local links: %w", err)
	}
	return out, nil
}

// NewPatientIDs takes n ids from the sequence in one statement: they are
// consecutive and above every id handed out before.
func (l links) NewPatientIDs(ctx context.Context, n int) ([]int64, error) {
	out := make([]int64, 0, n)
	if n <= 0 {
		return out, nil
	}
	var last int64
	if err := l.s.db.QueryRowContext(ctx, `UPDATE ops.patient_id_seq SET last = last + ? WHERE one = 1 RETURNING last`, n).
		Scan(&last); err != nil {
		return nil, fmt.Errorf("allocating patient ids: %w", err)
	}
	for id := last - int64(n) + 1; id <= last; id++ {
		out = append(out, id)
	}
	return out, nil
}

// batch runs one prepared statement over n rows in one transaction.
func (l links) batch(ctx context.Context, what, q string, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	err := l.s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer stmt.Close()
		bg := context.WithoutCancel(ctx)
		for i := 0; i < n; i++ {
			if _, err := stmt.ExecContext(bg, row(i)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// SaveNHS records new NHS number links. An NHS number already linked keeps
// its patient; its date of birth is filled in if it had none.
func (l links) SaveNHS(ctx context.Context, m map[string]store.Link) error {
	type row struct {
		nhs string
		k   store.Link
	}
	rows := make([]row, 0, len(m))
	for n, k := range m {
		rows = append(rows, row{n, k})
	}
	now := ts(time.Now())
	return l.batch(ctx, "saving NHS number links", `INSERT INTO ops.nhs_link (nhs_number, patient_id, date_of_birth, created_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (nhs_number) DO UPDATE SET date_of_birth = COALESCE(nhs_link.date_of_birth, excluded.date_of_birth)`,
		len(rows), func(i int) []any {
			return []any{rows[i].nhs, rows[i].k.PatientID, nullable(rows[i].k.DateOfBirth), now}
		})
}

// SaveLocal records (or moves) the links of an organisation's local ids.
func (l links) SaveLocal(ctx context.Context, org string, m map[string]int64) error {
	locals := make([]string, 0, len(m))
	ids := make([]int64, 0, len(m))
	for k, v := range m {
		locals = append(locals, k)
		ids = append(ids, v)
	}
	return l.batch(ctx, "saving local links", `INSERT INTO ops.local_link (org_code, local_id, patient_id) VALUES (?, ?, ?)
		ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = excluded.patient_id`,
		len(locals), func(i int) []any { return []any{org, locals[i], ids[i]} })
}

func (l links) NHSOfPatients(ctx context.Context, ids []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	arr, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("looking up NHS numbers of patients: %w", err)
	}
	err = store.EachRow(ctx, l.s.db, store.ScanGrouped(out), `SELECT patient_id, nhs_number FROM ops.nhs_link
		WHERE patient_id IN (SELECT value FROM json_each(?)) ORDER BY patient_id, nhs_number`, string(arr))
	if err != nil {
		return nil, fmt.Errorf("looking up NHS numbers of patients: %w", err)
	}
	return out, nil
}
