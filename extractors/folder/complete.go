package folder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/careindex/careindex/extractors/manifest"
)

// Sentinel errors of Completeness.
var (
	// ErrIncomplete is wrapped by Completeness.Check when the delivery is
	// not complete yet (no marker, no manifest listing it, still changing).
	// It is not a failure: read nothing now and look again next run.
	ErrIncomplete = errors.New("delivery not complete yet")
	// ErrManifestMismatch is wrapped by Completeness.Check when the manifest
	// listing the delivery disagrees with the files (a listed file missing, a
	// SHA-256 or a row count that differs). The whole delivery must not be
	// read. It is manifest.ErrMismatch; errors.As with a
	// *manifest.MismatchError gives every disagreement.
	ErrManifestMismatch = manifest.ErrMismatch
	// ErrBadManifest is wrapped by Completeness.Check when a manifest that
	// could list the delivery cannot be parsed. It is manifest.ErrInvalid.
	ErrBadManifest = manifest.ErrInvalid
	// ErrBadCompleteness marks an invalid Completeness (see Validate).
	ErrBadCompleteness = errors.New("invalid completeness policy")
)

// Completeness says when a delivery is complete enough to read. The zero
// value accepts every delivery at once (files written in place should not be
// read that way). Each field set adds a condition and all must hold:
//
//   - Marker: the sender writes an empty marker file when it has finished;
//   - Manifest: the sender writes a manifest listing the delivery's files
//     with their row counts and SHA-256 (package manifest), and the files
//     must agree with it;
//   - StableFor: the file has not changed for this long.
//
// Check tells whether a delivery is complete; Find is folder.Find passing
// over the policy's own marker and manifest files; Archive moves a processed
// delivery with its marker and manifest into ArchiveDir.
type Completeness struct {
	// Marker, such as ".done", is the suffix of a marker file. A delivery
	// file F is complete when a regular file named F+Marker
	// (patients_20261124.csv.done) or, for a name with an extension, F
	// without its last extension + Marker (patients_20261124.done) is in
	// the same folder, and that marker is not older than F (a marker older
	// than the file belongs to an earlier version of it). Names are matched
	// exactly, case included. Empty means no marker is needed.
	Marker string
	// Manifest is a glob (filepath.Match syntax, such as "manifest_*.json")
	// matched against file names in the delivery's folder. The manifest that
	// applies is the newest (in Find's order) that lists the delivery's
	// name; without one the delivery is incomplete. It must then agree with
	// every file it lists (manifest.Verify), which are looked for in the
	// folder and then in ArchiveDir. Empty means no manifest is needed.
	Manifest string
	// StableFor, when positive, is how long the delivery must have stayed
	// unchanged. Check re-reads the file's size and modification time: if
	// either differs from what Find recorded in the Delivery, the file is
	// still being written; otherwise it is stable when its modification
	// time is at least StableFor before the now passed to Check (so a file
	// last written a day ago is complete at once, without waiting). This
	// relies on the writer updating the modification time as it writes,
	// which every ordinary copy does; a tool that stamps an old time on the
	// file before it has finished (some "preserve times" options) defeats
	// it, and so does a clock on a network file server far from this one:
	// use a marker or a manifest for such senders. A modification time in
	// the future counts from that time.
	StableFor time.Duration
	// Count counts the data rows of the files a manifest lists. Set it from
	// the source's format (delimiter, encoding, sheet, header row), so rows
	// are counted as the pipeline will read them.
	Count manifest.Counter
	// ArchiveDir is the folder Archive moves processed deliveries into. It
	// is also where a file a manifest lists is looked for once it has left
	// the drop folder: another source may have processed and archived it
	// already (a delivery of patients_ and problems_ files under one
	// manifest). Empty means deliveries are not archived.
	ArchiveDir string
}

// Validate checks the policy: Marker and Manifest must be file names, not
// paths, Manifest a valid glob, and StableFor not negative. The errors wrap
// ErrBadCompleteness (or filepath.ErrBadPattern).
func (c Completeness) Validate() error {
	if c.Marker == "." || c.Marker == ".." || strings.ContainsAny(c.Marker, `/\`) {
		return fmt.Errorf("marker %q: must be a file name suffix such as \".done\": %w", c.Marker, ErrBadCompleteness)
	}
	if strings.ContainsAny(c.Manifest, `/\`) {
		return fmt.Errorf("manifest pattern %q: must match file names, not paths: %w", c.Manifest, ErrBadCompleteness)
	}
	if _, err := filepath.Match(c.Manifest, ""); err != nil {
		return fmt.Errorf("manifest pattern %q: %w", c.Manifest, err)
	}
	if c.StableFor < 0 {
		return fmt.Errorf("stable_for %v: must not be negative: %w", c.StableFor, ErrBadCompleteness)
	}
	return nil
}

// IsCompanion reports whether name is one of the policy's marker files (a
// name ending in Marker) or manifests (a name matching Manifest) rather than
// a delivery.
func (c Completeness) IsCompanion(name string) bool {
	if c.Marker != "" && len(name) > len(c.Marker) && strings.HasSuffix(name, c.Marker) {
		return true
	}
	if c.Manifest != "" {
		if ok, _ := filepath.Match(c.Manifest, name); ok {
			return true
		}
	}
	return false
}

// Find is folder.Find, passing over files that are the policy's markers
// (names ending in Marker) or manifests (names matching Manifest), so that a
// pattern such as "patients_*" never picks patients_20261124.csv.done.
func (c Completeness) Find(dir, pattern string) (Delivery, error) {
	if err := c.Validate(); err != nil {
		return Delivery{}, fmt.Errorf("folder %s: %w", dir, err)
	}
	return find(dir, pattern, c.IsCompanion)
}

// Check reports whether d, found in dir (by Find), is complete at time now
// under the policy. It returns nil when it is; an error wrapping
// ErrIncomplete, saying why, when it is not yet (read nothing, look again
// next run); an error wrapping ErrManifestMismatch or ErrBadManifest when
// the manifest for d disagrees with the files or cannot be parsed (the
// whole delivery must not be read); or another error when the folder or a
// file cannot be read. The conditions are checked in the order StableFor,
// Marker, Manifest, and the first unmet one is reported. Errors name the
// folder and the delivery.
//
// With a manifest, Check reads every listed file twice (SHA-256, then rows).
func (c Completeness) Check(ctx context.Context, dir string, d Delivery, now time.Time) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("folder %s: %w", dir, err)
	}
	where := fmt.Sprintf("folder %s: %s", dir, d.Name)
	if c.StableFor > 0 {
		if err := c.checkStable(d, now); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if c.Marker != "" {
		if err := c.checkMarker(dir, d); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if c.Manifest != "" {
		if err := c.checkManifest(ctx, dir, d); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

func (c Completeness) checkStable(d Delivery, now time.Time) error {
	info, err := os.Stat(d.Path)
	if err != nil {
		return err
	}
	if info.Size() != d.Size || !info.ModTime().Equal(d.ModTime) {
		return fmt.Errorf("changed since it was found (size %d, now %d): still being written: %w", d.Size, info.Size(), ErrIncomplete)
	}
	return stableSince(info.ModTime(), now, c.StableFor)
}

// stableSince says whether something last modified at mtime has been
// unchanged for d at now.
func stableSince(mtime, now time.Time, d time.Duration) error {
	age := now.Sub(mtime)
	if age < 0 {
		return fmt.Errorf("modified %v in the future; waiting until it has been unchanged for %v: %w", (-age).Round(time.Second), d, ErrIncomplete)
	}
	if age < d {
		return fmt.Errorf("changed within the last %v (modified %v ago): %w", d, age.Round(time.Second), ErrIncomplete)
	}
	return nil
}

// MarkerNames returns the names of the marker files that complete a
// delivery called name: name+Marker, then, for a name with an extension,
// the name without its last extension + Marker. It returns nil when Marker
// is empty.
func (c Completeness) MarkerNames(name string) []string {
	if c.Marker == "" {
		return nil
	}
	names := []string{name + c.Marker}
	if stem := strings.TrimSuffix(name, filepath.Ext(name)); stem != name && stem != "" {
		names = append(names, stem+c.Marker)
	}
	return names
}

func (c Completeness) checkMarker(dir string, d Delivery) error {
	names := c.MarkerNames(d.Name)
	var stale string
	for _, n := range names {
		info, err := os.Stat(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if info.ModTime().Before(d.ModTime) {
			stale = n
			continue
		}
		return nil
	}
	if stale != "" {
		return fmt.Errorf("its marker %s is older than the file (written for an earlier version); waiting for a new one: %w", stale, ErrIncomplete)
	}
	return fmt.Errorf("no %s marker yet (%s): %w", c.Marker, strings.Join(names, " or "), ErrIncomplete)
}

// manifests lists the files in dir matching the Manifest glob, newest first
// (Find's order).
func (c Completeness) manifests(dir string) ([]Delivery, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Delivery
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(c.Manifest, ".") {
			continue
		}
		if ok, _ := filepath.Match(c.Manifest, name); !ok {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if info.Mode().IsRegular() {
			out = append(out, Delivery{Path: path, Name: name, Size: info.Size(), ModTime: info.ModTime()})
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		switch {
		case newer(a, b):
			return -1
		case newer(b, a):
			return 1
		}
		return 0
	})
	return out, nil
}

// manifestFor returns the newest manifest in dir that lists name, or nil.
// A manifest that cannot be parsed stops the search with an error (it may
// be the one for name), unless a newer one already listed name.
func (c Completeness) manifestFor(dir, name string) (*manifest.Manifest, error) {
	candidates, err := c.manifests(dir)
	if err != nil {
		return nil, err
	}
	for _, cand := range candidates {
		m, err := manifest.ParseFile(cand.Path)
		if err != nil {
			return nil, err
		}
		if m.Lists(name) {
			return m, nil
		}
	}
	return nil, nil
}

func (c Completeness) checkManifest(ctx context.Context, dir string, d Delivery) error {
	m, err := c.manifestFor(dir, d.Name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("no manifest matching %q lists it yet: %w", c.Manifest, ErrIncomplete)
	}
	resolved := map[string]string{}
	open := func(name string) (io.ReadCloser, error) {
		p, err := c.locate(dir, name)
		if err != nil {
			return nil, err
		}
		resolved[name] = p
		return os.Open(p)
	}
	count := func(name string) (int, error) { return c.Count.CountFile(ctx, resolved[name]) }
	return manifest.Verify(ctx, m, open, count)
}

// locate finds a file a manifest lists: in dir, else (when ArchiveDir is
// set) the copy Archive most recently put in ArchiveDir. Not finding it
// gives an error wrapping fs.ErrNotExist.
func (c Completeness) locate(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	_, err := os.Stat(p)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || c.ArchiveDir == "" {
		return p, err
	}
	latest := ""
	for n := 0; n < maxSuffix; n++ {
		a := filepath.Join(c.ArchiveDir, suffixed(name, n))
		if _, err := os.Stat(a); err != nil {
			break
		}
		latest = a
	}
	if latest == "" {
		return "", fmt.Errorf("%s: not in %s nor in the archive %s: %w", name, dir, c.ArchiveDir, fs.ErrNotExist)
	}
	return latest, nil
}
