package s3drop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/manifest"
)

// The completeness sentinels, the same values as package folder's, so a
// caller handles a folder and a bucket alike.
var (
	// ErrIncomplete: the delivery is not complete yet; look again next run.
	ErrIncomplete = folder.ErrIncomplete
	// ErrManifestMismatch: the manifest disagrees with the objects; the
	// whole delivery must not be read.
	ErrManifestMismatch = folder.ErrManifestMismatch
	// ErrBadManifest: a manifest object cannot be parsed.
	ErrBadManifest = folder.ErrBadManifest
)

// FindDelivery is Find, passing over objects that are c's markers or
// manifests (see folder.Completeness.IsCompanion), so that a pattern such as
// "patients_*" never picks patients_20261124.csv.done.
func (b *Bucket) FindDelivery(ctx context.Context, c folder.Completeness) (Object, error) {
	if err := c.Validate(); err != nil {
		return Object{}, fmt.Errorf("%s: %w", b.String(), err)
	}
	return b.find(ctx, c.IsCompanion)
}

// Check reports whether obj (found by FindDelivery or Find) is complete at
// time now under c, the way folder.Completeness.Check does for a file, with
// objects under the prefix in place of files in the folder:
//
//   - c.Marker: an object named obj.Name+Marker or obj.Name-without-
//     extension+Marker under the prefix, last modified no earlier than obj;
//   - c.Manifest: the newest manifest object (names matching the glob) that
//     lists obj.Name, read and checked with manifest.Verify: every listed
//     object under the prefix, its SHA-256 and its rows (c.Count; a workbook
//     is spooled to a temporary file to be counted). c.ArchiveDir is not
//     used: processed objects are tagged (Tag), not moved;
//   - c.StableFor: obj is still the object listed (same size, ETag and
//     LastModified) and its LastModified is at least StableFor before now.
//     An S3 object only appears once its upload has finished, so this
//     guards against a sender that replaces an object several times, not
//     against a half-written one.
//
// It returns nil, an error wrapping ErrIncomplete, ErrManifestMismatch or
// ErrBadManifest, or another error (the store could not be read). The bucket
// is listed once per call.
func (b *Bucket) Check(ctx context.Context, c folder.Completeness, obj Object, now time.Time) error {
	where := b.objectURL(obj.Key)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if c.Marker == "" && c.Manifest == "" && c.StableFor <= 0 {
		return nil
	}
	objs := map[string]Object{}
	if err := b.each(ctx, func(o Object) { objs[o.Name] = o }); err != nil {
		return err
	}
	if c.StableFor > 0 {
		if err := stable(obj, objs, now, c.StableFor); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if c.Marker != "" {
		if err := marker(c, obj, objs); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if c.Manifest != "" {
		if err := b.checkManifest(ctx, c, obj, objs); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

func stable(obj Object, objs map[string]Object, now time.Time, d time.Duration) error {
	cur, ok := objs[obj.Name]
	if !ok {
		return fmt.Errorf("gone since it was found: %w", ErrNoObject)
	}
	if cur.Size != obj.Size || cur.ETag != obj.ETag || !cur.LastModified.Equal(obj.LastModified) {
		return fmt.Errorf("replaced since it was found (size %d, now %d): %w", obj.Size, cur.Size, ErrIncomplete)
	}
	age := now.Sub(cur.LastModified)
	if age < 0 {
		return fmt.Errorf("last modified %v in the future; waiting until it has been unchanged for %v: %w", (-age).Round(time.Second), d, ErrIncomplete)
	}
	if age < d {
		return fmt.Errorf("changed within the last %v (modified %v ago): %w", d, age.Round(time.Second), ErrIncomplete)
	}
	return nil
}

func marker(c folder.Completeness, obj Object, objs map[string]Object) error {
	names := c.MarkerNames(obj.Name)
	stale := ""
	for _, n := range names {
		m, ok := objs[n]
		if !ok {
			continue
		}
		if m.LastModified.Before(obj.LastModified) {
			stale = n
			continue
		}
		return nil
	}
	if stale != "" {
		return fmt.Errorf("its marker %s is older than the object (written for an earlier version); waiting for a new one: %w", stale, ErrIncomplete)
	}
	return fmt.Errorf("no %s marker yet (%s): %w", c.Marker, strings.Join(names, " or "), ErrIncomplete)
}

func (b *Bucket) checkManifest(ctx context.Context, c folder.Completeness, obj Object, objs map[string]Object) error {
	var candidates []Object
	for _, o := range objs {
		if strings.HasPrefix(o.Name, ".") && !strings.HasPrefix(c.Manifest, ".") {
			continue
		}
		if ok, _ := path.Match(c.Manifest, o.Name); ok {
			candidates = append(candidates, o)
		}
	}
	slices.SortFunc(candidates, func(a, b Object) int {
		switch {
		case newer(a, b):
			return -1
		case newer(b, a):
			return 1
		}
		return 0
	})
	var m *manifest.Manifest
	for _, cand := range candidates {
		parsed, err := b.parseManifest(ctx, cand)
		if err != nil {
			return err
		}
		if parsed.Lists(obj.Name) {
			m = parsed
			break
		}
	}
	if m == nil {
		return fmt.Errorf("no manifest matching %q lists it yet: %w", c.Manifest, ErrIncomplete)
	}
	open := func(name string) (io.ReadCloser, error) {
		rc, err := b.Open(ctx, b.prefix+name)
		if errors.Is(err, ErrNoObject) {
			return nil, fmt.Errorf("%w: %w", err, fs.ErrNotExist)
		}
		return rc, err
	}
	count := func(name string) (int, error) {
		key := b.prefix + name
		if manifest.IsWorkbook(name) {
			p, cleanup, err := b.OpenSpooled(ctx, key)
			if err != nil {
				return 0, err
			}
			defer cleanup()
			return c.Count.CountFile(ctx, p)
		}
		rc, err := b.Open(ctx, key)
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		return c.Count.CountReader(ctx, rc, name)
	}
	return manifest.Verify(ctx, m, open, count)
}

func (b *Bucket) parseManifest(ctx context.Context, o Object) (*manifest.Manifest, error) {
	rc, err := b.Open(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return manifest.Parse(o.Name, rc)
}

// Tag adds tags to the object at key (S3 object tagging: GetObjectTagging,
// then PutObjectTagging with the object's existing tags and these, a tag
// given here replacing one of the same key). Use it to mark a processed
// delivery, for example Tag(ctx, key, map[string]string{"careindex":
// "processed", "careindex-run": "42"}), where moving it is not wanted or not
// allowed. S3 allows 10 tags per object, keys of up to 128 and values of up
// to 256 characters; the store refuses more. The read and the write are two
// requests, so a tag another client adds in between can be lost.
func (b *Bucket) Tag(ctx context.Context, key string, tags map[string]string) error {
	cur, err := b.Tags(ctx, key)
	if err != nil {
		return err
	}
	for k, v := range tags {
		cur[k] = v
	}
	keys := make([]string, 0, len(cur))
	for k := range cur {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	set := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		set = append(set, types.Tag{Key: aws.String(k), Value: aws.String(cur[k])})
	}
	_, err = b.client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket:  aws.String(b.opts.Bucket),
		Key:     aws.String(key),
		Tagging: &types.Tagging{TagSet: set},
	})
	if err != nil {
		return b.classify(b.objectURL(key), "tag", err)
	}
	return nil
}

// Tags returns the object's tags (empty, not nil, when it has none).
func (b *Bucket) Tags(ctx context.Context, key string) (map[string]string, error) {
	out, err := b.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{
		Bucket: aws.String(b.opts.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, b.classify(b.objectURL(key), "get tags", err)
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}
