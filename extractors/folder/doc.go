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
// [Hash] streams a file's SHA-256. For a delivery that is not a file, such
// as a query result, [Hasher] and [HashingReader] digest the rows as they
// stream.
package folder
