package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
)

// ErrDeltaGap means a delta delivery is missing: the source stays stale
// and no later delta applies until a full snapshot arrives.
var ErrDeltaGap = errors.New("delta delivery missing")

var (
	digitRun = regexp.MustCompile(`[0-9]+`)
	ymd      = regexp.MustCompile(`(19|20)[0-9]{6}`)
)

// sequence reads a delivery's sequence number from its file name: the last
// run of digits ("name"), or the yyyymmdd date as a day number ("date"),
// so that consecutive deliveries have consecutive numbers.
func sequence(name, mode string) (int64, error) {
	base := filepath.Base(name)
	if mode == "date" {
		m := ymd.FindAllString(base, -1)
		if len(m) == 0 {
			return 0, fmt.Errorf("%s: no yyyymmdd date in the name", base)
		}
		t, err := time.Parse("20060102", m[len(m)-1])
		if err != nil {
			return 0, fmt.Errorf("%s: %w", base, err)
		}
		return t.Unix() / 86400, nil
	}
	m := digitRun.FindAllString(base, -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("%s: no sequence number in the name", base)
	}
	n, err := strconv.ParseInt(m[len(m)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", base, err)
	}
	return n, nil
}

type seqFile struct {
	path string
	seq  int64
}

func listSeq(dir, pattern, mode string) ([]seqFile, error) {
	if pattern == "" {
		return nil, nil
	}
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return nil, err
	}
	var out []seqFile
	for _, m := range matches {
		n, err := sequence(m, mode)
		if err != nil {
			return nil, err
		}
		out = append(out, seqFile{m, n})
	}
	slices.SortFunc(out, func(a, b seqFile) int { return int(a.seq - b.seq) })
	return out, nil
}

// stageDeltas brings a delta source up to date: a full snapshot newer than
// what the index holds resets it; then every delta after the last applied
// one is applied in order. A gap stops the deltas: what was applied before
// the gap is returned with ErrDeltaGap, so the source is published up to
// the gap and flagged stale.
func (r *runner) stageDeltas(ctx context.Context, src config.Source, current *store.Delivery) (store.Delivery, string, error) {
	log := r.log.With(zap.String("source", src.ID), zap.String("stage", "extract"))
	f := src.From.Folder
	if f == nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: delta mode needs a folder source", src.ID)
	}
	deltas, err := listSeq(f.Path, f.Pattern, src.Delta.Sequence)
	if err != nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	snapshots, err := listSeq(f.Path, src.Delta.SnapshotPattern, src.Delta.Sequence)
	if err != nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	var last int64
	if current != nil {
		last = current.Seq
	}
	applied := current
	status := "unchanged"
	stageOne := func(file seqFile, base *store.Delivery) error {
		hash, err := folder.Hash(ctx, file.path)
		if err != nil {
			return err
		}
		d := &delivery{path: file.path, name: filepath.Base(file.path), hash: hash, at: r.opts.Now(), close: func() {}}
		st, _, err := r.stageFile(ctx, src, d, applied, base, file.seq)
		if err != nil {
			return err
		}
		applied, status, last = &st, "new", file.seq
		return nil
	}
	if n := len(snapshots); n > 0 && (applied == nil || snapshots[n-1].seq > last) {
		log.Info("full snapshot resets the delta source", zap.String("delivery", filepath.Base(snapshots[n-1].path)))
		if err := stageOne(snapshots[n-1], nil); err != nil {
			return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
		}
	}
	for _, file := range deltas {
		if applied != nil && file.seq <= last {
			continue
		}
		if applied == nil {
			return store.Delivery{}, "", fmt.Errorf("extracting %s: %w: no full snapshot yet to apply %s to", src.ID, ErrDeltaGap, filepath.Base(file.path))
		}
		if file.seq != last+1 {
			err := fmt.Errorf("%w: %s follows delivery %d, not %d; deltas stop until a full snapshot arrives",
				ErrDeltaGap, filepath.Base(file.path), last, last+1)
			if status == "new" {
				return *applied, status, err
			}
			return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
		}
		if err := stageOne(file, applied); err != nil {
			return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
		}
	}
	if applied == nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %w: no delivery matching %q or %q in %s", src.ID, folder.ErrNoDelivery,
			f.Pattern, src.Delta.SnapshotPattern, f.Path)
	}
	return *applied, status, nil
}
