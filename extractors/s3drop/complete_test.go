package s3drop_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/manifest"
	"github.com/careindex/careindex/extractors/s3drop"
)

// manifestData is package manifest's testdata: a delivery and manifests
// agreeing with it.
var manifestData = filepath.Join("..", "manifest", "testdata")

func putFile(t *testing.T, g *gateway, key, from string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(manifestData, from))
	if err != nil {
		t.Fatal(err)
	}
	g.Put(t, bucketName, key, data)
}

func wantErr(t *testing.T, err, want error, says ...string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("Check error = %v, want %v", err, want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func TestCheckComplete(t *testing.T) {
	ctx := context.Background()
	g := startGateway(t)
	g.createBucket(t, bucketName)
	const p = "drops/d81001/"
	putFile(t, g, p+"manifest_20261124.json", "manifest_20261124.json")
	putFile(t, g, p+"patients_20261124.csv", "delivery/patients_20261124.csv")
	putFile(t, g, p+"problems_20261124.csv", "delivery/problems_20261124.csv")
	g.putString(t, bucketName, p+"patients_20261124.csv.done", "")
	g.putString(t, bucketName, p+"zz_manifest_20261201.json", "{}") // not matched by the manifest glob used

	b := newBucket(t, g, s3drop.Options{Prefix: "drops/d81001", Pattern: "patients_*"})
	c := folder.Completeness{Marker: ".done", Manifest: "manifest_*.json"}
	obj, err := b.FindDelivery(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Name != "patients_20261124.csv" {
		t.Fatalf("FindDelivery = %s, want patients_20261124.csv (not its marker)", obj.Name)
	}
	if plain, _ := b.Find(ctx); plain.Name != "patients_20261124.csv.done" {
		t.Errorf("Find = %s: expected the marker, or this test tests nothing", plain.Name)
	}
	now := obj.LastModified

	t.Run("marker and manifest", func(t *testing.T) {
		wantErr(t, b.Check(ctx, c, obj, now), nil)
	})
	t.Run("zero policy", func(t *testing.T) {
		wantErr(t, b.Check(ctx, folder.Completeness{}, obj, now), nil)
	})
	t.Run("invalid policy", func(t *testing.T) {
		wantErr(t, b.Check(ctx, folder.Completeness{Marker: "a/b"}, obj, now), folder.ErrBadCompleteness)
		if _, err := b.FindDelivery(ctx, folder.Completeness{Manifest: "["}); err == nil {
			t.Error("FindDelivery with a bad glob: no error")
		}
	})
	t.Run("no marker", func(t *testing.T) {
		pb := newBucket(t, g, s3drop.Options{Prefix: "drops/d81001", Pattern: "problems_*"})
		pobj, err := pb.FindDelivery(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, pb.Check(ctx, c, pobj, now), s3drop.ErrIncomplete,
			"s3://"+bucketName+"/"+p+"problems_20261124.csv", "no .done marker yet (problems_20261124.csv.done or problems_20261124.done)")
		wantErr(t, pb.Check(ctx, folder.Completeness{Manifest: c.Manifest}, pobj, now), nil)
	})
	t.Run("no manifest", func(t *testing.T) {
		wantErr(t, b.Check(ctx, folder.Completeness{Manifest: "nothing_*.json"}, obj, now), s3drop.ErrIncomplete, `no manifest matching "nothing_*.json" lists it yet`)
	})
	t.Run("stable", func(t *testing.T) {
		s := folder.Completeness{StableFor: 2 * time.Minute}
		wantErr(t, b.Check(ctx, s, obj, now.Add(5*time.Minute)), nil)
		wantErr(t, b.Check(ctx, s, obj, now.Add(30*time.Second)), s3drop.ErrIncomplete, "changed within the last 2m0s (modified 30s ago)")
		wantErr(t, b.Check(ctx, s, obj, now.Add(-time.Minute)), s3drop.ErrIncomplete, "in the future")
		gone := obj
		gone.Name, gone.Key = "patients_20261101.csv", p+"patients_20261101.csv"
		wantErr(t, b.Check(ctx, s, gone, now.Add(time.Hour)), s3drop.ErrNoObject)
	})
	t.Run("manifest disagrees", func(t *testing.T) {
		// A newer manifest listing the file applies; it says 18 rows and
		// lists a file never delivered.
		g.putString(t, bucketName, p+"manifest_20261124_2.json", `{"files":[
			{"name":"patients_20261124.csv","rows":18,"sha256":"d8616bc4d15fdba7f42c6db2b7bd350469fef4bb77f1be1a2aa53b41335b6d13"},
			{"name":"allergies_20261124.csv","rows":1,"sha256":"`+strings.Repeat("a", 64)+`"}]}`)
		defer g.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucketName), Key: aws.String(p + "manifest_20261124_2.json")})
		err := b.Check(ctx, c, obj, now)
		wantErr(t, err, s3drop.ErrManifestMismatch, "manifest manifest_20261124_2.json",
			"patients_20261124.csv: has 17 data rows; the manifest says 18", "allergies_20261124.csv: listed but not delivered")
		var me *manifest.MismatchError
		if !errors.As(err, &me) || len(me.Problems) != 2 {
			t.Errorf("error %v: want two problems", err)
		}
	})
	t.Run("manifest cannot be parsed", func(t *testing.T) {
		g.putString(t, bucketName, p+"manifest_20261125.json", `{"files":[`)
		defer g.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucketName), Key: aws.String(p + "manifest_20261125.json")})
		wantErr(t, b.Check(ctx, c, obj, now), s3drop.ErrBadManifest, "manifest_20261125.json: not valid JSON")
	})
	t.Run("replaced since found, marker now stale", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // S3 times have one-second resolution
		putFile(t, g, p+"patients_20261124.csv", "delivery/problems_20261124.csv")
		wantErr(t, b.Check(ctx, folder.Completeness{StableFor: time.Second}, obj, now.Add(time.Hour)), s3drop.ErrIncomplete, "replaced since it was found")
		newObj, err := b.FindDelivery(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, b.Check(ctx, folder.Completeness{Marker: ".done"}, newObj, now), s3drop.ErrIncomplete, "marker patients_20261124.csv.done is older than the object")
		g.putString(t, bucketName, p+"patients_20261124.done", "")
		wantErr(t, b.Check(ctx, folder.Completeness{Marker: ".done"}, newObj, now), nil)
		wantErr(t, b.Check(ctx, c, newObj, now), s3drop.ErrManifestMismatch, "SHA-256 is 37b7ea01")
	})
}

func TestCheckManifestWorkbook(t *testing.T) {
	ctx := context.Background()
	g := startGateway(t)
	g.createBucket(t, bucketName)
	putFile(t, g, "manifest_20261124.json", "manifest_formats.json")
	putFile(t, g, "encounters_20261124.tsv", "delivery/encounters_20261124.tsv")
	putFile(t, g, "patients_20261124.xlsx", "delivery/patients_20261124.xlsx")
	b := newBucket(t, g, s3drop.Options{Pattern: "patients_*.xlsx"})
	c := folder.Completeness{Manifest: "manifest_*.json"}
	obj, err := b.FindDelivery(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Check(ctx, c, obj, obj.LastModified), s3drop.ErrManifestMismatch, "has 3 data rows; the manifest says 2")
	c.Count.Delimited.Delimiter = '\t'
	c.Count.Sheet = "Patients"
	c.Count.XLSX.HeaderRow = 3
	wantErr(t, b.Check(ctx, c, obj, obj.LastModified), nil)
}

func TestTag(t *testing.T) {
	ctx := context.Background()
	g := startGateway(t)
	g.createBucket(t, bucketName)
	const key = "drops/d81001/patients_20261124.csv"
	_, err := g.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucketName), Key: aws.String(key),
		Body: strings.NewReader("id\n1\n"), Tagging: aws.String("sender=d81001&batch=7"),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := newBucket(t, g, s3drop.Options{Prefix: "drops/d81001", Pattern: "patients_*.csv"})
	if err := b.Tag(ctx, key, map[string]string{"careindex": "processed", "batch": "8"}); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	tags, err := b.Tags(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"sender": "d81001", "batch": "8", "careindex": "processed"}
	if len(tags) != len(want) {
		t.Errorf("Tags = %v, want %v", tags, want)
	}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("Tags = %v, want %v", tags, want)
		}
	}
	// Tagging leaves the content alone.
	if h, err := b.Hash(ctx, key); err != nil || h != sha("id\n1\n") {
		t.Errorf("Hash after Tag = %s, %v", h, err)
	}
	if err := b.Tag(ctx, "drops/d81001/nope.csv", map[string]string{"careindex": "processed"}); !errors.Is(err, s3drop.ErrNoObject) || !strings.Contains(err.Error(), "nope.csv") {
		t.Errorf("Tag of a missing object: %v, want ErrNoObject naming it", err)
	}
}
