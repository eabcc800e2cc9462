package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lib/pq"
	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
)

// ErrCheck means a built version failed its checks and was not published.
var ErrCheck = errors.New("published version failed its checks")

// ErrNoPrevious means there is no kept version to roll back to.
var ErrNoPrevious = errors.New("no previous version to roll back to")

func partition(table string, version int64) string {
	return fmt.Sprintf("careindex_data.%s_v%d", table, version)
}

// BeginVersion allocates a version number and creates its tables, after
// dropping the tables of versions left half-built by killed runs.
func (s *Store) BeginVersion(ctx context.Context, runID int64) (store.Version, error) {
	if err := s.dropBuilding(ctx); err != nil {
		return nil, err
	}
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT nextval('careindex_data.version_seq')`).Scan(&v); err != nil {
		return nil, fmt.Errorf("allocating version: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_data.version (version, run_id) VALUES ($1, $2)`, v, runID); err != nil {
			return err
		}
		for _, t := range publishedTables {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE careindex_data.%s INCLUDING DEFAULTS)`, partition(t.name, v), t.name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("creating version %d: %w", v, err)
	}
	ver := &version{s: s, n: v}
	if ver.orgs, err = beginCopy(ctx, s.db, partition("organisation", v), orgCols); err == nil {
		if ver.patients, err = beginCopy(ctx, s.db, partition("patient", v), patientCols); err == nil {
			if ver.locations, err = beginCopy(ctx, s.db, partition("record_location", v), locationCols); err == nil {
				ver.items, err = beginCopy(ctx, s.db, partition("care_item", v), itemCols)
			}
		}
	}
	if err != nil {
		ver.Abort(ctx)
		return nil, fmt.Errorf("creating version %d: %w", v, err)
	}
	return ver, nil
}

// dropBuilding drops versions that never went live (the run building them
// failed or was killed). The run lock guarantees no other run is building.
func (s *Store) dropBuilding(ctx context.Context) error {
	vs, err := store.QueryRows(ctx, s.db, store.ScanInt64, `SELECT version FROM careindex_data.version WHERE state = 'building'`)
	if err != nil {
		return fmt.Errorf("finding unfinished versions: %w", err)
	}
	for _, v := range vs {
		if err := s.dropVersionTables(ctx, v, false); err != nil {
			return err
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE careindex_data.version SET state = 'abandoned' WHERE version = $1`, v); err != nil {
			return fmt.Errorf("dropping unfinished version %d: %w", v, err)
		}
	}
	return nil
}

// dropVersionTables detaches (when attached) and drops a version's tables.
func (s *Store) dropVersionTables(ctx context.Context, v int64, attached bool) error {
	for _, t := range publishedTables {
		p := partition(t.name, v)
		if attached {
			// CONCURRENTLY takes no lock that blocks readers of the parent.
			if _, err := s.db.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE careindex_data.%s DETACH PARTITION %s CONCURRENTLY`, t.name, p)); err != nil {
				var pqErr *pq.Error
				if !(errors.As(err, &pqErr) && (pqErr.Code == "42P01" || pqErr.Code == "42P16")) {
					return fmt.Errorf("detaching %s: %w", p, err)
				}
			}
		}
		if _, err := s.db.ExecContext(ctx, `DROP TABLE IF EXISTS `+p); err != nil {
			return fmt.Errorf("dropping %s: %w", p, err)
		}
	}
	return nil
}

type version struct {
	s                                *Store
	n                                int64
	orgs, patients, locations, items *copier
}

func (v *version) Number() int64 { return v.n }

func (v *version) AddPatient(p store.Patient) error {
	ctx := context.Background()
	if p.Status == "withheld" {
		return v.patients.add(ctx, v.n, p.PatientID, nullable(p.NHSNumber), nil, nil, nil, nil, nil, nil, p.Status)
	}
	return v.patients.add(ctx, v.n, p.PatientID, nullable(p.NHSNumber), nullable(p.FamilyName), nullable(p.GivenName),
		nullable(p.DateOfBirth), nullable(p.Sex), nullable(p.Postcode), nullable(p.GPPractice), p.Status)
}

func (v *version) AddLocation(l store.Location) error {
	return v.locations.add(context.Background(), v.n, l.PatientID, l.OrgCode, l.LocalID)
}

func (v *version) AddItem(i store.Item) error {
	return v.items.add(context.Background(), v.n, i.PatientID, i.OrgCode, i.Kind, i.CodeSystem, i.Code, i.Display,
		nullable(i.StartDate), nullable(i.EndDate), i.Status, i.ItemID)
}

func (v *version) AddOrganisation(o store.Organisation) error {
	var at any
	if !o.LastDeliveryAt.IsZero() {
		at = o.LastDeliveryAt
	}
	return v.orgs.add(context.Background(), v.n, o.OrgCode, o.Name, o.OrgType, at, o.Stale)
}

// Finish commits the copies, then adds the version check constraint and
// the indexes that the parent tables have, so that attaching is instant.
func (v *version) Finish(ctx context.Context) error {
	for _, c := range []*copier{v.orgs, v.patients, v.locations, v.items} {
		if err := c.commit(ctx); err != nil {
			v.orgs, v.patients, v.locations, v.items = nil, nil, nil, nil
			return fmt.Errorf("finishing version %d: %w", v.n, err)
		}
	}
	v.orgs, v.patients, v.locations, v.items = nil, nil, nil, nil
	// One transaction, with the memory to build each index in one pass.
	return v.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL maintenance_work_mem = '256MB'`); err != nil {
			return fmt.Errorf("finishing version %d: %w", v.n, err)
		}
		return v.constrain(ctx, tx)
	})
}

// constrain adds the version check constraint and the indexes of its
// tables, and analyzes them.
func (v *version) constrain(ctx context.Context, tx *sql.Tx) error {
	for _, t := range publishedTables {
		p := partition(t.name, v.n)
		stmts := []string{fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s_v%d_version CHECK (version = %d)`, p, t.name, v.n, v.n)}
		for _, idx := range t.indexes {
			unique := ""
			cols := idx
			if strings.HasPrefix(idx, "UNIQUE ") {
				unique, cols = "UNIQUE ", strings.TrimPrefix(idx, "UNIQUE ")
			}
			stmts = append(stmts, fmt.Sprintf(`CREATE %sINDEX ON %s %s`, unique, p, cols))
		}
		stmts = append(stmts, `ANALYZE `+p)
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("finishing version %d: %s: %w", v.n, t.name, err)
			}
		}
	}
	return nil
}

func (v *version) Abort(ctx context.Context) error {
	for _, c := range []*copier{v.orgs, v.patients, v.locations, v.items} {
		c.abort()
	}
	ctx = context.WithoutCancel(ctx)
	// Only a version still being built is dropped: one that went live (a
	// swap that committed but reported an error) must stay.
	res, err := v.s.db.ExecContext(ctx, `UPDATE careindex_data.version SET state = 'abandoned' WHERE version = $1 AND state = 'building'`, v.n)
	if err != nil {
		return fmt.Errorf("abandoning version %d: %w", v.n, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return v.s.dropVersionTables(ctx, v.n, false)
}

// survivors returns the SQL that resolves the patient id expression pid
// through careindex_ops.patient_survivor (a staged row may still carry a
// merged id, see Reviews), or pid itself when no patient was ever merged.
func survivors(ctx context.Context, tx *sql.Tx, pid string) (string, error) {
	var some bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM careindex_ops.patient_survivor)`).Scan(&some); err != nil {
		return "", fmt.Errorf("reading merged patients: %w", err)
	}
	if !some {
		return pid, nil
	}
	return `COALESCE((SELECT m.to_patient FROM careindex_ops.patient_survivor m WHERE m.from_patient = ` + pid + `), ` + pid + `)`, nil
}

// StreamPersons streams the unmerged staged persons of deliveries, each
// under its patient's survivor if that patient was merged.
func (s *Store) StreamPersons(ctx context.Context, deliveries []int64, fn func(store.StagedPerson) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return streamPersons(ctx, tx, deliveries, fn) })
}

// sortMemory gives a publish's reads of the staged rows the memory to sort
// a region's rows by patient in memory (not in temporary files), and no
// JIT compilation (the planner, without statistics on the staged rows,
// would spend a second compiling a plan that runs in a few).
const sortMemory = "SET LOCAL work_mem = '256MB'; SET LOCAL jit = off"

func streamPersons(ctx context.Context, tx *sql.Tx, deliveries []int64, fn func(store.StagedPerson) error) error {
	if _, err := tx.ExecContext(ctx, sortMemory); err != nil {
		return fmt.Errorf("reading staged persons: %w", err)
	}
	pid, err := survivors(ctx, tx, "sp.patient_id")
	if err != nil {
		return err
	}
	return store.EachStagedPerson(ctx, tx, fn, `SELECT sp.delivery_id, sp.source_id, sp.file, sp.line, sp.org_code, sp.local_id, sp.nhs_number,
			sp.family_name, sp.given_name, COALESCE(to_char(sp.date_of_birth, 'YYYY-MM-DD'), ''), sp.sex, sp.postcode, sp.gp_practice,
			sp.sensitive, sp.objection, sp.address, sp.email, sp.phone, `+pid+` AS pid
		FROM careindex_ops.staged_person sp WHERE sp.delivery_id = ANY($1) AND NOT sp.merged
		ORDER BY pid, sp.delivery_id, sp.line`, pq.Array(deliveries))
}

// StreamItems streams the unmerged staged care items of deliveries with
// the patient their person links to (the person of the oldest delivery
// that has one). The persons are hashed once and joined, not looked up
// item by item: a region's items read in a third of the time.
func (s *Store) StreamItems(ctx context.Context, itemDeliveries, personDeliveries []int64, fn func(store.StagedItem) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return streamItems(ctx, tx, itemDeliveries, personDeliveries, fn) })
}

func streamItems(ctx context.Context, tx *sql.Tx, itemDeliveries, personDeliveries []int64, fn func(store.StagedItem) error) error {
	if _, err := tx.ExecContext(ctx, sortMemory); err != nil {
		return fmt.Errorf("reading staged care items: %w", err)
	}
	pid, err := survivors(ctx, tx, "p.patient_id")
	if err != nil {
		return err
	}
	return store.EachStagedItem(ctx, tx, fn, `SELECT i.delivery_id, i.source_id, i.file, i.line, i.org_code, i.local_id, i.item_id, i.kind,
			i.code_system, i.code, i.display, COALESCE(to_char(i.start_date, 'YYYY-MM-DD'), ''),
			COALESCE(to_char(i.end_date, 'YYYY-MM-DD'), ''), i.status, COALESCE(`+pid+`, 0) AS pid
		FROM careindex_ops.staged_item i
		LEFT JOIN (SELECT DISTINCT ON (sp.org_code, sp.local_id) sp.org_code, sp.local_id, sp.patient_id
			FROM careindex_ops.staged_person sp WHERE sp.delivery_id = ANY($2) AND NOT sp.merged
			ORDER BY sp.org_code, sp.local_id, sp.delivery_id) p ON p.org_code = i.org_code AND p.local_id = i.local_id
		WHERE i.delivery_id = ANY($1) AND NOT i.merged
		ORDER BY pid, i.delivery_id, i.line`, pq.Array(itemDeliveries), pq.Array(personDeliveries))
}

// Swap checks the version and makes it live in one transaction.
func (s *Store) Swap(ctx context.Context, sw store.Swap) error {
	for _, o := range sw.Sources {
		if !o.Balanced() {
			return fmt.Errorf("%w: source %s does not balance: %d in, %d loaded + %d quarantined + %d withheld + %d merged",
				ErrCheck, o.SourceID, o.RowsIn, o.Loaded, o.Quarantined, o.Withheld, o.Merged)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Serialise with rollbacks and other publishers.
		if _, err := tx.ExecContext(ctx, `LOCK TABLE careindex_data.live IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("locking live pointer: %w", err)
		}
		if err := checkVersion(ctx, tx, sw); err != nil {
			return err
		}
		if err := publishDecisions(ctx, tx, sw.Version); err != nil {
			return err
		}
		for _, t := range publishedTables {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE careindex_data.%s ATTACH PARTITION %s FOR VALUES IN (%d)`,
				t.name, partition(t.name, sw.Version), sw.Version)); err != nil {
				return fmt.Errorf("attaching %s: %w", t.name, err)
			}
		}
		var stale []string
		for _, o := range sw.Sources {
			if o.Stale {
				stale = append(stale, o.SourceID)
			}
		}
		stmts := []struct {
			q    string
			args []any
		}{
			{`UPDATE careindex_data.version SET state = 'kept' WHERE state = 'live'`, nil},
			{`UPDATE careindex_data.version SET state = 'live', published_at = now(), register_hash = $2, stale_sources = $3 WHERE version = $1`,
				[]any{sw.Version, sw.RegisterHash, strings.Join(stale, ",")}},
			{`INSERT INTO careindex_data.live (one, version) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version`,
				[]any{sw.Version}},
			{`UPDATE careindex_ops.run SET published_version = $2 WHERE run_id = $1`, []any{sw.RunID, sw.Version}},
			{`UPDATE careindex_data.version SET state = 'rolled_back' WHERE version = $1`, []any{sw.RollbackFrom}},
			{`UPDATE careindex_data.version SET state = 'superseded' WHERE version = $1`, []any{sw.RollbackTo}},
		}
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return fmt.Errorf("swapping in version %d: %w", sw.Version, err)
			}
		}
		for _, o := range sw.Sources {
			var did any
			if o.DeliveryID != 0 {
				did = o.DeliveryID
			}
			reason := ""
			if o.Stale {
				reason = o.Error
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.version_delivery (version, source_id, delivery_id, stale, stale_reason)
				VALUES ($1, $2, $3, $4, $5)`, sw.Version, o.SourceID, did, o.Stale, reason); err != nil {
				return fmt.Errorf("recording deliveries of version %d: %w", sw.Version, err)
			}
			if o.DeliveryID != 0 {
				if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET status = 'published' WHERE delivery_id = $1`, o.DeliveryID); err != nil {
					return fmt.Errorf("recording deliveries of version %d: %w", sw.Version, err)
				}
			}
		}
		if err := insertOutcomes(ctx, tx, sw.RunID, sw.Sources); err != nil {
			return err
		}
		for _, w := range sw.Withheld {
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.withheld_summary (run_id, version, source_id, kind, reason, count)
				VALUES ($1, $2, $3, $4, $5, $6)`, sw.RunID, sw.Version, w.SourceID, w.Kind, w.Reason, w.Count); err != nil {
				return fmt.Errorf("recording withheld counts: %w", err)
			}
		}
		for _, o := range sw.Overrides {
			var to any
			if !o.ValidTo.IsZero() {
				to = o.ValidTo
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.override_applied
				(run_id, version, patient_id, reason, authorised_by, valid_from, valid_to, scope) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
				sw.RunID, sw.Version, o.PatientID, o.Reason, o.AuthorisedBy, o.ValidFrom, to, o.Scope); err != nil {
				return fmt.Errorf("recording applied overrides: %w", err)
			}
		}
		for _, r := range sw.Rejects {
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.quarantine (run_id, source_id, file, line, reason, raw)
				VALUES ($1, $2, $3, $4, $5, $6)`, sw.RunID, r.SourceID, r.File, r.Line, r.Reason, r.Raw); err != nil {
				return fmt.Errorf("recording publish-time quarantine: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The new version is live; tidying old ones must not undo that.
	if err := s.retire(ctx, sw.Keep); err != nil {
		s.log.Warn("could not retire old versions; the next publish tries again", zap.Error(err))
	}
	return nil
}

// checkVersion refuses a version whose contents disagree with what the
// pipeline built, or that carries data of a withheld patient.
func checkVersion(ctx context.Context, tx *sql.Tx, sw store.Swap) error {
	v := sw.Version
	counts := []struct {
		table string
		want  int
	}{{"patient", sw.Patients}, {"record_location", sw.Locations}, {"care_item", sw.Items}}
	for _, c := range counts {
		var got int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+partition(c.table, v)).Scan(&got); err != nil {
			return fmt.Errorf("checking version %d: %w", v, err)
		}
		if got != c.want {
			return fmt.Errorf("%w: version %d has %d %s rows, the run built %d", ErrCheck, v, got, c.table, c.want)
		}
	}
	checks := []struct{ what, q string }{
		{"withheld patients carrying demographics", fmt.Sprintf(`SELECT count(*) FROM %s WHERE status = 'withheld'
			AND (family_name IS NOT NULL OR given_name IS NOT NULL OR date_of_birth IS NOT NULL OR sex IS NOT NULL
			     OR postcode IS NOT NULL OR gp_practice IS NOT NULL)`, partition("patient", v))},
		{"patients with a status other than shared or withheld", fmt.Sprintf(`SELECT count(*) FROM %s WHERE status NOT IN ('shared', 'withheld')`, partition("patient", v))},
		{"record locations of withheld or missing patients", fmt.Sprintf(`SELECT count(*) FROM %s l
			WHERE NOT EXISTS (SELECT 1 FROM %s p WHERE p.patient_id = l.patient_id AND p.status = 'shared')`,
			partition("record_location", v), partition("patient", v))},
		{"care items of withheld or missing patients", fmt.Sprintf(`SELECT count(*) FROM %s i
			WHERE NOT EXISTS (SELECT 1 FROM %s p WHERE p.patient_id = i.patient_id AND p.status = 'shared')`,
			partition("care_item", v), partition("patient", v))},
		{"care items from an organisation that holds no record of the patient", fmt.Sprintf(`SELECT count(*) FROM %s i
			WHERE NOT EXISTS (SELECT 1 FROM %s l WHERE l.patient_id = i.patient_id AND l.org_code = i.org_code)`,
			partition("care_item", v), partition("record_location", v))},
	}
	for _, c := range checks {
		var n int
		if err := tx.QueryRowContext(ctx, c.q).Scan(&n); err != nil {
			return fmt.Errorf("checking version %d: %w", v, err)
		}
		if n != 0 {
			return fmt.Errorf("%w: version %d has %d %s", ErrCheck, v, n, c.what)
		}
	}
	return nil
}

// retire drops versions beyond the newest keep (live included) and the
// staged rows of deliveries no kept version uses. Failure here leaves
// extra data behind but never touches the live version, so it is logged.
func (s *Store) retire(ctx context.Context, keep int) error {
	retired, err := store.VersionsToRetire(ctx, s.db, "careindex_data.version", keep)
	if err != nil {
		return err
	}
	for _, v := range retired {
		if err := s.dropVersionTables(ctx, v, true); err != nil {
			s.log.Warn("could not drop an old version; it will be tried again after the next publish", zap.Int64("version", v), zap.Error(err))
			continue
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE careindex_data.version SET state = 'retired' WHERE version = $1`, v); err != nil {
			return fmt.Errorf("retiring version %d: %w", v, err)
		}
	}
	// Staged deliveries older than a source's published one will never be
	// published.
	if err := s.discard(ctx, `SELECT d.delivery_id FROM careindex_ops.delivery d WHERE d.status IN ('staged', 'held') AND d.delivery_id < $1::bigint
		AND EXISTS (SELECT 1 FROM careindex_ops.delivery p WHERE p.source_id = d.source_id AND p.status = 'published' AND p.delivery_id > d.delivery_id)`,
		int64(1)<<62); err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `WITH unused AS (
			SELECT d.delivery_id FROM careindex_ops.delivery d WHERE d.status = 'published' AND NOT EXISTS (
				SELECT 1 FROM careindex_ops.version_delivery vd JOIN careindex_data.version v ON v.version = vd.version
				WHERE vd.delivery_id = d.delivery_id AND v.state IN ('live', 'kept')))
		, p AS (DELETE FROM careindex_ops.staged_person WHERE delivery_id IN (SELECT delivery_id FROM unused))
		, i AS (DELETE FROM careindex_ops.staged_item WHERE delivery_id IN (SELECT delivery_id FROM unused))
		UPDATE careindex_ops.delivery SET status = 'superseded' WHERE delivery_id IN (SELECT delivery_id FROM unused)`)
	if err != nil {
		return fmt.Errorf("removing superseded staged rows: %w", err)
	}
	return nil
}

// Previous returns the newest kept version older than the live one, with
// the deliveries it was built from.
func (s *Store) Previous(ctx context.Context) (store.Publication, []store.VersionSource, bool, error) {
	var p store.Publication
	err := s.db.QueryRowContext(ctx, `SELECT v.version, v.run_id, v.published_at, v.register_hash FROM careindex_data.version v
		WHERE v.state = 'kept' AND v.version < (SELECT version FROM careindex_data.live)
		ORDER BY v.version DESC LIMIT 1`).Scan(&p.Version, &p.RunID, &p.PublishedAt, &p.RegisterHash)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil, false, nil
	}
	if err != nil {
		return p, nil, false, fmt.Errorf("finding the previous version: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT vd.source_id, vd.stale, vd.stale_reason, d.delivery_id, d.org_code, d.kind, d.name,
			d.hash, d.received_at, d.rows_in, d.quarantined, d.merged, d.seq
		FROM careindex_ops.version_delivery vd LEFT JOIN careindex_ops.delivery d ON d.delivery_id = vd.delivery_id
		WHERE vd.version = $1 ORDER BY vd.source_id`, p.Version)
	if err != nil {
		return p, nil, false, fmt.Errorf("reading the previous version's deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.VersionSource
	for rows.Next() {
		var vs store.VersionSource
		var id sql.NullInt64
		var org, kind, name, hash sql.NullString
		var at sql.NullTime
		var in, q, m, seq sql.NullInt64
		if err := rows.Scan(&vs.SourceID, &vs.Stale, &vs.StaleReason, &id, &org, &kind, &name, &hash, &at, &in, &q, &m, &seq); err != nil {
			return p, nil, false, fmt.Errorf("reading the previous version's deliveries: %w", err)
		}
		if id.Valid {
			vs.Delivery = &store.Delivery{ID: id.Int64, SourceID: vs.SourceID, OrgCode: org.String, Kind: kind.String, Name: name.String,
				Hash: hash.String, ReceivedAt: at.Time, RowsIn: int(in.Int64), Quarantined: int(q.Int64), Merged: int(m.Int64), Seq: seq.Int64}
		}
		if vs.Stale {
			p.Stale = append(p.Stale, vs.SourceID)
		}
		out = append(out, vs)
	}
	return p, out, true, rows.Err()
}

// Status reports the live version, recent runs and every source's state.
func (s *Store) Status(ctx context.Context, n int) (store.Status, error) {
	var st store.Status
	if live, ok, err := s.Live(ctx); err != nil {
		return st, err
	} else if ok {
		st.Live = &live
	}
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, kind, started_at, finished_at, status, message, COALESCE(published_version, 0)
		FROM careindex_ops.run ORDER BY run_id DESC LIMIT $1`, n)
	if err != nil {
		return st, fmt.Errorf("reading runs: %w", err)
	}
	for rows.Next() {
		var r store.RunSummary
		var fin sql.NullTime
		var status string
		if err := rows.Scan(&r.RunID, &r.Kind, &r.StartedAt, &fin, &status, &r.Message, &r.Version); err != nil {
			rows.Close()
			return st, fmt.Errorf("reading runs: %w", err)
		}
		r.Status = store.RunStatus(status)
		if fin.Valid {
			t := fin.Time
			r.FinishedAt = &t
		}
		r.Sources = []store.SourceOutcome{}
		st.Runs = append(st.Runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("reading runs: %w", err)
	}
	for i := range st.Runs {
		srows, err := s.db.QueryContext(ctx, `SELECT source_id, org_code, status, COALESCE(delivery_id, 0), delivery, rows_in, loaded,
			quarantined, withheld, merged, pending, duplicates, stale, error FROM careindex_ops.run_source WHERE run_id = $1 ORDER BY source_id`, st.Runs[i].RunID)
		if err != nil {
			return st, fmt.Errorf("reading run sources: %w", err)
		}
		for srows.Next() {
			var o store.SourceOutcome
			if err := srows.Scan(&o.SourceID, &o.OrgCode, &o.Status, &o.DeliveryID, &o.Delivery, &o.RowsIn, &o.Loaded,
				&o.Quarantined, &o.Withheld, &o.Merged, &o.Pending, &o.Duplicates, &o.Stale, &o.Error); err != nil {
				srows.Close()
				return st, fmt.Errorf("reading run sources: %w", err)
			}
			st.Runs[i].Sources = append(st.Runs[i].Sources, o)
		}
		srows.Close()
	}
	srows, err := s.db.QueryContext(ctx, `SELECT ss.source_id, ss.org_code, COALESCE(d.name, ''), d.received_at, ss.last_attempt_at,
			COALESCE(vd.stale, false), COALESCE(vd.stale_reason, '')
		FROM careindex_ops.source_state ss
		LEFT JOIN careindex_data.live l ON true
		LEFT JOIN careindex_ops.version_delivery vd ON vd.version = l.version AND vd.source_id = ss.source_id
		LEFT JOIN careindex_ops.delivery d ON d.delivery_id = vd.delivery_id
		ORDER BY ss.source_id`)
	if err != nil {
		return st, fmt.Errorf("reading sources: %w", err)
	}
	defer srows.Close()
	for srows.Next() {
		var ss store.SourceState
		var at, attempt sql.NullTime
		if err := srows.Scan(&ss.SourceID, &ss.OrgCode, &ss.Delivery, &at, &attempt, &ss.Stale, &ss.StaleReason); err != nil {
			return st, fmt.Errorf("reading sources: %w", err)
		}
		if at.Valid {
			t := at.Time
			ss.LastDeliveryAt = &t
		}
		if attempt.Valid {
			t := attempt.Time
			ss.LastAttemptAt = &t
		}
		st.Sources = append(st.Sources, ss)
	}
	if st.Runs == nil {
		st.Runs = []store.RunSummary{}
	}
	slices.SortFunc(st.Sources, func(a, b store.SourceState) int { return strings.Compare(a.SourceID, b.SourceID) })
	return st, srows.Err()
}

// publishDecisions fills the version's patient_merge with every patient
// merged by an applied decision and the patient that survives it, and
// marks the applied decisions published in the version.
func publishDecisions(ctx context.Context, tx *sql.Tx, v int64) error {
	all, err := changes(ctx, tx, true)
	if err != nil {
		return err
	}
	final := store.ResolveMerges(all)
	for _, c := range all {
		if c.Kind != store.ChangeMerge || c.From == c.To {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+partition("patient_merge", v)+` (version, old_patient_id, patient_id, merged_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, v, c.From, final[c.From], c.At); err != nil {
			return fmt.Errorf("publishing merged patients: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.decision SET published_version = $1
		WHERE applied_run IS NOT NULL AND published_version IS NULL`, v); err != nil {
		return fmt.Errorf("recording published decisions: %w", err)
	}
	return nil
}
