// Package manifest reads a delivery manifest and checks a delivery against
// it.
//
// A manifest is a small file an organisation sends with a delivery, saying
// which files make it up, how many data rows each has and each file's SHA-256.
// It comes in one of two forms, told apart by content (the first character
// that is not white space or a byte-order mark: "{" means JSON):
//
// JSON:
//
//	{"delivery": "20261124",
//	 "files": [{"name": "patients_20261124.csv", "rows": 17, "sha256": "3f0a…"},
//	           {"name": "problems_20261124.csv", "rows": 40, "sha256": "9b1c…"}]}
//
// "delivery" is optional (a string or a number) and only informative; other
// top-level members are ignored.
//
// CSV, one file a line:
//
//	name,rows,sha256
//	patients_20261124.csv,17,3f0a…
//
// The header line is optional. With it the columns may come in any order and
// other columns are ignored (name may also be spelled file or filename, rows
// row_count or records, sha256 sha-256); without it the columns are name,
// rows, sha256. Lines starting with # are comments.
//
// In both forms every file needs all three: a base name (no "/" or "\"; the
// names are looked up beside the manifest), a number of data rows (the rows
// after the header; blank lines and empty spreadsheet rows do not count) and a
// SHA-256 of the file's bytes as 64 hexadecimal digits. A manifest that breaks
// these rules, lists no file, lists one twice, or is over [MaxBytes], is
// refused with an error wrapping [ErrInvalid].
//
// [Verify] checks every listed file: that it exists, that its SHA-256 (read
// as a stream) matches, and that its number of data rows does. Counting rows
// needs the right parser, so the caller supplies it; [Counter] counts them
// with package delimited or package xlsx. Every disagreement is collected into
// one [*MismatchError] (which wraps [ErrMismatch]) naming the manifest, each
// file and what disagrees; a file that cannot be read at all (other than not
// being there) stops Verify with that error instead, which is not a mismatch.
//
// Error messages carry file names, hashes and counts, never file contents.
package manifest
