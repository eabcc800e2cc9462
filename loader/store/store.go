// Package store is the contract between careindex's pipeline and a
// regional store backend (PostgreSQL in production, SQLite embedded).
//
// A backend keeps three things: the ops data (run ledger, deliveries and
// their staged rows, quarantine, link state, review queue), the published
// versions of the index, and the pointer to the live version. The pipeline
// drives it in this order for one run:
//
//	StartRun → (per source) BeginDelivery → Stager.Add… → Stager.Commit
//	         → BeginVersion → StreamPersons/StreamItems → Version.Add… → Version.Finish
//	         → Swap (one transaction: the new version goes live) → FinishRun
//
// Everything before Swap is invisible to readers of the published store, so
// a run killed anywhere before Swap leaves the live version as it was.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

// ConcurrentStaging is implemented by a store in which deliveries of
// different sources may be staged at the same time, each by a goroutine
// of its own (PostgreSQL: every stager copies over connections of its own).
// A store without it (SQLite, one writer at a time) stages one delivery
// at a time.
type ConcurrentStaging interface {
	StagesConcurrently() bool
}

// Store is a regional store backend.
type Store interface {
	// Migrate creates or upgrades the schemas and the reader role. It is
	// idempotent.
	Migrate(ctx context.Context) error
	// Close releases the connections.
	Close() error

	// StartRun records a new run and returns its id.
	StartRun(ctx context.Context, info RunInfo) (int64, error)
	// FinishRun records how a run ended. It may be called after ctx is
	// cancelled with a context.WithoutCancel context.
	FinishRun(ctx context.Context, runID int64, status RunStatus, message string, sources []SourceOutcome) error

	// CurrentDelivery returns the delivery of sourceID in the live index.
	CurrentDelivery(ctx context.Context, sourceID string) (Delivery, bool, error)
	// LastError returns the error of the source's last extraction attempt
	// ("" when it succeeded, or when it was never extracted).
	LastError(ctx context.Context, sourceID string) (string, error)
	// PendingDelivery returns the newest delivery of sourceID that was
	// staged (by an extract-only run) but is not yet published.
	PendingDelivery(ctx context.Context, sourceID string) (Delivery, bool, error)
	// HoldDelivery sets a staged delivery aside for review (a snapshot
	// drastically smaller than the last): it is not published until
	// accepted.
	HoldDelivery(ctx context.Context, deliveryID int64, reason string) error
	// AcceptHeld releases the newest held delivery of sourceID, so that
	// the next publish picks it up.
	AcceptHeld(ctx context.Context, sourceID string) (Delivery, bool, error)
	// BeginDelivery starts staging a delivery. Any earlier staged but never
	// published delivery of the same source is discarded.
	BeginDelivery(ctx context.Context, runID int64, d Delivery) (Stager, error)

	// Links gives the linker its persistent state.
	Links() Links
	// Reviews gives the review queue, the manual decisions taken on it and
	// the merges and splits they made.
	Reviews() Reviews

	// BeginVersion starts building a new published version.
	BeginVersion(ctx context.Context, runID int64) (Version, error)
	// StreamPersons calls fn for every staged person of the given
	// deliveries that was not merged or held for review, ordered by patient id.
	StreamPersons(ctx context.Context, deliveries []int64, fn func(StagedPerson) error) error
	// StreamItems calls fn for every staged, unmerged care item of the given
	// item deliveries, with the patient id of the person at the same
	// organisation in the given person deliveries (0 when there is none),
	// ordered by patient id.
	StreamItems(ctx context.Context, itemDeliveries, personDeliveries []int64, fn func(StagedItem) error) error
	// Swap checks the finished version and makes it live in one
	// transaction, recording the sources' outcomes and state.
	Swap(ctx context.Context, s Swap) error
	// Live returns the live publication, if any.
	Live(ctx context.Context) (Publication, bool, error)
	// Previous returns the newest kept version older than the live one
	// and the deliveries (and stale flags) it was built from. A rollback
	// publishes those deliveries again under the rules in force now.
	Previous(ctx context.Context) (Publication, []VersionSource, bool, error)

	// Status reports the recent runs and the state of every source.
	Status(ctx context.Context, runs int) (Status, error)
	// Compliance reports what a publishing run withheld and which
	// overrides it applied; runID 0 means the latest publishing run.
	Compliance(ctx context.Context, runID int64) (Compliance, error)
	// StreamLive calls fn for every patient of the live version, ordered by
	// patient id, with all its NHS numbers (published and linked), record
	// locations and care items.
	StreamLive(ctx context.Context, fn func(LivePatient) error) error
}

// Compliance is what one publishing run withheld.
type Compliance struct {
	RunID       int64             `json:"run_id"`
	Version     int64             `json:"version"`
	PublishedAt time.Time         `json:"published_at"`
	Withheld    []WithheldCount   `json:"withheld"`
	Overrides   []AppliedOverride `json:"overrides"`
}

// LivePatient is one patient of the live version, for the leak audit.
type LivePatient struct {
	PatientID  int64
	Status     string
	NHSNumbers []string
	// HasDemographics is true when a withheld row carries more than the
	// NHS number.
	HasDemographics bool
	Orgs            []string // organisations with a record location
	Items           []LiveItem
	// Flags are the objections the organisations sent in the records
	// behind this version ("all" or ODS codes separated by ";").
	Flags []string
}

// LiveItem is a published care item, for the leak audit.
type LiveItem struct {
	OrgCode string
	Code    string
	ItemID  string
}

// RunStatus is how a run ended.
type RunStatus string

// Run statuses.
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunUnchanged RunStatus = "unchanged" // succeeded; nothing new to publish
	RunFailed    RunStatus = "failed"
	RunBlocked   RunStatus = "blocked" // publication refused: objection register missing, unreadable or stale
	RunAbandoned RunStatus = "abandoned"
)

// RunInfo describes a run as it starts.
type RunInfo struct {
	Kind    string // run, rollback
	Sources []string
	Started time.Time
}

// Delivery is one night's file set or query result from one source.
type Delivery struct {
	ID         int64
	SourceID   string
	OrgCode    string
	Kind       string // persons or care_items
	Name       string // file name(s) or query name
	Hash       string // SHA-256 of the content
	ReceivedAt time.Time
	// Seq is a delta source's sequence number of this delivery (from the
	// file name); 0 for snapshot sources.
	Seq int64
	// Base, for a delta, is the delivery it applies to: the staged
	// delivery is the base's rows with the delta's upserts and deletions.
	Base int64
	// Counts made while staging.
	RowsIn      int
	Quarantined int
	Merged      int
}

// Reject is a row that goes to quarantine.
type Reject struct {
	SourceID string
	File     string
	Line     int
	Reason   string
	Raw      string
}

// StagedPerson is a person record with the patient it links to.
type StagedPerson struct {
	record.Person
	DeliveryID int64
	PatientID  int64
}

// StagedItem is a care item with the patient its person links to.
type StagedItem struct {
	record.CareItem
	DeliveryID int64
	PatientID  int64 // 0: no person with this local id at the organisation
}

// Stager stages one delivery's rows. Nothing staged is visible to readers.
type Stager interface {
	AddPersons(ctx context.Context, ps []StagedPerson) error
	AddItems(ctx context.Context, items []record.CareItem) error
	AddRejects(ctx context.Context, rs []Reject) error
	// SetHash records the content hash once it is known (a query result
	// is hashed as it streams).
	SetHash(ctx context.Context, hash string) error
	// Commit marks duplicate keys within the delivery as merged (the first
	// row of a key wins), stores the counts and returns the delivery.
	Commit(ctx context.Context, rowsIn int) (Delivery, error)
	// Abort discards the staged rows.
	Abort(ctx context.Context) error
	// DeliveryID is the id of the delivery being staged.
	DeliveryID() int64
}

// Link is the persistent link of one NHS number.
type Link struct {
	PatientID   int64
	DateOfBirth string
}

// Review is a record held for the data quality team.
type Review struct {
	RunID     int64
	SourceID  string
	OrgCode   string
	LocalID   string
	NHSNumber string
	// PatientID is the patient the record may belong to: the one its NHS
	// number links to, or the best candidate of probabilistic matching.
	PatientID int64
	Reason    string
	File      string
	Line      int
	// Assigned is the patient the record was given meanwhile (a new
	// patient, for a possible match in the review band); 0 when the
	// record is held and not published.
	Assigned int64
	// Evidence summarises the comparison behind the review (JSON: match
	// weight, probability, reasons and each field's comparison level and
	// weight). It holds no patient values.
	Evidence string
	// DeliveryID is the delivery being staged when the record was seen
	// (0: unknown).
	DeliveryID int64
	// Held, for a record held and not published (Assigned 0), is the
	// record as normalised, kept in the ops schema so that a decision can
	// stage it into DeliveryID without the delivery being read again.
	Held *record.Person
}

// Links is the persistent link state.
type Links interface {
	ByNHS(ctx context.Context, nhs []string) (map[string]Link, error)
	ByLocal(ctx context.Context, org string, localIDs []string) (map[string]int64, error)
	NewPatientIDs(ctx context.Context, n int) ([]int64, error)
	SaveNHS(ctx context.Context, links map[string]Link) error
	SaveLocal(ctx context.Context, org string, links map[string]int64) error
	// AddReviews queues review items. A record already in the queue
	// (same organisation, local id and NHS number) keeps its item; while
	// the item is open it is brought up to date (run, delivery, file,
	// line, evidence, held record).
	AddReviews(ctx context.Context, rs []Review) error
	// Pins returns the patient a manual decision pinned each of the
	// organisation's local ids to (see Decision); ids without one are
	// absent.
	Pins(ctx context.Context, org string, localIDs []string) (map[string]int64, error)
	// NHSOfPatients returns every NHS number linked to each patient.
	NHSOfPatients(ctx context.Context, patientIDs []int64) (map[int64][]string, error)

	// MatchState is the persisted state of probabilistic matching: every
	// linked person record's matching fields and patient, filed under its
	// blocking keys. Its Candidates method makes it the matcher's
	// match.CandidateSource. Fields and keys are patient data: a backend
	// never logs them.
	MatchState
}

// MatchState persists what probabilistic matching needs between runs.
type MatchState interface {
	// SaveMatch upserts records' matching state: fields, patient and keys.
	// A new or changed record's keys replace the keys it was filed under
	// before; keys are a function of the fields (under the signature in
	// MatchMeta), so a record saved unchanged keeps its keys and costs
	// little. A record given twice in one call is saved as given last.
	SaveMatch(ctx context.Context, recs []MatchRecord) error
	// Candidates returns the records filed under any of keys, with their
	// patients. A key filed under more than limit records is not expanded:
	// it is reported in Oversized with a count of at least limit+1 (a
	// backend may stop counting there). Record IDs are MatchID(org, local
	// id).
	Candidates(ctx context.Context, keys []string, limit int) (match.CandidateSet, error)
	// MatchMeta returns the model and key signature the records are filed
	// under (ok false when nothing was recorded yet).
	MatchMeta(ctx context.Context) (meta MatchMeta, ok bool, err error)
	// SetMatchMeta records the model and key signature in use.
	SetMatchMeta(ctx context.Context, meta MatchMeta) error
	// Rekey files every record again under the keys that keys returns
	// for its fields and records signature, in one transaction; it
	// returns how many records were filed. The pipeline calls it when the
	// blocking rules changed (the signature differs).
	Rekey(ctx context.Context, signature string, keys func(match.Record) []string) (int, error)
	// EachMatchRecord calls fn with every record of the match state, in
	// (org_code, local_id) order, with its patient and fields (Keys nil),
	// as of one moment: what a region's model is estimated from. It reads
	// page by page, so memory does not grow with the state; an error from
	// fn stops it and is returned.
	EachMatchRecord(ctx context.Context, fn func(MatchRecord) error) error
}

// MatchRecord is one organisation's record of a person as matching keeps
// it. Record.ID is ignored: the record is identified by OrgCode and LocalID.
type MatchRecord struct {
	OrgCode   string
	LocalID   string
	PatientID int64
	Record    match.Record
	Keys      []string
}

// MatchMeta is the model the match state is filed under.
type MatchMeta struct {
	// Signature is the matcher's KeySignature: it changes when the
	// blocking rules do, and the records must then be filed again.
	Signature string
	// Model is the model's JSON.
	Model []byte
	// UpdatedAt is when the meta data was last recorded.
	UpdatedAt time.Time
}

// MatchID is the ID of an organisation's record in match results:
// the ODS code and the local id, separated by a unit separator.
func MatchID(org, localID string) string { return org + "\x1f" + localID }

// Version is a published version being built. Rows added are invisible
// to readers until Swap.
type Version interface {
	Number() int64
	AddPatient(p Patient) error
	AddLocation(l Location) error
	AddItem(i Item) error
	AddOrganisation(o Organisation) error
	// Finish flushes the rows and builds the indexes.
	Finish(ctx context.Context) error
	// Abort drops the version.
	Abort(ctx context.Context) error
}

// Patient is a published patient row.
type Patient struct {
	PatientID   int64
	NHSNumber   string
	FamilyName  string
	GivenName   string
	DateOfBirth string
	Sex         string
	Postcode    string
	GPPractice  string
	Status      string // shared or withheld
}

// Location is a published record location.
type Location struct {
	PatientID int64
	OrgCode   string
	LocalID   string
}

// Item is a published care item.
type Item struct {
	PatientID  int64
	OrgCode    string
	ItemID     string // the organisation's own id for the item, if it sent one
	Kind       string
	CodeSystem string
	Code       string
	Display    string
	StartDate  string
	EndDate    string
	Status     string
}

// Organisation is a published organisation row.
type Organisation struct {
	OrgCode        string
	Name           string
	OrgType        string
	LastDeliveryAt time.Time
	Stale          bool
}

// SourceOutcome is one source's line in the run ledger.
type SourceOutcome struct {
	SourceID    string
	OrgCode     string
	Status      string // new, unchanged, failed, carried, pending, staged
	DeliveryID  int64  // the delivery in the index after this run (0: none)
	Delivery    string // its name
	RowsIn      int
	Loaded      int
	Quarantined int
	Withheld    int
	Merged      int
	// Pending counts rows staged by an extract-only run that a later
	// publish will load or withhold; always 0 in a run that published.
	Pending int
	// Duplicates counts the delivery's records that are linked to a
	// patient who has another record at the same organisation (two local
	// ids, one person): a data quality figure, not part of the balance.
	Duplicates int
	Stale      bool
	Error      string // why it failed (never patient data)
}

// Extracted reports whether a source with this outcome status was
// extracted in the run (rather than carried over from an earlier one).
func Extracted(status string) bool {
	return status == "new" || status == "unchanged" || status == "failed"
}

// Balanced reports whether rows in = loaded + quarantined + withheld +
// merged (+ pending, for an extract-only run).
func (o SourceOutcome) Balanced() bool {
	return o.RowsIn == o.Loaded+o.Quarantined+o.Withheld+o.Merged+o.Pending
}

// Swap is what goes live in one transaction.
type Swap struct {
	RunID        int64
	Version      int64
	RegisterHash string
	Sources      []SourceOutcome
	// Rejects are rows quarantined while publishing (care items whose
	// person is not in the organisation's delivery).
	Rejects []Reject
	// Patients is the number of patient rows expected in the version;
	// Locations and Items likewise. Swap refuses a version that disagrees.
	Patients, Locations, Items int
	Keep                       int // versions kept, the live one included
	// Withheld and Overrides are recorded for the compliance report.
	Withheld  []WithheldCount
	Overrides []AppliedOverride
	// RollbackFrom, for a rollback, is the live version being withdrawn
	// (it is never offered for rollback again), and RollbackTo the version
	// whose deliveries the new version republishes (it is superseded).
	RollbackFrom, RollbackTo int64
}

// VersionSource is one source's delivery in a version.
type VersionSource struct {
	SourceID    string
	Delivery    *Delivery // nil: the source had no delivery yet
	Stale       bool
	StaleReason string
}

// WithheldCount counts what one source had withheld in a version, by kind
// (patient, record, item) and reason.
type WithheldCount struct {
	SourceID string `json:"source_id,omitempty"` // empty for patient counts
	Kind     string `json:"kind"`
	Reason   string `json:"reason"`
	Count    int    `json:"count"`
}

// AppliedOverride is an override that set an objection aside in a version.
type AppliedOverride struct {
	PatientID    int64     `json:"patient_id"`
	Reason       string    `json:"reason"`
	AuthorisedBy string    `json:"authorised_by"`
	ValidFrom    time.Time `json:"valid_from"`
	ValidTo      time.Time `json:"valid_to"`
	Scope        string    `json:"scope"`
}

// Publication is one published version.
type Publication struct {
	Version      int64
	RunID        int64
	PublishedAt  time.Time
	RegisterHash string
	// Stale lists the sources flagged stale in this publication.
	Stale []string
}

// RunSummary is one run in the ledger.
type RunSummary struct {
	RunID      int64           `json:"run_id"`
	Kind       string          `json:"kind"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Status     RunStatus       `json:"status"`
	Message    string          `json:"message,omitempty"`
	Version    int64           `json:"published_version,omitempty"`
	Sources    []SourceOutcome `json:"sources"`
}

// SourceState is the state of one source in the live index.
type SourceState struct {
	SourceID       string     `json:"source_id"`
	OrgCode        string     `json:"org_code"`
	Delivery       string     `json:"delivery,omitempty"`
	LastDeliveryAt *time.Time `json:"last_delivery_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	Stale          bool       `json:"stale"`
	StaleReason    string     `json:"stale_reason,omitempty"`
}

// Status is what `careindex status` shows.
type Status struct {
	Live    *Publication  `json:"live,omitempty"`
	Runs    []RunSummary  `json:"runs"`
	Sources []SourceState `json:"sources"`
}

// The review queue and manual decisions.

// Review item statuses.
const (
	ReviewOpen      = "open"
	ReviewLinked    = "linked"
	ReviewSeparated = "separated"
)

// DecisionKind is what a person decided about a review item.
type DecisionKind string

// Decision kinds.
const (
	// DecideLink says the record is the candidate patient's: it is pinned
	// to that patient and, if it had been given a new patient meanwhile,
	// that patient is merged into the candidate.
	DecideLink DecisionKind = "link"
	// DecideSeparate says the record is not the candidate patient's: it
	// is pinned to a patient of its own (the one it was given, or a new
	// one for a held record: a split) and never linked to the candidate
	// automatically.
	DecideSeparate DecisionKind = "separate"
)

// Patient change kinds.
const (
	ChangeMerge = "merge"
	ChangeSplit = "split"
)

// Reviews is the review queue and the manual decisions taken on it. A
// decision is recorded at once (Decide) and takes effect at the next
// publishing run, which applies it (ApplyDecisions) and publishes a new
// version even when no delivery changed (PendingDecisions).
type Reviews interface {
	// ListReviews returns the open review items (all of them with all),
	// oldest first.
	ListReviews(ctx context.Context, all bool) ([]ReviewItem, error)
	// ReviewItem returns one review item with the candidate's record
	// locations and the decision taken, if any. An unknown id is
	// ErrNoReview.
	ReviewItem(ctx context.Context, id int64) (ReviewItem, error)
	// Decide records a decision on an open review item, in one
	// transaction with the item's status and the merge or split it makes.
	// Only ReviewID, Kind, By, At and Note are read; the rest is derived
	// from the item and returned. An item already decided is ErrDecided.
	Decide(ctx context.Context, d Decision) (Decision, error)
	// ApplyDecisions makes the decisions not yet applied take effect, in
	// one transaction: a merge moves every local link, NHS number link,
	// match record, staged row, open review item and decision of the
	// merged patient to the surviving one; each decided record's local
	// link and staged rows get its pinned patient; a held record is staged
	// into the delivery that held it (its count moves from quarantined to
	// loaded, or to merged when the delivery has the local id already).
	// The caller holds the publish lock. It returns how many decisions it
	// applied.
	ApplyDecisions(ctx context.Context, runID int64) (int, error)
	// PendingDecisions counts the decisions not yet in a published
	// version (applied or not). Swap marks the applied ones published.
	PendingDecisions(ctx context.Context) (int, error)
	// PatientChanges returns the merges and splits recorded, oldest first.
	PatientChanges(ctx context.Context) ([]PatientChange, error)
}

// ReviewItem is a review item as a person sees it: no NHS number, no
// names, no other values.
type ReviewItem struct {
	ID        int64     `json:"id"`
	RunID     int64     `json:"run_id"`
	CreatedAt time.Time `json:"created_at"`
	SourceID  string    `json:"source_id"`
	OrgCode   string    `json:"org_code"`
	LocalID   string    `json:"local_id"`
	// PatientID is the candidate patient; Assigned the patient the record
	// was given meanwhile (0: the record is held, not published).
	PatientID  int64  `json:"candidate_patient_id"`
	Assigned   int64  `json:"assigned_patient_id,omitempty"`
	Reason     string `json:"reason"`
	File       string `json:"file"`
	Line       int    `json:"line"`
	DeliveryID int64  `json:"delivery_id,omitempty"`
	Status     string `json:"status"`
	// Evidence is the linker's JSON summary (levels and weights only).
	Evidence string `json:"evidence,omitempty"`
	// Candidates are the candidate patient's record locations (ReviewItem
	// only).
	Candidates []Location `json:"candidate_locations,omitempty"`
	// Decision is the decision taken, if any (ReviewItem only).
	Decision *Decision `json:"decision,omitempty"`
}

// Held reports whether the item's record is held (not published) until a
// decision.
func (r ReviewItem) Held() bool { return r.Assigned == 0 }

// Decision is a person's decision on a review item. It pins the record
// (OrgCode, LocalID) to PatientID in every later run, whatever its NHS
// number or matching would say.
type Decision struct {
	ReviewID int64        `json:"review_id"`
	Kind     DecisionKind `json:"kind"`
	OrgCode  string       `json:"org_code"`
	LocalID  string       `json:"local_id"`
	// PatientID is the patient the record is pinned to.
	PatientID int64 `json:"patient_id"`
	// OtherPatientID is, for a link, the patient merged into PatientID
	// (0: none); for a separate, the patient the record is kept apart
	// from.
	OtherPatientID int64     `json:"other_patient_id,omitempty"`
	By             string    `json:"decided_by"`
	At             time.Time `json:"decided_at"`
	Note           string    `json:"note,omitempty"`
	// Change is the merge or split the decision made, if any.
	Change *PatientChange `json:"change,omitempty"`
	// AppliedRun and PublishedVersion say when it took effect (0: not yet).
	AppliedRun       int64 `json:"applied_run,omitempty"`
	PublishedVersion int64 `json:"published_version,omitempty"`
}

// PatientChange is a merge (From's records all go to To; From is never
// used again) or a split (a record of From goes to the new patient To).
type PatientChange struct {
	Kind     string    `json:"kind"`
	From     int64     `json:"from_patient_id"`
	To       int64     `json:"to_patient_id"`
	ReviewID int64     `json:"review_id"`
	By       string    `json:"decided_by"`
	At       time.Time `json:"decided_at"`
}

// Errors of the review queue.
var (
	// ErrNoReview means no review item has the id.
	ErrNoReview = errors.New("no such review item")
	// ErrDecided means the review item was decided already.
	ErrDecided = errors.New("review item already decided")
	// ErrDecisionConflict means a link would merge two patients that an
	// earlier decision kept apart.
	ErrDecisionConflict = errors.New("the decision contradicts an earlier one")
)

// ResolveMerges returns, for each merged patient of changes, the patient
// that survives it at the end of the chain of merges (A→B, B→C: A and B
// → C).
func ResolveMerges(changes []PatientChange) map[int64]int64 {
	next := map[int64]int64{}
	for _, c := range changes {
		if c.Kind == ChangeMerge && c.From != c.To {
			next[c.From] = c.To
		}
	}
	out := make(map[int64]int64, len(next))
	for from := range next {
		to := next[from]
		for i := 0; i < len(next); i++ {
			n, ok := next[to]
			if !ok || n == from {
				break
			}
			to = n
		}
		out[from] = to
	}
	return out
}
