package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/careindex/careindex/transform/match"
)

// RecordRef names an organisation's record in the match state.
type RecordRef struct{ OrgCode, LocalID string }

// KeyRow is one row of the key table: a record filed under a key, the key
// stored as its KeyHash.
type KeyRow struct {
	Hash int64
	RecordRef
}

// KeyHash is the 64-bit FNV-1a hash of a blocking key, as the backends
// store it: smaller rows and indexes than the text. It is stable across
// processes and versions (the stores keep it). Two keys with one hash only
// bring each other's records as candidates, which are then scored.
func KeyHash(key string) int64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime
	}
	return int64(h)
}

// KeyHashes maps each distinct key's hash to the keys (in the order given,
// without repeats) that have it, and returns the distinct hashes sorted:
// what a backend asks for, and how it maps the answer back to the keys.
func KeyHashes(keys []string) (hashes []int64, byHash map[int64][]string) {
	byHash = make(map[int64][]string, len(keys))
	for _, k := range keys {
		h := KeyHash(k)
		ks, seen := byHash[h]
		if !seen {
			hashes = append(hashes, h)
		}
		if !slices.Contains(ks, k) {
			byHash[h] = append(ks, k)
		}
	}
	slices.Sort(hashes)
	return hashes, byHash
}

// CandidateColumns are the columns, in order, of a backend's candidate
// query that ReadCandidates reads: the key hash asked for, the number of
// records filed under it (counted up to limit+1), then the record (NULL
// org_code when there is none) with its patient and matching fields.
const CandidateColumns = "key hash, n, org_code, local_id, patient_id, nhs_number, family_name, given_name, " +
	"date_of_birth, sex, postcode, address, gp_practice, email, phone"

// ReadCandidates reads the rows of a candidate query (CandidateColumns)
// into a set: the records of each key given (byHash maps a hash back to
// its keys, see KeyHashes), and the keys with more than limit records in
// Oversized. It closes rows.
func ReadCandidates(rows *sql.Rows, limit int, byHash map[int64][]string) (match.CandidateSet, error) {
	defer rows.Close()
	set := match.CandidateSet{ByKey: map[string][]match.Candidate{}}
	for rows.Next() {
		var local string
		var hash int64
		var n int
		var org sql.NullString
		var c match.Candidate
		m := &c.Record
		if err := rows.Scan(&hash, &n, &org, &local, &c.PatientID, &m.NHSNumber, &m.FamilyName, &m.GivenName, &m.DateOfBirth,
			&m.Sex, &m.Postcode, &m.Address, &m.GPPractice, &m.Email, &m.Phone); err != nil {
			return set, fmt.Errorf("finding match candidates: %w", err)
		}
		if n > limit {
			if set.Oversized == nil {
				set.Oversized = map[string]int{}
			}
			for _, key := range byHash[hash] {
				set.Oversized[key] = n
			}
			continue
		}
		if !org.Valid {
			continue
		}
		m.ID = MatchID(org.String, local)
		for _, key := range byHash[hash] {
			set.ByKey[key] = append(set.ByKey[key], c)
		}
	}
	if err := rows.Err(); err != nil {
		return set, fmt.Errorf("finding match candidates: %w", err)
	}
	return set, nil
}

// Querier runs a query: a *sql.DB or a *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// EachMatchPage reads the match state over q a page of page records at a
// time, in (org_code, local_id) order, and gives fn each page once its
// rows are closed (so fn may write in the same transaction). first
// selects the first page (one argument: the page size); next the page
// after a record (three: its org_code and local_id, and the page size).
// Both select org_code, local_id, patient_id and the matching fields
// (nhs_number, family_name, given_name, date_of_birth, sex, postcode,
// address, gp_practice, email, phone), ordered by org_code and local_id;
// the backends write them in their dialects. An error from fn stops it.
func EachMatchPage(ctx context.Context, q Querier, first, next string, page int, fn func([]MatchRecord) error) error {
	var after RecordRef
	started := false
	for n := page; n == page; started = true {
		query, args := first, []any{page}
		if started {
			query, args = next, []any{after.OrgCode, after.LocalID, page}
		}
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("reading the match state: %w", err)
		}
		var recs []MatchRecord
		for rows.Next() {
			var r MatchRecord
			m := &r.Record
			if err := rows.Scan(&r.OrgCode, &r.LocalID, &r.PatientID, &m.NHSNumber, &m.FamilyName, &m.GivenName, &m.DateOfBirth,
				&m.Sex, &m.Postcode, &m.Address, &m.GPPractice, &m.Email, &m.Phone); err != nil {
				rows.Close()
				return fmt.Errorf("reading the match state: %w", err)
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading the match state: %w", err)
		}
		if n = len(recs); n == 0 {
			break
		}
		if err := fn(recs); err != nil {
			return err
		}
		after = recs[n-1].RecordRef()
	}
	return nil
}

// EachRecord adapts a function of one record to EachMatchPage.
func EachRecord(fn func(MatchRecord) error) func([]MatchRecord) error {
	return func(page []MatchRecord) error {
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// RecordRef returns the reference of the record.
func (r MatchRecord) RecordRef() RecordRef { return RecordRef{OrgCode: r.OrgCode, LocalID: r.LocalID} }

// sortedHashes returns the distinct hashes of keys, sorted.
func sortedHashes(keys []string) []int64 {
	hs := make([]int64, len(keys))
	for i, k := range keys {
		hs[i] = KeyHash(k)
	}
	slices.Sort(hs)
	return slices.Compact(hs)
}

// CompareKeyRows orders key rows by hash, then record: the order of the
// key table's primary key.
func CompareKeyRows(a, b KeyRow) int {
	if c := cmp.Compare(a.Hash, b.Hash); c != 0 {
		return c
	}
	if c := strings.Compare(a.OrgCode, b.OrgCode); c != 0 {
		return c
	}
	return strings.Compare(a.LocalID, b.LocalID)
}

// RekeyPage works out what Rekey writes for a page of the match state: the
// key rows of every record under keysOf, sorted (CompareKeyRows), and each
// record's keys as a JSON array, in page order.
func RekeyPage(page []MatchRecord, keysOf func(match.Record) []string) ([]KeyRow, []string, error) {
	var rows []KeyRow
	keys := make([]string, len(page))
	for i, r := range page {
		m := r.Record
		m.ID = MatchID(r.OrgCode, r.LocalID)
		ks := keysOf(m)
		for _, k := range ks {
			rows = append(rows, KeyRow{Hash: KeyHash(k), RecordRef: r.RecordRef()})
		}
		b, err := json.Marshal(ks)
		if err != nil {
			return nil, nil, err
		}
		keys[i] = string(b)
	}
	slices.SortFunc(rows, CompareKeyRows)
	return rows, keys, nil
}

// MatchSave is what a backend writes for a SaveMatch call: the records to
// upsert (new or changed, with the keys they are filed under now) and the
// key rows to remove and to add, sorted (CompareKeyRows) so that they go
// into the key index in order.
type MatchSave struct {
	Upserts []MatchRecord
	Remove  []KeyRow
	Add     []KeyRow
}

// PlanMatchSave compares records to save with what the backend holds for
// them (stored, by reference, with the keys they were filed under) and
// returns the writes: nothing for a record saved unchanged. A record given
// twice is saved as given last.
func PlanMatchSave(recs []MatchRecord, stored map[RecordRef]MatchRecord) MatchSave {
	var plan MatchSave
	last := make(map[RecordRef]int, len(recs))
	for i, r := range recs {
		last[RecordRef{r.OrgCode, r.LocalID}] = i
	}
	for i, r := range recs {
		ref := RecordRef{r.OrgCode, r.LocalID}
		if last[ref] != i {
			continue
		}
		keys := slices.Clone(r.Keys)
		slices.Sort(keys)
		keys = slices.Compact(keys)
		r.Keys = keys
		r.Record.ID = ""
		old, ok := stored[ref]
		if ok {
			oldKeys := slices.Clone(old.Keys)
			slices.Sort(oldKeys)
			oldKeys = slices.Compact(oldKeys)
			old.Record.ID = ""
			if old.PatientID == r.PatientID && old.Record == r.Record && slices.Equal(oldKeys, keys) {
				continue
			}
		}
		plan.Upserts = append(plan.Upserts, r)
		// The key rows move by hash: keys that share one share a row.
		hashes := sortedHashes(keys)
		var oldHashes []int64
		if ok {
			oldHashes = sortedHashes(old.Keys)
		}
		for _, h := range oldHashes {
			if _, found := slices.BinarySearch(hashes, h); !found {
				plan.Remove = append(plan.Remove, KeyRow{h, ref})
			}
		}
		for _, h := range hashes {
			if _, found := slices.BinarySearch(oldHashes, h); !found {
				plan.Add = append(plan.Add, KeyRow{h, ref})
			}
		}
	}
	slices.SortFunc(plan.Remove, CompareKeyRows)
	slices.SortFunc(plan.Add, CompareKeyRows)
	return plan
}
