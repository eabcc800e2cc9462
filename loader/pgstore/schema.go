package pgstore

// The schemas. careindex holds the views readers query; careindex_data holds
// the versioned tables behind them (list-partitioned by version, one
// partition per published version); careindex_ops holds the ledger,
// staging, quarantine and link state.
const schemaSQL = `
CREATE SCHEMA IF NOT EXISTS careindex_ops;
CREATE SCHEMA IF NOT EXISTS careindex_data;
CREATE SCHEMA IF NOT EXISTS careindex;

CREATE TABLE IF NOT EXISTS careindex_ops.run (
	run_id            bigserial PRIMARY KEY,
	kind              text NOT NULL DEFAULT 'run',
	started_at        timestamptz NOT NULL DEFAULT now(),
	finished_at       timestamptz,
	status            text NOT NULL DEFAULT 'running',
	message           text NOT NULL DEFAULT '',
	sources           text NOT NULL DEFAULT '',
	published_version bigint,
	backend_pid       integer,
	backend_start     timestamptz
);
ALTER TABLE careindex_ops.run ADD COLUMN IF NOT EXISTS backend_pid integer;
ALTER TABLE careindex_ops.run ADD COLUMN IF NOT EXISTS backend_start timestamptz;

CREATE TABLE IF NOT EXISTS careindex_ops.run_source (
	run_id      bigint NOT NULL REFERENCES careindex_ops.run,
	source_id   text NOT NULL,
	org_code    text NOT NULL,
	status      text NOT NULL,
	delivery_id bigint,
	delivery    text NOT NULL DEFAULT '',
	rows_in     bigint NOT NULL DEFAULT 0,
	loaded      bigint NOT NULL DEFAULT 0,
	quarantined bigint NOT NULL DEFAULT 0,
	withheld    bigint NOT NULL DEFAULT 0,
	merged      bigint NOT NULL DEFAULT 0,
	pending     bigint NOT NULL DEFAULT 0,
	stale       boolean NOT NULL DEFAULT false,
	error       text NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, source_id),
	CONSTRAINT run_source_balanced CHECK (rows_in = loaded + quarantined + withheld + merged + pending)
);
-- duplicates: records linked to a patient who has another record at the
-- same organisation (informational, outside the balance).
ALTER TABLE careindex_ops.run_source ADD COLUMN IF NOT EXISTS duplicates bigint NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS careindex_ops.delivery (
	delivery_id bigserial PRIMARY KEY,
	source_id   text NOT NULL,
	org_code    text NOT NULL,
	kind        text NOT NULL,
	name        text NOT NULL,
	hash        text NOT NULL,
	received_at timestamptz NOT NULL,
	run_id      bigint NOT NULL,
	status      text NOT NULL DEFAULT 'staging',
	rows_in     bigint NOT NULL DEFAULT 0,
	quarantined bigint NOT NULL DEFAULT 0,
	merged      bigint NOT NULL DEFAULT 0,
	hold_reason text NOT NULL DEFAULT '',
	seq         bigint NOT NULL DEFAULT 0,
	base        bigint
);
ALTER TABLE careindex_ops.delivery ADD COLUMN IF NOT EXISTS seq bigint NOT NULL DEFAULT 0;
ALTER TABLE careindex_ops.delivery ADD COLUMN IF NOT EXISTS base bigint;
ALTER TABLE careindex_ops.delivery ADD COLUMN IF NOT EXISTS hold_reason text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS delivery_source ON careindex_ops.delivery (source_id, status);

CREATE TABLE IF NOT EXISTS careindex_ops.quarantine (
	run_id      bigint NOT NULL,
	source_id   text NOT NULL,
	delivery_id bigint,
	file        text NOT NULL,
	line        integer NOT NULL,
	reason      text NOT NULL,
	raw         text NOT NULL DEFAULT '',
	recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_run ON careindex_ops.quarantine (run_id, source_id);

CREATE TABLE IF NOT EXISTS careindex_ops.staged_person (
	delivery_id   bigint NOT NULL,
	source_id     text NOT NULL,
	file          text NOT NULL,
	line          integer NOT NULL,
	org_code      text NOT NULL,
	local_id      text NOT NULL,
	nhs_number    text NOT NULL DEFAULT '',
	family_name   text NOT NULL DEFAULT '',
	given_name    text NOT NULL DEFAULT '',
	date_of_birth date,
	sex           text NOT NULL DEFAULT '',
	postcode      text NOT NULL DEFAULT '',
	gp_practice   text NOT NULL DEFAULT '',
	sensitive     boolean NOT NULL DEFAULT false,
	objection     text NOT NULL DEFAULT '',
	address       text NOT NULL DEFAULT '',
	patient_id    bigint NOT NULL,
	merged        boolean NOT NULL DEFAULT false,
	deleted       boolean NOT NULL DEFAULT false
);
ALTER TABLE careindex_ops.staged_person ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false;
ALTER TABLE careindex_ops.staged_person ADD COLUMN IF NOT EXISTS objection text NOT NULL DEFAULT '';
ALTER TABLE careindex_ops.staged_person ADD COLUMN IF NOT EXISTS address text NOT NULL DEFAULT '';
ALTER TABLE careindex_ops.staged_person ADD COLUMN IF NOT EXISTS email text NOT NULL DEFAULT '';
ALTER TABLE careindex_ops.staged_person ADD COLUMN IF NOT EXISTS phone text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS staged_person_key ON careindex_ops.staged_person (delivery_id, org_code, local_id, line);
CREATE INDEX IF NOT EXISTS staged_person_patient ON careindex_ops.staged_person (patient_id) WHERE objection <> '';

CREATE TABLE IF NOT EXISTS careindex_ops.staged_item (
	delivery_id bigint NOT NULL,
	source_id   text NOT NULL,
	file        text NOT NULL,
	line        integer NOT NULL,
	org_code    text NOT NULL,
	local_id    text NOT NULL,
	item_id     text NOT NULL DEFAULT '',
	kind        text NOT NULL,
	code_system text NOT NULL DEFAULT '',
	code        text NOT NULL,
	display     text NOT NULL DEFAULT '',
	start_date  date,
	end_date    date,
	status      text NOT NULL DEFAULT '',
	dedupe_key  text NOT NULL,
	merged      boolean NOT NULL DEFAULT false,
	deleted     boolean NOT NULL DEFAULT false
);
ALTER TABLE careindex_ops.staged_item ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS staged_item_key ON careindex_ops.staged_item (delivery_id, dedupe_key, line);

CREATE TABLE IF NOT EXISTS careindex_ops.source_state (
	source_id       text PRIMARY KEY,
	org_code        text NOT NULL,
	last_attempt_at timestamptz,
	last_error      text NOT NULL DEFAULT ''
);

CREATE SEQUENCE IF NOT EXISTS careindex_ops.patient_id_seq;

CREATE TABLE IF NOT EXISTS careindex_ops.nhs_link (
	nhs_number    text PRIMARY KEY,
	patient_id    bigint NOT NULL,
	date_of_birth date,
	created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS nhs_link_patient ON careindex_ops.nhs_link (patient_id);

CREATE TABLE IF NOT EXISTS careindex_ops.local_link (
	org_code   text NOT NULL,
	local_id   text NOT NULL,
	patient_id bigint NOT NULL,
	PRIMARY KEY (org_code, local_id)
);

CREATE TABLE IF NOT EXISTS careindex_ops.review (
	review_id  bigserial PRIMARY KEY,
	run_id     bigint NOT NULL,
	source_id  text NOT NULL,
	org_code   text NOT NULL,
	local_id   text NOT NULL,
	nhs_number text NOT NULL,
	patient_id bigint NOT NULL,
	reason     text NOT NULL,
	file       text NOT NULL,
	line       integer NOT NULL,
	status     text NOT NULL DEFAULT 'open',
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_code, local_id, nhs_number)
);
ALTER TABLE careindex_ops.review ADD COLUMN IF NOT EXISTS assigned_patient_id bigint;
ALTER TABLE careindex_ops.review ADD COLUMN IF NOT EXISTS evidence text NOT NULL DEFAULT '';
-- The delivery that last held the record, and the held record as
-- normalised (JSON; patient data), so that a decision can stage it.
ALTER TABLE careindex_ops.review ADD COLUMN IF NOT EXISTS delivery_id bigint;
ALTER TABLE careindex_ops.review ADD COLUMN IF NOT EXISTS held_record text NOT NULL DEFAULT '';

-- Manual decisions on review items: the record (org_code, local_id) is
-- pinned to patient_id in every later run. applied_run is the publishing
-- run that applied it, published_version the first version it is in.
CREATE TABLE IF NOT EXISTS careindex_ops.decision (
	review_id         bigint PRIMARY KEY REFERENCES careindex_ops.review,
	org_code          text NOT NULL,
	local_id          text NOT NULL,
	kind              text NOT NULL CHECK (kind IN ('link', 'separate')),
	patient_id        bigint NOT NULL,
	other_patient_id  bigint,
	decided_by        text NOT NULL,
	decided_at        timestamptz NOT NULL,
	note              text NOT NULL DEFAULT '',
	applied_run       bigint,
	published_version bigint
);
CREATE INDEX IF NOT EXISTS decision_record ON careindex_ops.decision (org_code, local_id);

-- Each merged patient and the patient that survives it at the end of its
-- chain of merges (applied decisions only): staged rows that still carry a
-- merged id are published under the survivor.
CREATE TABLE IF NOT EXISTS careindex_ops.patient_survivor (
	from_patient bigint PRIMARY KEY,
	to_patient   bigint NOT NULL
);

-- Merges and splits of patients that decisions made.
CREATE TABLE IF NOT EXISTS careindex_ops.patient_change (
	change_id    bigserial PRIMARY KEY,
	kind         text NOT NULL CHECK (kind IN ('merge', 'split')),
	from_patient bigint NOT NULL,
	to_patient   bigint NOT NULL,
	review_id    bigint NOT NULL REFERENCES careindex_ops.review,
	decided_by   text NOT NULL,
	decided_at   timestamptz NOT NULL
);

-- Probabilistic matching state: each linked person record's matching
-- fields and patient (match_record), the blocking keys it is filed under
-- (match_key_h, by hash), and the model and key signature in use (match_meta). All of
-- it is patient data.
CREATE TABLE IF NOT EXISTS careindex_ops.match_record (
	org_code      text NOT NULL,
	local_id      text NOT NULL,
	patient_id    bigint NOT NULL,
	nhs_number    text NOT NULL DEFAULT '',
	family_name   text NOT NULL DEFAULT '',
	given_name    text NOT NULL DEFAULT '',
	date_of_birth text NOT NULL DEFAULT '',
	sex           text NOT NULL DEFAULT '',
	postcode      text NOT NULL DEFAULT '',
	address       text NOT NULL DEFAULT '',
	gp_practice   text NOT NULL DEFAULT '',
	email         text NOT NULL DEFAULT '',
	phone         text NOT NULL DEFAULT '',
	keys          text NOT NULL DEFAULT '[]', -- the keys it is filed under (JSON), to refile it without an index
	updated_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (org_code, local_id)
);
ALTER TABLE careindex_ops.match_record ADD COLUMN IF NOT EXISTS keys text NOT NULL DEFAULT '[]';
CREATE INDEX IF NOT EXISTS match_record_patient ON careindex_ops.match_record (patient_id);

-- Each key is filed as its 64-bit hash (store.KeyHash).
CREATE TABLE IF NOT EXISTS careindex_ops.match_key_h (
	key_hash bigint NOT NULL,
	org_code text NOT NULL,
	local_id text NOT NULL,
	PRIMARY KEY (key_hash, org_code, local_id)
);

CREATE TABLE IF NOT EXISTS careindex_ops.match_meta (
	one        boolean PRIMARY KEY DEFAULT true CHECK (one),
	signature  text NOT NULL,
	model      text NOT NULL DEFAULT '',
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- A store that filed its keys as text (match_key) drops them and forgets
-- their signature: the next run files every record again by hash.
DO $$
BEGIN
	IF to_regclass('careindex_ops.match_key') IS NOT NULL THEN
		DROP TABLE careindex_ops.match_key;
		UPDATE careindex_ops.match_meta SET signature = '';
	END IF;
END $$;

CREATE TABLE IF NOT EXISTS careindex_ops.withheld_summary (
	run_id    bigint NOT NULL,
	version   bigint NOT NULL,
	source_id text NOT NULL DEFAULT '',
	kind      text NOT NULL,
	reason    text NOT NULL,
	count     bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS withheld_summary_run ON careindex_ops.withheld_summary (run_id);

CREATE TABLE IF NOT EXISTS careindex_ops.override_applied (
	run_id        bigint NOT NULL,
	version       bigint NOT NULL,
	patient_id    bigint NOT NULL,
	reason        text NOT NULL,
	authorised_by text NOT NULL,
	valid_from    date NOT NULL,
	valid_to      date,
	scope         text NOT NULL
);
CREATE INDEX IF NOT EXISTS override_applied_run ON careindex_ops.override_applied (run_id);

CREATE TABLE IF NOT EXISTS careindex_ops.version_delivery (
	version      bigint NOT NULL,
	source_id    text NOT NULL,
	delivery_id  bigint,
	stale        boolean NOT NULL DEFAULT false,
	stale_reason text NOT NULL DEFAULT '',
	PRIMARY KEY (version, source_id)
);

CREATE SEQUENCE IF NOT EXISTS careindex_data.version_seq;

CREATE TABLE IF NOT EXISTS careindex_data.version (
	version       bigint PRIMARY KEY,
	run_id        bigint NOT NULL,
	state         text NOT NULL DEFAULT 'building',
	published_at  timestamptz,
	register_hash text NOT NULL DEFAULT '',
	stale_sources text NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS careindex_data.live (
	one     boolean PRIMARY KEY DEFAULT true CHECK (one),
	version bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS careindex_data.patient (
	version       bigint NOT NULL,
	patient_id    bigint NOT NULL,
	nhs_number    text,
	family_name   text,
	given_name    text,
	date_of_birth date,
	sex           text,
	postcode      text,
	gp_practice   text,
	status        text NOT NULL
) PARTITION BY LIST (version);
CREATE UNIQUE INDEX IF NOT EXISTS patient_pk ON careindex_data.patient (version, patient_id);
CREATE INDEX IF NOT EXISTS patient_nhs ON careindex_data.patient (version, nhs_number);

CREATE TABLE IF NOT EXISTS careindex_data.record_location (
	version    bigint NOT NULL,
	patient_id bigint NOT NULL,
	org_code   text NOT NULL,
	local_id   text NOT NULL
) PARTITION BY LIST (version);
CREATE UNIQUE INDEX IF NOT EXISTS record_location_pk ON careindex_data.record_location (version, org_code, local_id);
CREATE INDEX IF NOT EXISTS record_location_patient ON careindex_data.record_location (version, patient_id);

CREATE TABLE IF NOT EXISTS careindex_data.care_item (
	version     bigint NOT NULL,
	patient_id  bigint NOT NULL,
	org_code    text NOT NULL,
	kind        text NOT NULL,
	code_system text NOT NULL,
	code        text NOT NULL,
	display     text NOT NULL,
	start_date  date,
	end_date    date,
	status      text NOT NULL,
	item_id     text NOT NULL DEFAULT ''
) PARTITION BY LIST (version);
CREATE INDEX IF NOT EXISTS care_item_patient ON careindex_data.care_item (version, patient_id);

CREATE TABLE IF NOT EXISTS careindex_data.organisation (
	version          bigint NOT NULL,
	org_code         text NOT NULL,
	name             text NOT NULL,
	org_type         text NOT NULL,
	last_delivery_at timestamptz,
	stale            boolean NOT NULL
) PARTITION BY LIST (version);
CREATE UNIQUE INDEX IF NOT EXISTS organisation_pk ON careindex_data.organisation (version, org_code);

-- Every merged patient id of a version with the patient that survives it.
CREATE TABLE IF NOT EXISTS careindex_data.patient_merge (
	version        bigint NOT NULL,
	old_patient_id bigint NOT NULL,
	patient_id     bigint NOT NULL,
	merged_at      timestamptz NOT NULL
) PARTITION BY LIST (version);
CREATE UNIQUE INDEX IF NOT EXISTS patient_merge_pk ON careindex_data.patient_merge (version, old_patient_id);

CREATE OR REPLACE VIEW careindex.patient AS
	SELECT patient_id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, gp_practice, status
	FROM careindex_data.patient WHERE version = (SELECT version FROM careindex_data.live);
CREATE OR REPLACE VIEW careindex.record_location AS
	SELECT patient_id, org_code, local_id
	FROM careindex_data.record_location WHERE version = (SELECT version FROM careindex_data.live);
CREATE OR REPLACE VIEW careindex.care_item AS
	SELECT patient_id, org_code, kind, code_system, code, display, start_date, end_date, status, item_id
	FROM careindex_data.care_item WHERE version = (SELECT version FROM careindex_data.live);
CREATE OR REPLACE VIEW careindex.organisation AS
	SELECT org_code, name, org_type, last_delivery_at, stale
	FROM careindex_data.organisation WHERE version = (SELECT version FROM careindex_data.live);
CREATE OR REPLACE VIEW careindex.patient_merge AS
	SELECT old_patient_id, patient_id, merged_at
	FROM careindex_data.patient_merge WHERE version = (SELECT version FROM careindex_data.live);
CREATE OR REPLACE VIEW careindex.publication AS
	SELECT v.version, v.run_id, v.published_at,
	       v.version = (SELECT version FROM careindex_data.live) AS live
	FROM careindex_data.version v WHERE v.published_at IS NOT NULL;

REVOKE ALL ON SCHEMA careindex_ops FROM PUBLIC;
REVOKE ALL ON SCHEMA careindex_data FROM PUBLIC;
REVOKE ALL ON SCHEMA careindex FROM PUBLIC;
GRANT USAGE ON SCHEMA careindex TO careindex_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA careindex TO careindex_reader;
`

// Each published table: its name and the columns COPY writes (version first).
var (
	patientCols  = []string{"version", "patient_id", "nhs_number", "family_name", "given_name", "date_of_birth", "sex", "postcode", "gp_practice", "status"}
	locationCols = []string{"version", "patient_id", "org_code", "local_id"}
	itemCols     = []string{"version", "patient_id", "org_code", "kind", "code_system", "code", "display", "start_date", "end_date", "status", "item_id"}
	orgCols      = []string{"version", "org_code", "name", "org_type", "last_delivery_at", "stale"}
	// publishedTables lists the partitioned tables and the indexes each
	// partition gets before it is attached (matching the parent's).
	publishedTables = []publishedTable{
		{"patient", []string{"UNIQUE (version, patient_id)", "(version, nhs_number)"}},
		{"record_location", []string{"UNIQUE (version, org_code, local_id)", "(version, patient_id)"}},
		{"care_item", []string{"(version, patient_id)"}},
		{"organisation", []string{"UNIQUE (version, org_code)"}},
		{"patient_merge", []string{"UNIQUE (version, old_patient_id)"}},
	}
)

type publishedTable struct {
	name    string
	indexes []string
}
