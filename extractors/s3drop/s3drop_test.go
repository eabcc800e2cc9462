package s3drop_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/s3drop"
	"github.com/careindex/careindex/extractors/xlsx"
)

const bucketName = "careindex-drops"

// newBucket returns a Bucket on g with the test's static credentials.
func newBucket(t *testing.T, g *gateway, opts s3drop.Options) *s3drop.Bucket {
	t.Helper()
	if opts.Bucket == "" {
		opts.Bucket = bucketName
	}
	opts.Endpoint = g.endpoint
	opts.PathStyle = true
	if opts.AccessKeyEnv == "" {
		opts.AccessKeyEnv, opts.SecretKeyEnv = "DROP_ACCESS_KEY", "DROP_SECRET_KEY"
	}
	b, err := s3drop.New(context.Background(), opts, goodEnv)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestFind(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	before := time.Now().Add(-time.Minute)
	for _, key := range []string{
		"drops/d81001/patients_20261122.csv",
		"drops/d81001/patients_20261124.csv",
		"drops/d81001/patients_20261123.csv",
		"drops/d81001/problems_20261124.csv",
		"drops/d81001/seq_9.csv",
		"drops/d81001/seq_10.csv",
		"drops/d81001/.patients_20261127.csv",        // an upload in progress
		"drops/d81001/archive/patients_20261130.csv", // further down: not a delivery here
		"drops/d81001x/patients_20261129.csv",        // a sibling prefix
		"patients_20261101.csv",                      // top of the bucket
		"drops/d81001/patients_20261125.csv.part",    // does not match
	} {
		g.putString(t, bucketName, key, "id\n"+key+"\n")
	}
	// Enough objects that a small page size needs several pages.
	for i := 1; i <= 23; i++ {
		g.putString(t, bucketName, "drops/many/p_"+strings.Repeat("0", i%3)+strconv.Itoa(i)+".csv", "id\n")
	}

	tests := []struct {
		name     string
		prefix   string
		pattern  string
		pageSize int32
		want     string // expected key; "" when ErrNoDelivery is expected
	}{
		{"newest by date in the name", "drops/d81001/", "patients_*.csv", 0, "drops/d81001/patients_20261124.csv"},
		{"prefix without the trailing slash", "drops/d81001", "patients_*.csv", 0, "drops/d81001/patients_20261124.csv"},
		{"other source under the same prefix", "drops/d81001/", "problems_*.csv", 0, "drops/d81001/problems_20261124.csv"},
		{"numbers compared by value", "drops/d81001/", "seq_*.csv", 0, "drops/d81001/seq_10.csv"},
		{"hidden names ignored", "drops/d81001/", "*patients_20261127.csv", 0, ""},
		{"hidden names found when asked for", "drops/d81001/", ".patients_*.csv", 0, "drops/d81001/.patients_20261127.csv"},
		{"keys further down ignored", "drops/d81001/", "patients_2026113*.csv", 0, ""},
		{"deeper prefix", "drops/d81001/archive", "patients_*.csv", 0, "drops/d81001/archive/patients_20261130.csv"},
		{"top of the bucket", "", "patients_*.csv", 0, "patients_20261101.csv"},
		{"no match", "drops/d81001/", "clients_*.txt", 0, ""},
		{"empty prefix", "drops/nobody/", "*.csv", 0, ""},
		{"all pages listed", "drops/many", "p_*.csv", 5, "drops/many/p_0023.csv"},
		{"one page", "drops/many", "p_*.csv", 0, "drops/many/p_0023.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBucket(t, g, s3drop.Options{Prefix: tt.prefix, Pattern: tt.pattern, ListPageSize: tt.pageSize})
			obj, err := b.Find(context.Background())
			if tt.want == "" {
				if !errors.Is(err, s3drop.ErrNoDelivery) || !errors.Is(err, folder.ErrNoDelivery) {
					t.Fatalf("Find error = %v, want ErrNoDelivery", err)
				}
				for _, part := range []string{bucketName, strings.TrimSuffix(tt.prefix, "/"), tt.pattern} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if obj.Key != tt.want || obj.Name != path.Base(tt.want) {
				t.Fatalf("Find = %s (%s), want %s", obj.Key, obj.Name, tt.want)
			}
			if tt.pattern == "p_*.csv" {
				return
			}
			if wantSize := int64(len("id\n" + tt.want + "\n")); obj.Size != wantSize {
				t.Errorf("Size = %d, want %d", obj.Size, wantSize)
			}
			if obj.ETag == "" || strings.Contains(obj.ETag, `"`) {
				t.Errorf("ETag = %q, want an unquoted tag", obj.ETag)
			}
			if obj.LastModified.Before(before) || obj.LastModified.After(time.Now().Add(time.Minute)) {
				t.Errorf("LastModified = %v, want about now", obj.LastModified)
			}
		})
	}
}

func TestFindTieBreaksOnLastModified(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	// p_0012 and p_12 compare equal by name; the later upload wins. S3
	// timestamps have one-second resolution.
	g.putString(t, bucketName, "tie/p_12.csv", "old\n")
	time.Sleep(1100 * time.Millisecond)
	g.putString(t, bucketName, "tie/p_0012.csv", "new\n")
	b := newBucket(t, g, s3drop.Options{Prefix: "tie", Pattern: "p_*.csv"})
	obj, err := b.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if obj.Name != "p_0012.csv" {
		t.Errorf("Find = %s, want the later upload p_0012.csv", obj.Name)
	}
}

func TestOpenAndHash(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	const content = "PatientID,Surname\r\n1,Zoë D’Arcy\r\n"
	g.putString(t, bucketName, "drops/d81001/patients_20261124.csv", content)
	b := newBucket(t, g, s3drop.Options{Prefix: "drops/d81001", Pattern: "patients_*.csv"})
	ctx := context.Background()
	obj, err := b.Find(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rc, err := b.Open(ctx, obj.Key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if string(got) != content {
		t.Errorf("body = %q, want %q", got, content)
	}

	h, err := b.Hash(ctx, obj.Key)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if h != sha(content) {
		t.Errorf("Hash = %s, want %s", h, sha(content))
	}
	// The same digest folder.Hash gives for the same bytes in a file, so a
	// source can move between a folder and a bucket without reloading.
	p := filepath.Join(t.TempDir(), obj.Name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if fh, err := folder.Hash(ctx, p); err != nil || fh != h {
		t.Errorf("folder.Hash = %s, %v; want %s", fh, err, h)
	}

	t.Run("missing key", func(t *testing.T) {
		key := "drops/d81001/patients_20261125.csv"
		if _, err := b.Open(ctx, key); !errors.Is(err, s3drop.ErrNoObject) || !strings.Contains(err.Error(), key) {
			t.Errorf("Open error = %v, want ErrNoObject naming the key", err)
		}
		if _, err := b.Hash(ctx, key); !errors.Is(err, s3drop.ErrNoObject) {
			t.Errorf("Hash error = %v, want ErrNoObject", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Hash(cctx, obj.Key); !errors.Is(err, context.Canceled) {
			t.Errorf("Hash error = %v, want context.Canceled", err)
		}
	})
}

func TestOpenDelimited(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	const content = "\uFEFFPatientID|Surname|DOB\n1|Zoë D’Arcy|1948-03-14\n2|\"O'Neil | Jr\"|\n3|bad\n"
	g.putString(t, bucketName, "drops/rwh/clients_20261124.txt", content)
	b := newBucket(t, g, s3drop.Options{Prefix: "drops/rwh", Pattern: "clients_*.txt"})
	ctx := context.Background()
	obj, err := b.Find(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.OpenDelimited(ctx, obj.Key, delimited.Options{Delimiter: '|'})
	if err != nil {
		t.Fatalf("OpenDelimited: %v", err)
	}
	if h := r.Header(); !slices.Equal(h, []string{"PatientID", "Surname", "DOB"}) {
		t.Errorf("Header = %q", h)
	}
	var values [][]string
	var rowErrs []error
	for r.Next(ctx) {
		row := r.Row()
		if row.File != "clients_20261124.txt" || row.Line != len(values)+2 {
			t.Errorf("row at %s:%d", row.File, row.Line)
		}
		values = append(values, row.Values)
		rowErrs = append(rowErrs, row.Err)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	want := [][]string{{"1", "Zoë D’Arcy", "1948-03-14"}, {"2", "O'Neil | Jr", ""}, {"3", "bad", ""}}
	if !slices.EqualFunc(values, want, slices.Equal) {
		t.Errorf("rows = %q, want %q", values, want)
	}
	if len(rowErrs) != 3 || rowErrs[0] != nil || !errors.Is(rowErrs[2], delimited.ErrFieldCount) {
		t.Errorf("row errors = %v", rowErrs)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	t.Run("no header", func(t *testing.T) {
		g.putString(t, bucketName, "drops/rwh/empty.csv", "")
		if _, err := b.OpenDelimited(ctx, "drops/rwh/empty.csv", delimited.Options{}); !errors.Is(err, delimited.ErrNoHeader) {
			t.Errorf("OpenDelimited error = %v, want ErrNoHeader", err)
		}
	})
}

func TestOpenXLSX(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	wb := excelize.NewFile()
	rows := [][]any{{"PatientID", "Surname", "DOB"}, {1, "Zoë D’Arcy", 17607}, {2, "Pennington", ""}}
	for i, row := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := wb.SetSheetRow("Sheet1", cell, &row); err != nil {
			t.Fatal(err)
		}
	}
	buf, err := wb.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	key := "drops/rbz/patients_20261124.xlsx"
	g.putString(t, bucketName, key, string(data))
	b := newBucket(t, g, s3drop.Options{Prefix: "drops/rbz", Pattern: "patients_*.xlsx"})
	ctx := context.Background()

	t.Run("spooled file", func(t *testing.T) {
		p, cleanup, err := b.OpenSpooled(ctx, key)
		if err != nil {
			t.Fatalf("OpenSpooled: %v", err)
		}
		if filepath.Base(p) != "patients_20261124.xlsx" {
			t.Errorf("spooled as %s, want the key's base name", p)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != string(data) {
			t.Errorf("spooled file differs (%d bytes, want %d; %v)", len(got), len(data), err)
		}
		if info, err := os.Stat(p); err == nil && info.Mode().Perm() != 0o600 {
			t.Errorf("spooled file mode %v, want 0600", info.Mode().Perm())
		}
		cleanup()
		cleanup()
		if _, err := os.Stat(filepath.Dir(p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup left %s: %v", filepath.Dir(p), err)
		}
	})

	t.Run("rows", func(t *testing.T) {
		r, err := b.OpenXLSX(ctx, key, "", xlsx.Options{})
		if err != nil {
			t.Fatalf("OpenXLSX: %v", err)
		}
		defer r.Close()
		if h := r.Header(); !slices.Equal(h, []string{"PatientID", "Surname", "DOB"}) {
			t.Errorf("Header = %q", h)
		}
		var got [][]string
		for r.Next(ctx) {
			row := r.Row()
			if row.File != "Sheet1@patients_20261124.xlsx" || row.Err != nil {
				t.Errorf("row %d: File %q Err %v", row.Line, row.File, row.Err)
			}
			got = append(got, row.Values)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		want := [][]string{{"1", "Zoë D’Arcy", "17607"}, {"2", "Pennington", ""}}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("rows = %q, want %q", got, want)
		}
	})

	t.Run("not a workbook leaves nothing behind", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		g.putString(t, bucketName, "drops/rbz/broken.xlsx", "PatientID\n1\n")
		if _, err := b.OpenXLSX(ctx, "drops/rbz/broken.xlsx", "", xlsx.Options{}); err == nil {
			t.Fatal("OpenXLSX of a CSV succeeded")
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("left behind in TMPDIR: %v", left)
		}
	})
}

func TestNewOptions(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts s3drop.Options
		env  map[string]string
		err  error
	}{
		{"no bucket", s3drop.Options{Pattern: "*.csv"}, nil, s3drop.ErrBadOptions},
		{"bucket with a slash", s3drop.Options{Bucket: "a/b", Pattern: "*.csv"}, nil, s3drop.ErrBadOptions},
		{"no pattern", s3drop.Options{Bucket: "b"}, nil, s3drop.ErrBadOptions},
		{"bad pattern", s3drop.Options{Bucket: "b", Pattern: "p_[.csv"}, nil, path.ErrBadPattern},
		{"pattern with a path", s3drop.Options{Bucket: "b", Pattern: "drops/*.csv"}, nil, path.ErrBadPattern},
		{"bad endpoint", s3drop.Options{Bucket: "b", Pattern: "*", Endpoint: "127.0.0.1:7070"}, nil, s3drop.ErrBadOptions},
		{"endpoint with credentials", s3drop.Options{Bucket: "b", Pattern: "*", Endpoint: "http://k:s@127.0.0.1:7070"}, nil, s3drop.ErrBadOptions},
		{"one env name only", s3drop.Options{Bucket: "b", Pattern: "*", AccessKeyEnv: "AK"}, nil, s3drop.ErrBadOptions},
		{"secret not set", s3drop.Options{Bucket: "b", Pattern: "*", AccessKeyEnv: "AK", SecretKeyEnv: "SK"}, map[string]string{"AK": "x"}, s3drop.ErrNoCredentials},
		{"access key empty", s3drop.Options{Bucket: "b", Pattern: "*", AccessKeyEnv: "AK", SecretKeyEnv: "SK"}, map[string]string{"AK": "", "SK": "y"}, s3drop.ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s3drop.New(ctx, tt.opts, env(tt.env))
			if !errors.Is(err, tt.err) {
				t.Fatalf("New error = %v, want %v", err, tt.err)
			}
			if tt.err == s3drop.ErrNoCredentials && !strings.Contains(err.Error(), "$") {
				t.Errorf("error %q does not name the variable", err)
			}
			if strings.Contains(err.Error(), "k:s@") {
				t.Errorf("error %q repeats the endpoint's credentials", err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		b, err := s3drop.New(ctx, s3drop.Options{Bucket: "b", Prefix: "/drops/x", Pattern: "*", AccessKeyEnv: "AK", SecretKeyEnv: "SK"}, env(map[string]string{"AK": "a", "SK": "s"}))
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Options().Region; got != "eu-west-2" {
			t.Errorf("Region = %q, want eu-west-2", got)
		}
		if got := b.String(); got != "s3://b/drops/x/" {
			t.Errorf("String = %q", got)
		}
	})
}

func TestCredentials(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	const key = "drops/d81001/patients_20261124.csv"
	g.putString(t, bucketName, key, "id\n1\n")
	ctx := context.Background()

	rejected := []struct {
		name       string
		access     string
		secret     string
		wantInText string
	}{
		{"wrong secret", testAccessKey, "not-the-secret-key-0000000000000000", "SignatureDoesNotMatch"},
		// AWS says InvalidAccessKeyId; versitygw says XAdminUserNotFound.
		{"unknown access key", "nobodyknowsthiskey", testSecretKey, "XAdminUserNotFound"},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s3drop.New(ctx, s3drop.Options{
				Bucket: bucketName, Prefix: "drops/d81001", Pattern: "*.csv",
				Endpoint: g.endpoint, PathStyle: true,
				AccessKeyEnv: "DROP_ACCESS_KEY", SecretKeyEnv: "DROP_SECRET_KEY",
			}, env(map[string]string{"DROP_ACCESS_KEY": tt.access, "DROP_SECRET_KEY": tt.secret}))
			if err != nil {
				t.Fatal(err)
			}
			_, findErr := b.Find(ctx)
			_, openErr := b.Open(ctx, key)
			_, hashErr := b.Hash(ctx, key)
			_, _, spoolErr := b.OpenSpooled(ctx, key)
			for op, err := range map[string]error{"Find": findErr, "Open": openErr, "Hash": hashErr, "OpenSpooled": spoolErr} {
				if !errors.Is(err, s3drop.ErrCredentials) {
					t.Errorf("%s error = %v, want ErrCredentials", op, err)
					continue
				}
				msg := err.Error()
				for _, want := range []string{"rejected the credentials", tt.wantInText, "$DROP_ACCESS_KEY", "$DROP_SECRET_KEY", bucketName} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s error %q does not say %q", op, msg, want)
					}
				}
				for _, secret := range []string{tt.secret, testSecretKey} {
					if strings.Contains(msg, secret) {
						t.Errorf("%s error prints a secret key: %q", op, msg)
					}
				}
			}
		})
	}

	t.Run("standard credential chain", func(t *testing.T) {
		// No env names: the SDK's own chain, here from AWS_* variables.
		// Shared files and instance metadata are switched off so the test
		// reads nothing from the machine and sends nothing off loopback.
		t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_PROFILE", "")
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		b, err := s3drop.New(ctx, s3drop.Options{
			Bucket: bucketName, Prefix: "drops/d81001", Pattern: "*.csv",
			Endpoint: g.endpoint, PathStyle: true,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := b.Find(ctx)
		if err != nil || obj.Key != key {
			t.Fatalf("Find = %+v, %v", obj, err)
		}
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-wrong-wrong")
		b, err = s3drop.New(ctx, s3drop.Options{Bucket: bucketName, Pattern: "*", Endpoint: g.endpoint, PathStyle: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Find(ctx); !errors.Is(err, s3drop.ErrCredentials) || !strings.Contains(err.Error(), "credential chain") {
			t.Errorf("Find error = %v, want ErrCredentials naming the credential chain", err)
		}
	})
}

func TestNoBucket(t *testing.T) {
	g := startGateway(t)
	g.createBucket(t, bucketName)
	b := newBucket(t, g, s3drop.Options{Bucket: "careindex-nope", Prefix: "drops", Pattern: "*.csv"})
	ctx := context.Background()
	_, findErr := b.Find(ctx)
	_, openErr := b.Open(ctx, "drops/x.csv")
	_, hashErr := b.Hash(ctx, "drops/x.csv")
	for op, err := range map[string]error{"Find": findErr, "Open": openErr, "Hash": hashErr} {
		if !errors.Is(err, s3drop.ErrNoBucket) {
			t.Errorf("%s error = %v, want ErrNoBucket", op, err)
			continue
		}
		if !strings.Contains(err.Error(), "careindex-nope") || !strings.Contains(err.Error(), g.endpoint) {
			t.Errorf("%s error %q does not name the bucket and endpoint", op, err)
		}
		if errors.Is(err, s3drop.ErrCredentials) {
			t.Errorf("%s error %q also says credentials", op, err)
		}
	}
}
