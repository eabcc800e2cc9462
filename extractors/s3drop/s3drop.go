package s3drop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultRegion is the region used when Options.Region is empty.
const DefaultRegion = "eu-west-2"

// Options says where a source's deliveries are and how to reach them.
type Options struct {
	// Bucket is the bucket name (required).
	Bucket string
	// Prefix is the "folder" the deliveries are dropped in, such as
	// "drops/d81001" (a trailing "/" is added when missing). Empty means the
	// top of the bucket. Only keys directly under it are considered.
	Prefix string
	// Pattern is a glob (path.Match syntax, for example "patients_*.csv")
	// matched against each key's base name (required; it may not contain
	// "/").
	Pattern string
	// Endpoint is the URL of an S3-compatible store, such as
	// "https://s3.example.nhs.uk" or "http://127.0.0.1:7070". Empty means
	// AWS S3 for Region.
	Endpoint string
	// Region is the signing region. Empty means DefaultRegion ("eu-west-2").
	Region string
	// PathStyle addresses the bucket in the URL path (endpoint/bucket/key)
	// instead of as a host name (bucket.endpoint/key). Most S3-compatible
	// stores need it.
	PathStyle bool
	// AccessKeyEnv and SecretKeyEnv name the environment variables holding
	// static credentials (an access key id and a secret access key). Both
	// or neither must be set; with neither, the standard AWS credential
	// chain is used.
	AccessKeyEnv, SecretKeyEnv string
	// ListPageSize is the number of keys asked for per ListObjectsV2
	// request. Zero leaves it to the store (1000 on AWS).
	ListPageSize int32
}

// Object describes one delivered object.
type Object struct {
	// Key is the object's full key, such as "drops/d81001/patients_20261124.csv".
	Key string
	// Name is the key's base name: the part after the last "/".
	Name string
	// Size is the object's size in bytes.
	Size int64
	// ETag is the entity tag as the store reports it, without quotes. It is
	// not a content hash that can be compared with Hash's (for multipart
	// uploads it is not an MD5 of the content at all).
	ETag string
	// LastModified is when the object was stored.
	LastModified time.Time
}

// Bucket reads deliveries from one bucket and prefix. It is safe for
// concurrent use.
type Bucket struct {
	opts   Options
	prefix string // Prefix with a trailing "/", or ""
	client *s3.Client
}

// New checks opts and returns a Bucket. lookupEnv reads the environment
// variables named by opts.AccessKeyEnv and opts.SecretKeyEnv (the CLI passes
// os.LookupEnv); it may be nil when they are empty. New does not contact the
// store: a wrong endpoint, bucket or credentials show up in Find, Open or
// Hash.
func New(ctx context.Context, opts Options, lookupEnv func(string) (string, bool)) (*Bucket, error) {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	b := &Bucket{opts: opts}
	what := "s3://" + opts.Bucket
	if opts.Bucket == "" {
		return nil, fmt.Errorf("s3: bucket is required: %w", ErrBadOptions)
	}
	if strings.ContainsRune(opts.Bucket, '/') {
		return nil, fmt.Errorf("s3: bucket %q: a bucket name cannot contain \"/\" (put folders in the prefix): %w", opts.Bucket, ErrBadOptions)
	}
	if opts.Pattern == "" {
		return nil, fmt.Errorf("%s: pattern is required: %w", what, ErrBadOptions)
	}
	if strings.ContainsRune(opts.Pattern, '/') {
		return nil, fmt.Errorf("%s: pattern %q: must match names, not paths (put folders in the prefix): %w", what, opts.Pattern, path.ErrBadPattern)
	}
	if _, err := path.Match(opts.Pattern, ""); err != nil {
		return nil, fmt.Errorf("%s: pattern %q: %w", what, opts.Pattern, err)
	}
	b.prefix = strings.TrimLeft(opts.Prefix, "/")
	if b.prefix != "" && !strings.HasSuffix(b.prefix, "/") {
		b.prefix += "/"
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: endpoint %q: want an http:// or https:// URL: %w", what, opts.Endpoint, ErrBadOptions)
		}
		if u.User != nil {
			return nil, fmt.Errorf("%s: endpoint: must not carry credentials in the URL: %w", what, ErrBadOptions)
		}
	}
	if opts.ListPageSize < 0 {
		return nil, fmt.Errorf("%s: list page size %d: %w", what, opts.ListPageSize, ErrBadOptions)
	}

	load := []func(*config.LoadOptions) error{config.WithRegion(opts.Region)}
	switch {
	case opts.AccessKeyEnv == "" && opts.SecretKeyEnv == "":
		// The standard credential chain.
	case opts.AccessKeyEnv == "" || opts.SecretKeyEnv == "":
		return nil, fmt.Errorf("%s: access_key_env and secret_key_env must be set together: %w", what, ErrBadOptions)
	default:
		if lookupEnv == nil {
			return nil, fmt.Errorf("%s: no environment lookup given for $%s and $%s: %w", what, opts.AccessKeyEnv, opts.SecretKeyEnv, ErrBadOptions)
		}
		var missing []string
		ak, ok := lookupEnv(opts.AccessKeyEnv)
		if !ok || ak == "" {
			missing = append(missing, "$"+opts.AccessKeyEnv)
		}
		sk, ok := lookupEnv(opts.SecretKeyEnv)
		if !ok || sk == "" {
			missing = append(missing, "$"+opts.SecretKeyEnv)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s: environment variable %s not set or empty: %w", what, strings.Join(missing, " and "), ErrNoCredentials)
		}
		load = append(load, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("%s: load AWS configuration: %w", what, err)
	}
	b.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	return b, nil
}

// Options returns the options the Bucket was made with, Region filled in.
func (b *Bucket) Options() Options { return b.opts }

// String names the bucket and prefix as s3://bucket/prefix/.
func (b *Bucket) String() string { return "s3://" + b.opts.Bucket + "/" + b.prefix }

// Find returns the newest object directly under the prefix whose base name
// matches the pattern (see the package documentation). It lists every page.
// When nothing matches, the error wraps ErrNoDelivery and names the bucket,
// prefix and pattern.
func (b *Bucket) Find(ctx context.Context) (Object, error) {
	return b.find(ctx, nil)
}

// find is Find, also passing over the names skip reports (nil skips none).
func (b *Bucket) find(ctx context.Context, skip func(name string) bool) (Object, error) {
	var best Object
	found := false
	err := b.each(ctx, func(obj Object) {
		if strings.HasPrefix(obj.Name, ".") && !strings.HasPrefix(b.opts.Pattern, ".") {
			return
		}
		if ok, _ := path.Match(b.opts.Pattern, obj.Name); !ok {
			return
		}
		if skip != nil && skip(obj.Name) {
			return
		}
		if !found || newer(obj, best) {
			best, found = obj, true
		}
	})
	if err != nil {
		return Object{}, err
	}
	if !found {
		return Object{}, fmt.Errorf("%s: no object matches %q: %w", b.String(), b.opts.Pattern, ErrNoDelivery)
	}
	return best, nil
}

// Open returns the body of the object at key as a stream. The caller must
// Close it. Reading stops with an error once ctx is cancelled.
func (b *Bucket) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := b.get(ctx, key)
	if err != nil {
		return nil, err
	}
	return &body{rc: rc, what: b.objectURL(key)}, nil
}

// get starts a GetObject and returns the raw body.
func (b *Bucket) get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(b.opts.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, b.classify(b.objectURL(key), "get", err)
	}
	return out.Body, nil
}

// Hash returns the hex SHA-256 of the object at key, streaming its body.
// It equals folder.Hash of the same bytes in a file.
func (b *Bucket) Hash(ctx context.Context, key string) (string, error) {
	rc, err := b.get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxReader{ctx: ctx, r: rc}, make([]byte, copyBuffer)); err != nil {
		return "", fmt.Errorf("%s: hash: %w", b.objectURL(key), err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyBuffer is the buffer size for hashing and spooling.
const copyBuffer = 1 << 20

func (b *Bucket) objectURL(key string) string {
	return "s3://" + b.opts.Bucket + "/" + key
}

// body wraps an object body so that read errors name the object.
type body struct {
	rc   io.ReadCloser
	what string
}

func (r *body) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: read: %w", r.what, err)
	}
	return n, err
}

func (r *body) Close() error { return r.rc.Close() }

// ctxReader is an io.Reader that fails once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
