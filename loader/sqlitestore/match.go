package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

// The match state, as in pgstore: ops.match_record (each organisation's
// record: matching fields and patient), ops.match_key_h (the blocking keys
// each record is filed under) and ops.match_meta (the model and key
// signature). Nothing here is logged: fields and keys are patient data.

// matchFields are match_record's matching columns, in Record order.
const matchFields = `nhs_number, family_name, given_name, date_of_birth, sex, postcode, address, gp_practice, email, phone`

// SaveMatch reads what it holds of the records, then, in one transaction,
// upserts the new and changed ones and moves their key rows (see
// store.PlanMatchSave): a record saved unchanged costs one read. Rows go
// in as JSON arrays through json_each, a few statements per batch instead
// of one per row.
func (l links) SaveMatch(ctx context.Context, recs []store.MatchRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := l.s.inTx(ctx, func(tx *sql.Tx) error {
		refs := make([][2]string, len(recs))
		for i, r := range recs {
			refs[i] = [2]string{r.OrgCode, r.LocalID}
		}
		arr, err := jsonArray(refs)
		if err != nil {
			return err
		}
		// A write first, so that the transaction holds the write lock
		// before it reads what it is about to change.
		if _, err := tx.ExecContext(ctx, `DELETE FROM ops.match_key_h WHERE 0`); err != nil {
			return err
		}
		stored := map[store.RecordRef]store.MatchRecord{}
		rows, err := tx.QueryContext(ctx, `SELECT org_code, local_id, patient_id, `+matchFields+`, keys FROM ops.match_record
			WHERE (org_code, local_id) IN (SELECT value->>0, value->>1 FROM json_each(?))`, arr)
		if err != nil {
			return err
		}
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
		up := make([][]any, len(plan.Upserts))
		for i, r := range plan.Upserts {
			m := r.Record
			keys, err := jsonArray(r.Keys)
			if err != nil {
				return err
			}
			up[i] = []any{r.OrgCode, r.LocalID, r.PatientID, m.NHSNumber, m.FamilyName, m.GivenName, m.DateOfBirth, m.Sex, m.Postcode,
				m.Address, m.GPPractice, m.Email, m.Phone, keys}
		}
		if arr, err = jsonArray(up); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.match_record (org_code, local_id, patient_id, `+matchFields+`, keys, updated_at)
			SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9,
				value->>10, value->>11, value->>12, value->>13, ?2 FROM json_each(?1) WHERE true
			ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = excluded.patient_id, nhs_number = excluded.nhs_number,
				family_name = excluded.family_name, given_name = excluded.given_name, date_of_birth = excluded.date_of_birth,
				sex = excluded.sex, postcode = excluded.postcode, address = excluded.address, gp_practice = excluded.gp_practice,
				email = excluded.email, phone = excluded.phone, keys = excluded.keys, updated_at = excluded.updated_at`,
			arr, ts(time.Now())); err != nil {
			return err
		}
		if len(plan.Remove) > 0 {
			if arr, err = keyRowsJSON(plan.Remove); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM ops.match_key_h WHERE (key_hash, org_code, local_id) IN
				(SELECT value->>0, value->>1, value->>2 FROM json_each(?))`, arr); err != nil {
				return err
			}
		}
		if len(plan.Add) > 0 {
			if arr, err = keyRowsJSON(plan.Add); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO ops.match_key_h (key_hash, org_code, local_id)
				SELECT value->>0, value->>1, value->>2 FROM json_each(?)`, arr); err != nil {
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

func keyRowsJSON(rows []store.KeyRow) (string, error) {
	out := make([][3]any, len(rows))
	for i, r := range rows {
		out[i] = [3]any{r.Hash, r.OrgCode, r.LocalID}
	}
	return jsonArray(out)
}

// Filed returns the match records org's local ids are filed with (see
// link.FiledReader), by local id, without their keys.
func (l links) Filed(ctx context.Context, org string, localIDs []string) (map[string]store.MatchRecord, error) {
	out := make(map[string]store.MatchRecord, len(localIDs))
	if len(localIDs) == 0 {
		return out, nil
	}
	arr, err := jsonArray(localIDs)
	if err != nil {
		return nil, fmt.Errorf("reading filed match records: %w", err)
	}
	rows, err := l.s.db.QueryContext(ctx, `SELECT local_id, patient_id, `+matchFields+` FROM ops.match_record
		WHERE org_code = ? AND local_id IN (SELECT value FROM json_each(?))`, org, arr)
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

// Candidates answers in one statement: the count of records under each
// key (up to limit+1), and the records of the keys within the limit
// (columns store.CandidateColumns).
func (l links) Candidates(ctx context.Context, keys []string, limit int) (match.CandidateSet, error) {
	set := match.CandidateSet{ByKey: map[string][]match.Candidate{}}
	if len(keys) == 0 {
		return set, nil
	}
	hashes, byHash := store.KeyHashes(keys)
	arr, err := jsonArray(hashes)
	if err != nil {
		return set, fmt.Errorf("finding match candidates: %w", err)
	}
	// Each key's records are counted up to limit+1 only: a giant block
	// (a care home's postcode) costs no more than a small one.
	rows, err := l.s.db.QueryContext(ctx, `WITH q AS MATERIALIZED (SELECT DISTINCT value AS key FROM json_each(?1)),
		c AS MATERIALIZED (SELECT q.key, (SELECT count(*) FROM (SELECT 1 FROM ops.match_key_h m WHERE m.key_hash = q.key LIMIT ?2 + 1)) AS n FROM q)
		SELECT c.key, c.n, r.org_code, COALESCE(r.local_id, ''), COALESCE(r.patient_id, 0),
			COALESCE(r.nhs_number, ''), COALESCE(r.family_name, ''), COALESCE(r.given_name, ''), COALESCE(r.date_of_birth, ''),
			COALESCE(r.sex, ''), COALESCE(r.postcode, ''), COALESCE(r.address, ''), COALESCE(r.gp_practice, ''),
			COALESCE(r.email, ''), COALESCE(r.phone, '')
		FROM c
		LEFT JOIN ops.match_key_h k ON c.n <= ?2 AND k.key_hash = c.key
		LEFT JOIN ops.match_record r ON r.org_code = k.org_code AND r.local_id = k.local_id
		WHERE c.n > 0`, arr, limit)
	if err != nil {
		return set, fmt.Errorf("finding match candidates: %w", err)
	}
	return store.ReadCandidates(rows, limit, byHash)
}

func (l links) MatchMeta(ctx context.Context) (store.MatchMeta, bool, error) {
	var m store.MatchMeta
	var model, at string
	err := l.s.db.QueryRowContext(ctx, `SELECT signature, model, updated_at FROM ops.match_meta WHERE one = 1`).Scan(&m.Signature, &model, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err == nil {
		m.UpdatedAt, err = parseTS(at)
	}
	if err != nil {
		return m, false, fmt.Errorf("reading the match model: %w", err)
	}
	m.Model = []byte(model)
	return m, true, nil
}

func (l links) SetMatchMeta(ctx context.Context, m store.MatchMeta) error {
	if _, err := l.s.db.ExecContext(ctx, `INSERT INTO ops.match_meta (one, signature, model, updated_at) VALUES (1, ?, ?, ?)
		ON CONFLICT (one) DO UPDATE SET signature = excluded.signature, model = excluded.model, updated_at = excluded.updated_at`,
		m.Signature, string(m.Model), ts(time.Now())); err != nil {
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
	matchPageFirst = `SELECT org_code, local_id, COALESCE(patient_id, 0), ` + matchFields + ` FROM ops.match_record
		ORDER BY org_code, local_id LIMIT ?`
	matchPageNext = `SELECT org_code, local_id, COALESCE(patient_id, 0), ` + matchFields + ` FROM ops.match_record
		WHERE (org_code, local_id) > (?, ?) ORDER BY org_code, local_id LIMIT ?`
)

// Rekey files every record again, page by page, in one write transaction
// (which a concurrent Rekey waits for, then finds the signature current).
func (l links) Rekey(ctx context.Context, signature string, keysOf func(match.Record) []string) (int, error) {
	total := 0
	now := ts(time.Now())
	err := l.s.inTx(ctx, func(tx *sql.Tx) error {
		// Write first, so that the transaction holds the write lock before it reads.
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.match_meta (one, signature, updated_at) VALUES (1, '', ?)
			ON CONFLICT (one) DO UPDATE SET updated_at = updated_at`, now); err != nil {
			return err
		}
		var current string
		if err := tx.QueryRowContext(ctx, `SELECT signature FROM ops.match_meta WHERE one = 1`).Scan(&current); err != nil {
			return err
		}
		if current == signature {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ops.match_key_h`); err != nil {
			return err
		}
		err := store.EachMatchPage(ctx, tx, matchPageFirst, matchPageNext, rekeyPage, func(page []store.MatchRecord) error {
			keyRows, keys, err := store.RekeyPage(page, keysOf)
			if err != nil {
				return err
			}
			recKeys := make([][3]string, len(page))
			for i, r := range page {
				recKeys[i] = [3]string{r.OrgCode, r.LocalID, keys[i]}
			}
			if len(keyRows) > 0 {
				arr, err := keyRowsJSON(keyRows)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO ops.match_key_h (key_hash, org_code, local_id)
					SELECT value->>0, value->>1, value->>2 FROM json_each(?)`, arr); err != nil {
					return err
				}
			}
			arr, err := jsonArray(recKeys)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE ops.match_record AS r SET keys = j.value->>2
				FROM json_each(?) AS j WHERE r.org_code = j.value->>0 AND r.local_id = j.value->>1`, arr); err != nil {
				return err
			}
			total += len(page)
			return nil
		})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE ops.match_meta SET signature = ?, updated_at = ? WHERE one = 1`, signature, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("filing match records under new keys: %w", err)
	}
	return total, nil
}

// EachMatchRecord reads the match state in one read transaction (one
// snapshot), rekeyPage records at a time.
func (l links) EachMatchRecord(ctx context.Context, fn func(store.MatchRecord) error) error {
	tx, err := l.s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("reading the match state: %w", err)
	}
	defer tx.Rollback()
	return store.EachMatchPage(ctx, tx, matchPageFirst, matchPageNext, rekeyPage, store.EachRecord(fn))
}
