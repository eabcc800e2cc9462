package pgstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lib/pq"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

// The match state: careindex_ops.match_record (one row per organisation's
// record: matching fields and patient), careindex_ops.match_key_h (the
// blocking keys each record is filed under, as store.KeyHash) and careindex_ops.match_meta
// (the model and key signature). Nothing here is logged: fields and keys
// are patient data.

// matchFields are match_record's matching columns, in Record order.
const matchFields = `nhs_number, family_name, given_name, date_of_birth, sex, postcode, address, gp_practice, email, phone`

// SaveMatch reads what it holds of the records, then, in one transaction,
// upserts the new and changed ones and moves their key rows (see
// store.PlanMatchSave): a record saved unchanged costs one read. The rows of
// the batch go in through unnest, a few statements per batch.
func (l links) SaveMatch(ctx context.Context, recs []store.MatchRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := l.s.inTx(ctx, func(tx *sql.Tx) error {
		orgs, locals := make([]string, len(recs)), make([]string, len(recs))
		for i, r := range recs {
			orgs[i], locals[i] = r.OrgCode, r.LocalID
		}
		// Lock the batch's rows: a concurrent save of the same record waits.
		rows, err := tx.QueryContext(ctx, `SELECT r.org_code, r.local_id, r.patient_id, `+prefixed("r.", matchFields)+`, r.keys
			FROM careindex_ops.match_record r JOIN unnest($1::text[], $2::text[]) AS u(org_code, local_id)
				ON r.org_code = u.org_code AND r.local_id = u.local_id
			FOR UPDATE OF r`, pq.Array(orgs), pq.Array(locals))
		if err != nil {
			return err
		}
		stored := map[store.RecordRef]store.MatchRecord{}
		for rows.Next() {
			var r store.MatchRecord
			var keys string
			m := &r.Record
			if err := rows.Scan(&r.OrgCode, &r.LocalID, &r.PatientID, &m.NHSNumber, &m.FamilyName, &m.GivenName, &m.DateOfBirth,
				&m.Sex, &m.Postcode, &m.Address, &m.GPPractice, &m.Email, &m.Phone, &keys); err != nil {
				rows.Close()
				return err
			}
			if err := json.Unmarshal([]byte(keys), &r.Keys); err != nil {
				rows.Close()
				return fmt.Errorf("bad keys of a match record: %w", err)
			}
			stored[store.RecordRef{OrgCode: r.OrgCode, LocalID: r.LocalID}] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		plan := store.PlanMatchSave(recs, stored)
		if len(plan.Upserts) == 0 {
			return nil
		}
		n := len(plan.Upserts)
		cols := make([][]string, 13)
		for i := range cols {
			cols[i] = make([]string, n)
		}
		pids := make([]int64, n)
		for i, r := range plan.Upserts {
			m := r.Record
			keys, err := json.Marshal(r.Keys)
			if err != nil {
				return err
			}
			for c, v := range []string{r.OrgCode, r.LocalID, m.NHSNumber, m.FamilyName, m.GivenName, m.DateOfBirth, m.Sex, m.Postcode,
				m.Address, m.GPPractice, m.Email, m.Phone, string(keys)} {
				cols[c][i] = v
			}
			pids[i] = r.PatientID
		}
		args := []any{pq.Array(cols[0]), pq.Array(cols[1]), pq.Array(pids)}
		for _, c := range cols[2:] {
			args = append(args, pq.Array(c))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.match_record (org_code, local_id, patient_id, `+matchFields+`, keys)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
			ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = EXCLUDED.patient_id, nhs_number = EXCLUDED.nhs_number,
				family_name = EXCLUDED.family_name, given_name = EXCLUDED.given_name, date_of_birth = EXCLUDED.date_of_birth,
				sex = EXCLUDED.sex, postcode = EXCLUDED.postcode, address = EXCLUDED.address, gp_practice = EXCLUDED.gp_practice,
				email = EXCLUDED.email, phone = EXCLUDED.phone, keys = EXCLUDED.keys, updated_at = now()`, args...); err != nil {
			return err
		}
		if len(plan.Remove) > 0 {
			k, o, lo := keyColumns(plan.Remove)
			if _, err := tx.ExecContext(ctx, `DELETE FROM careindex_ops.match_key_h m
				USING unnest($1::bigint[], $2::text[], $3::text[]) AS u(key_hash, org_code, local_id)
				WHERE m.key_hash = u.key_hash AND m.org_code = u.org_code AND m.local_id = u.local_id`, pq.Array(k), pq.Array(o), pq.Array(lo)); err != nil {
				return err
			}
		}
		if len(plan.Add) > 0 {
			k, o, lo := keyColumns(plan.Add)
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.match_key_h (key_hash, org_code, local_id)
				SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
				pq.Array(k), pq.Array(o), pq.Array(lo)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("saving match records: %w", err)
	}
	return nil
}

// Filed returns the match records org's local ids are filed with (see
// link.FiledReader), by local id, without their keys.
func (l links) Filed(ctx context.Context, org string, localIDs []string) (map[string]store.MatchRecord, error) {
	out := make(map[string]store.MatchRecord, len(localIDs))
	if len(localIDs) == 0 {
		return out, nil
	}
	rows, err := l.s.db.QueryContext(ctx, `SELECT r.local_id, r.patient_id, `+prefixed("r.", matchFields)+`
		FROM careindex_ops.match_record r WHERE r.org_code = $1 AND r.local_id = ANY($2::text[])`, org, pq.Array(localIDs))
	if err != nil {
		return nil, fmt.Errorf("reading filed match records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := store.MatchRecord{OrgCode: org}
		m := &r.Record
		if err := rows.Scan(&r.LocalID, &r.PatientID, &m.NHSNumber, &m.FamilyName, &m.GivenName, &m.DateOfBirth,
			&m.Sex, &m.Postcode, &m.Address, &m.GPPractice, &m.Email, &m.Phone); err != nil {
			return nil, fmt.Errorf("reading filed match records: %w", err)
		}
		m.ID = store.MatchID(org, r.LocalID)
		out[r.LocalID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading filed match records: %w", err)
	}
	return out, nil
}

func keyColumns(rows []store.KeyRow) (hashes []int64, orgs, locals []string) {
	hashes, orgs, locals = make([]int64, len(rows)), make([]string, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		hashes[i], orgs[i], locals[i] = r.Hash, r.OrgCode, r.LocalID
	}
	return hashes, orgs, locals
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// Candidates answers in one statement: the records under each key, and
// the keys with more than limit records (counted up to limit+1). It asks
// by hash and answers each key given with what its hash holds (columns
// store.CandidateColumns).
func (l links) Candidates(ctx context.Context, keys []string, limit int) (match.CandidateSet, error) {
	set := match.CandidateSet{ByKey: map[string][]match.Candidate{}}
	if len(keys) == 0 {
		return set, nil
	}
	hashes, byHash := store.KeyHashes(keys)
	// Each key's records are read up to limit+1 only, in one index scan
	// (a giant block, a care home's postcode, costs no more than a small
	// one and brings back one row), and each record by its primary key:
	// plans that stay the same whatever the tables' statistics say.
	rows, err := l.s.db.QueryContext(ctx, `SELECT q.key, k.n, r.org_code, COALESCE(r.local_id, ''), COALESCE(r.patient_id, 0),
			COALESCE(r.nhs_number, ''), COALESCE(r.family_name, ''), COALESCE(r.given_name, ''), COALESCE(r.date_of_birth, ''),
			COALESCE(r.sex, ''), COALESCE(r.postcode, ''), COALESCE(r.address, ''), COALESCE(r.gp_practice, ''),
			COALESCE(r.email, ''), COALESCE(r.phone, '')
		FROM unnest($1::bigint[]) AS q(key)
		CROSS JOIN LATERAL (SELECT x.org_code, x.local_id, count(*) OVER () AS n, row_number() OVER () AS rn
			FROM (SELECT m.org_code, m.local_id FROM careindex_ops.match_key_h m WHERE m.key_hash = q.key LIMIT $2 + 1) x) k
		LEFT JOIN LATERAL (SELECT * FROM careindex_ops.match_record r
			WHERE k.n <= $2 AND r.org_code = k.org_code AND r.local_id = k.local_id LIMIT 1) r ON true
		WHERE k.n <= $2 OR k.rn = 1`, pq.Array(hashes), limit)
	if err != nil {
		return set, fmt.Errorf("finding match candidates: %w", err)
	}
	return store.ReadCandidates(rows, limit, byHash)
}

func (l links) MatchMeta(ctx context.Context) (store.MatchMeta, bool, error) {
	var m store.MatchMeta
	var model string
	err := l.s.db.QueryRowContext(ctx, `SELECT signature, model, updated_at FROM careindex_ops.match_meta`).
		Scan(&m.Signature, &model, &m.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("reading the match model: %w", err)
	}
	m.Model = []byte(model)
	return m, true, nil
}

func (l links) SetMatchMeta(ctx context.Context, m store.MatchMeta) error {
	if _, err := l.s.db.ExecContext(ctx, `INSERT INTO careindex_ops.match_meta (one, signature, model, updated_at) VALUES (true, $1, $2, now())
		ON CONFLICT (one) DO UPDATE SET signature = EXCLUDED.signature, model = EXCLUDED.model, updated_at = now()`,
		m.Signature, string(m.Model)); err != nil {
		return fmt.Errorf("recording the match model: %w", err)
	}
	return nil
}

// rekeyPage is how many records Rekey files, and EachMatchRecord reads,
// at a time.
const rekeyPage = 5000

// matchPageFirst and matchPageNext read the match state a page at a time
// (store.EachMatchPage).
const (
	matchPageFirst = `SELECT org_code, local_id, COALESCE(patient_id, 0), ` + matchFields + ` FROM careindex_ops.match_record
		ORDER BY org_code, local_id LIMIT $1`
	matchPageNext = `SELECT org_code, local_id, COALESCE(patient_id, 0), ` + matchFields + ` FROM careindex_ops.match_record
		WHERE (org_code, local_id) > ($1, $2) ORDER BY org_code, local_id LIMIT $3`
)

// Rekey files every record again, page by page, in one transaction that
// holds the meta row: a concurrent Rekey waits, then finds the signature
// current and does nothing.
func (l links) Rekey(ctx context.Context, signature string, keysOf func(match.Record) []string) (int, error) {
	total := 0
	err := l.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.match_meta (one, signature) VALUES (true, '') ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		var current string
		if err := tx.QueryRowContext(ctx, `SELECT signature FROM careindex_ops.match_meta FOR UPDATE`).Scan(&current); err != nil {
			return err
		}
		if current == signature {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM careindex_ops.match_key_h`); err != nil {
			return err
		}
		err := store.EachMatchPage(ctx, tx, matchPageFirst, matchPageNext, rekeyPage, func(page []store.MatchRecord) error {
			keyRows, recKeys, err := store.RekeyPage(page, keysOf)
			if err != nil {
				return err
			}
			recOrgs, recLocals := make([]string, len(page)), make([]string, len(page))
			for i, r := range page {
				recOrgs[i], recLocals[i] = r.OrgCode, r.LocalID
			}
			if len(keyRows) > 0 {
				hashes, orgs, locals := keyColumns(keyRows)
				if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.match_key_h (key_hash, org_code, local_id)
					SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
					pq.Array(hashes), pq.Array(orgs), pq.Array(locals)); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.match_record r SET keys = u.keys
				FROM unnest($1::text[], $2::text[], $3::text[]) AS u(org_code, local_id, keys)
				WHERE r.org_code = u.org_code AND r.local_id = u.local_id`,
				pq.Array(recOrgs), pq.Array(recLocals), pq.Array(recKeys)); err != nil {
				return err
			}
			total += len(page)
			return nil
		})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE careindex_ops.match_meta SET signature = $1, updated_at = now()`, signature)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("filing match records under new keys: %w", err)
	}
	return total, nil
}

// EachMatchRecord reads the match state in one read-only repeatable-read
// transaction (one snapshot), rekeyPage records at a time.
func (l links) EachMatchRecord(ctx context.Context, fn func(store.MatchRecord) error) error {
	tx, err := l.s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("reading the match state: %w", err)
	}
	defer tx.Rollback()
	return store.EachMatchPage(ctx, tx, matchPageFirst, matchPageNext, rekeyPage, store.EachRecord(fn))
}
