// Package folder finds a source's delivery in a drop folder and identifies
// deliveries by content hash, so the same delivery is not loaded twice.
//
// [Find] picks the newest file whose name matches a glob pattern. "Newest"
// is read from the file name, which carries the delivery date in names such
// as patients_20261124.csv: names are compared in natural order (runs of
// digits by numeric value, so seq_9 comes before seq_10, and fixed-width
// dates compare as they do as text). Names that compare equal that way
// (patients_0012.csv and patients_12.csv) are told apart by modification
// time, then by plain byte order.
//
// # Complete deliveries only
//
// A [Completeness] policy says when a delivery may be read: when the sender
// has written a marker file beside it (Marker, such as ".done"), when a
// manifest lists it and agrees with the files (Manifest; see package
// manifest), and/or when it has not changed for a while (StableFor). Use
// [Completeness.Find] (Find, passing over the policy's own marker and
// manifest files) and then [Completeness.Check], which returns nil, an error
// wrapping [ErrIncomplete] (not yet: look again next run), or one wrapping
// [ErrManifestMismatch] or [ErrBadManifest] (the whole delivery must not be
// read).
//
// # Once only
//
// Once a delivery's processing is recorded, [Completeness.Archive] moves it,
// with its marker and (once none of the files it lists is left) its
// manifest, into an archive folder; [Archive] moves a single file. Neither
// ever overwrites: a name already in the archive gets a "~1", "~2"… suffix
// before its extension.
//
// [Hash] streams a file's SHA-256. For a delivery that is not a file, such
// as a query result, [Hasher] and [HashingReader] digest the rows as they
// stream.
package folder
