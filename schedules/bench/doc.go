// Package bench benchmarks a careindex night end to end, as an operator
// would run it, and checks the numbers it reports against each other.
//
//	rep, err := bench.Run(ctx, bench.Options{Patients: 100_000, Binary: "/usr/local/bin/careindex"})
//
// or, from the command line, careindex bench --patients N [--json].
//
// # What it does
//
// It generates a synthetic region of two nights (fixtures/regiongen), or
// reuses one in Options.Work whose summary.json matches. Then, for each
// backend (PostgreSQL, the embedded SQLite store), on fresh databases with
// unique names (careindex_bench_<random>_…, dropped at the end unless
// Options.Keep):
//
//  1. loads night-01's exports/community.sql into a fresh export database
//     with psql (not timed: that is the organisation's side);
//  2. the extract stage: the careindex binary, as a child process,
//     `run --extract-only --config night-01/region.yaml --store STORE`;
//  3. the publish stage: `publish` with the same configuration. The full
//     night is the sum of the two stages (two processes rather than one
//     `run`, so that each stage is timed on its own; a `run` does the same
//     work in one process);
//  4. exports the rows of the version just published (every column of the
//     four versioned tables, the version column included) to files, and
//     loads them into an empty copy of those tables: the raw baseline (see
//     below);
//  5. scores the published linkage against night-01's truth;
//  6. loads night-02's community.sql and runs `run --config
//     night-02/region.yaml`: the incremental night, and scores it against
//     night-02's truth;
//  7. reads the whole ledger (run_source) and checks that every line
//     balances.
//
// Child processes get CAREINDEX_GEN_EXPORT_DSN (the export database the
// generated configurations read) and log at warn level; their output is
// kept and shown when one fails. Peak resident memory is the child's own:
// its ru_maxrss (through wait4) when that exceeds the benchmark's own peak,
// else its VmHWM sampled every 20 ms from /proc (on Linux a child's
// ru_maxrss is never lower than the peak of the process that started it;
// see maxrss.go). The full night reports the larger of its two processes.
//
// # Rows
//
// Rows read are the ledger's rows in (careindex_ops.run_source) of the
// stage's runs for the sources it read ("new"): a source whose delivery
// is unchanged (same content hash) is not read again and not counted.
// Rows published are the rows of the live version: patients (withheld
// markers included), record locations, care items and organisations.
// Extract, full and incremental nights report rows read per second;
// publish and the raw baseline rows published per second (both columns
// are printed where both apply).
//
// # The raw baseline
//
// PostgreSQL: each published partition (careindex_data.patient_vN, …) is
// exported with COPY … TO STDOUT; a fresh database gets the same tables
// (the partitions' columns and types, created before the clock starts)
// and one `psql -1 -f` script, timed, runs \copy … FROM for the four files
// and then creates the partitions' indexes (read from pg_indexes), as
// publishing does after its COPY. The store's CHECK (version = N)
// constraints and ANALYZE are not part of the baseline.
//
// SQLite has no \copy. The live version's rows of the data_ tables are
// exported to files in PostgreSQL's COPY text format; a fresh SQLite file
// (WAL, synchronous=NORMAL, as the store) gets the same tables and indexes
// (their CREATE statements read from the store's sqlite_master), and one
// timed transaction inserts the files' rows with prepared 64-row INSERT
// statements, the way the store loads a version, with its indexes in place
// (SQLite's clustered WITHOUT ROWID tables cannot have their keys built
// afterwards).
//
// The ratio is the full night's time over the raw baseline's.
//
// # Linkage quality
//
// Every published record location (org_code, local_id → patient_id) that
// the night's truth/persons.csv knows ((org_code, local_id) → person_id) is
// one record. Precision, recall and F1 are pairwise, over the pairs of
// those records: a pair is predicted when both records share a patient_id,
// true when both belong to one person. They are counted from the
// contingency table of (patient, person), never by listing pairs: with
// n(i,j) records of patient i and person j, a(i) = Σj n(i,j) and
// b(j) = Σi n(i,j), true positives = Σ C(n(i,j), 2), predicted pairs =
// Σ C(a(i), 2) and true pairs = Σ C(b(j), 2). Records that are not
// published (quarantined, withheld) are not scored. With no predicted
// pairs precision is 1, with no true pairs recall is 1.
package bench
