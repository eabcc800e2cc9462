package pgstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lib/pq"

	"github.com/careindex/careindex/loader/store"
)

// Links returns the persistent link state.
func (s *Store) Links() store.Links { return links{s} }

type links struct{ s *Store }

// ByNHS is the first lookup of every batch the linker links, so it also
// keeps the link tables' statistics current (freshLinkStats).
func (l links) ByNHS(ctx context.Context, nhs []string) (map[string]store.Link, error) {
	l.s.freshLinkStats(ctx)
	out := make(map[string]store.Link, len(nhs))
	if len(nhs) == 0 {
		return out, nil
	}
	err := store.EachRow(ctx, l.s.db, store.ScanLinks(out), `SELECT nhs_number, patient_id, COALESCE(to_char(date_of_birth, 'YYYY-MM-DD'), '')
		FROM careindex_ops.nhs_link WHERE nhs_number = ANY($1)`, pq.Array(nhs))
	if err != nil {
		return nil, fmt.Errorf("looking up NHS number links: %w", err)
	}
	return out, nil
}

func (l links) ByLocal(ctx context.Context, org string, ids []string) (map[string]int64, error) {
	if len(ids) == 0 {
		return map[string]int64{}, nil
	}
	out, err := store.QueryMap[string, int64](ctx, l.s.db, `SELECT local_id, patient_id FROM careindex_ops.local_link
		WHERE org_code = $1 AND local_id = ANY($2)`, org, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("looking up local links: %w", err)
	}
	return out, nil
}

func (l links) NewPatientIDs(ctx context.Context, n int) ([]int64, error) {
	if n == 0 {
		return []int64{}, nil
	}
	out, err := store.QueryRows(ctx, l.s.db, store.ScanInt64, `SELECT nextval('careindex_ops.patient_id_seq') FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("allocating patient ids: %w", err)
	}
	return out, nil
}

func (l links) SaveNHS(ctx context.Context, m map[string]store.Link) error {
	if len(m) == 0 {
		return nil
	}
	nhs := make([]string, 0, len(m))
	ids := make([]int64, 0, len(m))
	dobs := make([]sql.NullString, 0, len(m))
	for n, k := range m {
		nhs = append(nhs, n)
		ids = append(ids, k.PatientID)
		dobs = append(dobs, sql.NullString{String: k.DateOfBirth, Valid: k.DateOfBirth != ""})
	}
	_, err := l.s.db.ExecContext(ctx, `INSERT INTO careindex_ops.nhs_link (nhs_number, patient_id, date_of_birth)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::date[])
		ON CONFLICT (nhs_number) DO UPDATE SET date_of_birth = COALESCE(careindex_ops.nhs_link.date_of_birth, EXCLUDED.date_of_birth)`,
		pq.Array(nhs), pq.Array(ids), pq.Array(dobs))
	if err != nil {
		return fmt.Errorf("saving NHS number links: %w", err)
	}
	return nil
}

func (l links) SaveLocal(ctx context.Context, org string, m map[string]int64) error {
	if len(m) == 0 {
		return nil
	}
	locals := make([]string, 0, len(m))
	ids := make([]int64, 0, len(m))
	for k, v := range m {
		locals = append(locals, k)
		ids = append(ids, v)
	}
	_, err := l.s.db.ExecContext(ctx, `INSERT INTO careindex_ops.local_link (org_code, local_id, patient_id)
		SELECT $1, * FROM unnest($2::text[], $3::bigint[])
		ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = EXCLUDED.patient_id`,
		org, pq.Array(locals), pq.Array(ids))
	if err != nil {
		return fmt.Errorf("saving local links: %w", err)
	}
	return nil
}

func (l links) NHSOfPatients(ctx context.Context, ids []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	err := store.EachRow(ctx, l.s.db, store.ScanGrouped(out), `SELECT patient_id, nhs_number FROM careindex_ops.nhs_link
		WHERE patient_id = ANY($1) ORDER BY patient_id, nhs_number`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("looking up NHS numbers of patients: %w", err)
	}
	return out, nil
}
