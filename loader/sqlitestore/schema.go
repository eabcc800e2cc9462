package sqlitestore

// schemaVersion is recorded in PRAGMA user_version of both files; Migrate
// does nothing (and takes no write lock) when both are current.
const schemaVersion = 4

// Schema history: version 2 added the match state (match_record, match_key,
// match_meta), staged_person.email and .phone, run_source.duplicates and
// review.assigned_patient_id and .evidence; version 3 added decisions
// (decision, patient_change, review.delivery_id and .held_record) and the
// published patient_merge; version 4 files blocking keys by hash
// (match_key_h replaces match_key; dropTextKeys drops the old table and
// clears the key signature, so the next run files every record again);
// addColumns brings an older ops file up to date.

// publishedSchema is the published file (attached as main). It holds only
// what a viewer may read: the versioned rows, the live pointer, the list of
// versions and the views of the contract. The views name their tables
// unqualified, so they resolve inside the published file whether or not the
// ops file is attached.
//
// The data tables are clustered (WITHOUT ROWID) on a key that starts with
// the version, so one version's rows are one contiguous key range: loading
// in patient order appends, a patient's rows are read together, and
// dropping a version is a range delete. AUTOINCREMENT keeps version numbers
// from ever being reused.
const publishedSchema = `
CREATE TABLE IF NOT EXISTS main.version (
	version      INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id       INTEGER NOT NULL,
	state        TEXT NOT NULL DEFAULT 'building',
	published_at TEXT
);

CREATE TABLE IF NOT EXISTS main.live (
	one     INTEGER PRIMARY KEY CHECK (one = 1),
	version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS main.data_patient (
	version       INTEGER NOT NULL,
	patient_id    INTEGER NOT NULL,
	nhs_number    TEXT,
	family_name   TEXT,
	given_name    TEXT,
	date_of_birth TEXT,
	sex           TEXT,
	postcode      TEXT,
	gp_practice   TEXT,
	status        TEXT NOT NULL,
	PRIMARY KEY (version, patient_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS main.data_patient_nhs ON data_patient (version, nhs_number);

CREATE TABLE IF NOT EXISTS main.data_record_location (
	version    INTEGER NOT NULL,
	patient_id INTEGER NOT NULL,
	org_code   TEXT NOT NULL,
	local_id   TEXT NOT NULL,
	PRIMARY KEY (version, patient_id, org_code, local_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS main.data_record_location_key ON data_record_location (version, org_code, local_id);

CREATE TABLE IF NOT EXISTS main.data_care_item (
	version     INTEGER NOT NULL,
	patient_id  INTEGER NOT NULL,
	seq         INTEGER NOT NULL,
	org_code    TEXT NOT NULL,
	kind        TEXT NOT NULL,
	code_system TEXT NOT NULL,
	code        TEXT NOT NULL,
	display     TEXT NOT NULL,
	start_date  TEXT,
	end_date    TEXT,
	status      TEXT NOT NULL,
	item_id     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (version, patient_id, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS main.data_organisation (
	version          INTEGER NOT NULL,
	org_code         TEXT NOT NULL,
	name             TEXT NOT NULL,
	org_type         TEXT NOT NULL,
	last_delivery_at TEXT,
	stale            INTEGER NOT NULL CHECK (stale IN (0, 1)),
	PRIMARY KEY (version, org_code)
) WITHOUT ROWID;

-- Every merged patient id of a version with the patient that survives it.
CREATE TABLE IF NOT EXISTS main.data_patient_merge (
	version        INTEGER NOT NULL,
	old_patient_id INTEGER NOT NULL,
	patient_id     INTEGER NOT NULL,
	merged_at      TEXT NOT NULL,
	PRIMARY KEY (version, old_patient_id)
) WITHOUT ROWID;

CREATE VIEW IF NOT EXISTS main.patient_merge AS
	SELECT old_patient_id, patient_id, merged_at
	FROM data_patient_merge WHERE version = (SELECT version FROM live);
CREATE VIEW IF NOT EXISTS main.patient AS
	SELECT patient_id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, gp_practice, status
	FROM data_patient WHERE version = (SELECT version FROM live);
CREATE VIEW IF NOT EXISTS main.record_location AS
	SELECT patient_id, org_code, local_id
	FROM data_record_location WHERE version = (SELECT version FROM live);
CREATE VIEW IF NOT EXISTS main.care_item AS
	SELECT patient_id, org_code, kind, code_system, code, display, start_date, end_date, status, item_id
	FROM data_care_item WHERE version = (SELECT version FROM live);
CREATE VIEW IF NOT EXISTS main.organisation AS
	SELECT org_code, name, org_type, last_delivery_at, stale
	FROM data_organisation WHERE version = (SELECT version FROM live);
CREATE VIEW IF NOT EXISTS main.publication AS
	SELECT v.version, v.run_id, v.published_at,
	       v.version IS (SELECT version FROM live) AS live
	FROM version v WHERE v.published_at IS NOT NULL;
`

// opsSchema is the ops file (attached as ops): run ledger, deliveries and
// their staged rows, quarantine, link state, review queue and what each
// published version was built from. It mirrors careindex_ops of pgstore;
// version_meta holds the columns of careindex_data.version that a viewer
// has no business reading (register hash, stale sources).
const opsSchema = `
CREATE TABLE IF NOT EXISTS ops.run (
	run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
	kind              TEXT NOT NULL DEFAULT 'run',
	started_at        TEXT NOT NULL,
	finished_at       TEXT,
	status            TEXT NOT NULL DEFAULT 'running',
	message           TEXT NOT NULL DEFAULT '',
	sources           TEXT NOT NULL DEFAULT '',
	published_version INTEGER,
	lock_token        TEXT NOT NULL DEFAULT '' -- names the run's lock file (see LockDir)
);

CREATE TABLE IF NOT EXISTS ops.run_source (
	run_id      INTEGER NOT NULL REFERENCES run (run_id),
	source_id   TEXT NOT NULL,
	org_code    TEXT NOT NULL,
	status      TEXT NOT NULL,
	delivery_id INTEGER,
	delivery    TEXT NOT NULL DEFAULT '',
	rows_in     INTEGER NOT NULL DEFAULT 0,
	loaded      INTEGER NOT NULL DEFAULT 0,
	quarantined INTEGER NOT NULL DEFAULT 0,
	withheld    INTEGER NOT NULL DEFAULT 0,
	merged      INTEGER NOT NULL DEFAULT 0,
	pending     INTEGER NOT NULL DEFAULT 0,
	stale       INTEGER NOT NULL DEFAULT 0,
	error       TEXT NOT NULL DEFAULT '',
	duplicates  INTEGER NOT NULL DEFAULT 0, -- informational: outside the balance
	PRIMARY KEY (run_id, source_id),
	CONSTRAINT run_source_balanced CHECK (rows_in = loaded + quarantined + withheld + merged + pending)
);

CREATE TABLE IF NOT EXISTS ops.delivery (
	delivery_id INTEGER PRIMARY KEY AUTOINCREMENT,
	source_id   TEXT NOT NULL,
	org_code    TEXT NOT NULL,
	kind        TEXT NOT NULL,
	name        TEXT NOT NULL,
	hash        TEXT NOT NULL,
	received_at TEXT NOT NULL,
	run_id      INTEGER NOT NULL,
	status      TEXT NOT NULL DEFAULT 'staging',
	rows_in     INTEGER NOT NULL DEFAULT 0,
	quarantined INTEGER NOT NULL DEFAULT 0,
	merged      INTEGER NOT NULL DEFAULT 0,
	hold_reason TEXT NOT NULL DEFAULT '',
	seq         INTEGER NOT NULL DEFAULT 0,
	base        INTEGER
);
CREATE INDEX IF NOT EXISTS ops.delivery_source ON delivery (source_id, status);
CREATE INDEX IF NOT EXISTS ops.delivery_status ON delivery (status, source_id);

CREATE TABLE IF NOT EXISTS ops.quarantine (
	run_id      INTEGER NOT NULL,
	source_id   TEXT NOT NULL,
	delivery_id INTEGER,
	version     INTEGER, -- set on rows quarantined while publishing
	file        TEXT NOT NULL,
	line        INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	raw         TEXT NOT NULL DEFAULT '',
	recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops.quarantine_run ON quarantine (run_id, source_id);

CREATE TABLE IF NOT EXISTS ops.staged_person (
	delivery_id   INTEGER NOT NULL,
	source_id     TEXT NOT NULL,
	file          TEXT NOT NULL,
	line          INTEGER NOT NULL,
	org_code      TEXT NOT NULL,
	local_id      TEXT NOT NULL,
	nhs_number    TEXT NOT NULL DEFAULT '',
	family_name   TEXT NOT NULL DEFAULT '',
	given_name    TEXT NOT NULL DEFAULT '',
	date_of_birth TEXT,
	sex           TEXT NOT NULL DEFAULT '',
	postcode      TEXT NOT NULL DEFAULT '',
	gp_practice   TEXT NOT NULL DEFAULT '',
	sensitive     INTEGER NOT NULL DEFAULT 0,
	objection     TEXT NOT NULL DEFAULT '',
	address       TEXT NOT NULL DEFAULT '',
	email         TEXT NOT NULL DEFAULT '',
	phone         TEXT NOT NULL DEFAULT '',
	patient_id    INTEGER NOT NULL,
	merged        INTEGER NOT NULL DEFAULT 0,
	deleted       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ops.staged_person_delivery ON staged_person (delivery_id, merged);
CREATE INDEX IF NOT EXISTS ops.staged_person_local ON staged_person (org_code, local_id, delivery_id);
CREATE INDEX IF NOT EXISTS ops.staged_person_objection ON staged_person (patient_id) WHERE objection <> '';

CREATE TABLE IF NOT EXISTS ops.staged_item (
	delivery_id INTEGER NOT NULL,
	source_id   TEXT NOT NULL,
	file        TEXT NOT NULL,
	line        INTEGER NOT NULL,
	org_code    TEXT NOT NULL,
	local_id    TEXT NOT NULL,
	item_id     TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL,
	code_system TEXT NOT NULL DEFAULT '',
	code        TEXT NOT NULL,
	display     TEXT NOT NULL DEFAULT '',
	start_date  TEXT,
	end_date    TEXT,
	status      TEXT NOT NULL DEFAULT '',
	merged      INTEGER NOT NULL DEFAULT 0,
	dedupe_key  TEXT NOT NULL DEFAULT '',
	deleted     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ops.staged_item_key ON staged_item (delivery_id, dedupe_key);
CREATE INDEX IF NOT EXISTS ops.staged_item_delivery ON staged_item (delivery_id, merged);

CREATE TABLE IF NOT EXISTS ops.source_state (
	source_id       TEXT PRIMARY KEY,
	org_code        TEXT NOT NULL,
	last_attempt_at TEXT,
	last_error      TEXT NOT NULL DEFAULT ''
);

-- The patient id sequence: one row holding the last id handed out.
CREATE TABLE IF NOT EXISTS ops.patient_id_seq (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	last INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS ops.nhs_link (
	nhs_number    TEXT PRIMARY KEY,
	patient_id    INTEGER NOT NULL,
	date_of_birth TEXT,
	created_at    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ops.nhs_link_patient ON nhs_link (patient_id);

CREATE TABLE IF NOT EXISTS ops.local_link (
	org_code   TEXT NOT NULL,
	local_id   TEXT NOT NULL,
	patient_id INTEGER NOT NULL,
	PRIMARY KEY (org_code, local_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ops.review (
	review_id  INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id     INTEGER NOT NULL,
	source_id  TEXT NOT NULL,
	org_code   TEXT NOT NULL,
	local_id   TEXT NOT NULL,
	nhs_number TEXT NOT NULL,
	patient_id INTEGER NOT NULL,
	reason     TEXT NOT NULL,
	file       TEXT NOT NULL,
	line       INTEGER NOT NULL,
	status     TEXT NOT NULL DEFAULT 'open',
	created_at TEXT NOT NULL,
	assigned_patient_id INTEGER,
	evidence   TEXT NOT NULL DEFAULT '',
	delivery_id INTEGER,                   -- the delivery that last held the record
	held_record TEXT NOT NULL DEFAULT '', -- the held record as normalised (JSON; patient data)
	UNIQUE (org_code, local_id, nhs_number)
);

-- Manual decisions on review items (as in pgstore): the record is pinned
-- to patient_id in every later run.
CREATE TABLE IF NOT EXISTS ops.decision (
	review_id         INTEGER PRIMARY KEY REFERENCES review (review_id),
	org_code          TEXT NOT NULL,
	local_id          TEXT NOT NULL,
	kind              TEXT NOT NULL CHECK (kind IN ('link', 'separate')),
	patient_id        INTEGER NOT NULL,
	other_patient_id  INTEGER,
	decided_by        TEXT NOT NULL,
	decided_at        TEXT NOT NULL,
	note              TEXT NOT NULL DEFAULT '',
	applied_run       INTEGER,
	published_version INTEGER
);
CREATE INDEX IF NOT EXISTS ops.decision_record ON decision (org_code, local_id);

-- Each merged patient and its survivor (as in pgstore).
CREATE TABLE IF NOT EXISTS ops.patient_survivor (
	from_patient INTEGER PRIMARY KEY,
	to_patient   INTEGER NOT NULL
) WITHOUT ROWID;

-- Merges and splits of patients that decisions made.
CREATE TABLE IF NOT EXISTS ops.patient_change (
	change_id    INTEGER PRIMARY KEY AUTOINCREMENT,
	kind         TEXT NOT NULL CHECK (kind IN ('merge', 'split')),
	from_patient INTEGER NOT NULL,
	to_patient   INTEGER NOT NULL,
	review_id    INTEGER NOT NULL REFERENCES review (review_id),
	decided_by   TEXT NOT NULL,
	decided_at   TEXT NOT NULL
);

-- Probabilistic matching state (as in pgstore): each linked person record's
-- matching fields and patient, the blocking keys it is filed under, and the
-- model and key signature in use. All of it is patient data.
CREATE TABLE IF NOT EXISTS ops.match_record (
	org_code      TEXT NOT NULL,
	local_id      TEXT NOT NULL,
	patient_id    INTEGER NOT NULL,
	nhs_number    TEXT NOT NULL DEFAULT '',
	family_name   TEXT NOT NULL DEFAULT '',
	given_name    TEXT NOT NULL DEFAULT '',
	date_of_birth TEXT NOT NULL DEFAULT '',
	sex           TEXT NOT NULL DEFAULT '',
	postcode      TEXT NOT NULL DEFAULT '',
	address       TEXT NOT NULL DEFAULT '',
	gp_practice   TEXT NOT NULL DEFAULT '',
	email         TEXT NOT NULL DEFAULT '',
	phone         TEXT NOT NULL DEFAULT '',
	keys          TEXT NOT NULL DEFAULT '[]', -- the keys it is filed under (JSON), to refile it without an index
	updated_at    TEXT NOT NULL,
	PRIMARY KEY (org_code, local_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ops.match_record_patient ON match_record (patient_id);

-- Each key is filed as its 64-bit hash (store.KeyHash).
CREATE TABLE IF NOT EXISTS ops.match_key_h (
	key_hash INTEGER NOT NULL,
	org_code TEXT NOT NULL,
	local_id TEXT NOT NULL,
	PRIMARY KEY (key_hash, org_code, local_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ops.match_meta (
	one        INTEGER PRIMARY KEY CHECK (one = 1),
	signature  TEXT NOT NULL,
	model      TEXT NOT NULL DEFAULT '',
	updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS ops.withheld_summary (
	run_id    INTEGER NOT NULL,
	version   INTEGER NOT NULL,
	source_id TEXT NOT NULL DEFAULT '',
	kind      TEXT NOT NULL,
	reason    TEXT NOT NULL,
	count     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ops.withheld_summary_run ON withheld_summary (run_id);

CREATE TABLE IF NOT EXISTS ops.override_applied (
	run_id        INTEGER NOT NULL,
	version       INTEGER NOT NULL,
	patient_id    INTEGER NOT NULL,
	reason        TEXT NOT NULL,
	authorised_by TEXT NOT NULL,
	valid_from    TEXT NOT NULL,
	valid_to      TEXT,
	scope         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops.override_applied_run ON override_applied (run_id);

CREATE TABLE IF NOT EXISTS ops.version_delivery (
	version      INTEGER NOT NULL,
	source_id    TEXT NOT NULL,
	delivery_id  INTEGER,
	stale        INTEGER NOT NULL DEFAULT 0,
	stale_reason TEXT NOT NULL DEFAULT '',
	was_status   TEXT, -- the delivery's status before the swap, to undo a swap that never went live
	PRIMARY KEY (version, source_id)
);
CREATE INDEX IF NOT EXISTS ops.version_delivery_delivery ON version_delivery (delivery_id);

CREATE TABLE IF NOT EXISTS ops.version_meta (
	version       INTEGER PRIMARY KEY,
	run_id        INTEGER NOT NULL,
	register_hash TEXT NOT NULL DEFAULT '',
	stale_sources TEXT NOT NULL DEFAULT ''
);
`

// seedSequence starts the patient id sequence. When the ops file is new but
// the published file is not (the ops file was lost), it starts above every
// patient id ever published, so that ids are still never reused.
const seedSequence = `INSERT OR IGNORE INTO ops.patient_id_seq (one, last)
	VALUES (1, (SELECT COALESCE(max(patient_id), 0) FROM main.data_patient))`

// addedColumns are the columns added to ops tables after version 1, with
// their declarations; addColumns adds those an older ops file lacks.
var addedColumns = []struct{ table, column, decl string }{
	{"run_source", "duplicates", "INTEGER NOT NULL DEFAULT 0"},
	{"staged_person", "email", "TEXT NOT NULL DEFAULT ''"},
	{"staged_person", "phone", "TEXT NOT NULL DEFAULT ''"},
	{"review", "assigned_patient_id", "INTEGER"},
	{"review", "evidence", "TEXT NOT NULL DEFAULT ''"},
	{"review", "delivery_id", "INTEGER"},
	{"review", "held_record", "TEXT NOT NULL DEFAULT ''"},
}
