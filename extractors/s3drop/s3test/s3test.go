// Package s3test runs a real S3-compatible server for tests: versitygw with
// its posix backend, on a free loopback port, with SigV4 signature checking
// on. Nothing is mocked, so a wrong secret is rejected by the server's own
// signature check, exactly as a real store would reject it.
//
// The versitygw binary is $CAREINDEX_VERSITYGW, or the one .ci/versitygw.sh
// builds into ${CAREINDEX_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/careindex-tools/bin}.
// [Start] fails the test, never skips it, when there is none, saying how to
// build it:
//
//	export CAREINDEX_VERSITYGW="$(.ci/versitygw.sh)"
//
// A typical test:
//
//	srv := s3test.Start(t)
//	srv.CreateBucket(t, "drops")
//	srv.Put(t, "drops", "d81001/patients_20261124.csv", data)
//	// point the code under test at srv.Endpoint() (path-style addressing,
//	// region s3test.Region) with srv.AccessKey and srv.SecretKey.
//
// The server is stopped and its files removed when the test ends.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	// DefaultAccessKey and DefaultSecretKey are the root credentials every
	// Server starts with (Server.AccessKey and Server.SecretKey). The secret
	// is distinctive so that tests can check it is never printed.
	DefaultAccessKey = "careindextestroot"
	DefaultSecretKey = "careindex-test-secret-do-not-print-3f9a"
	// Region is the region the server signs for; it is s3drop's default.
	Region = "eu-west-2"
)

// hint says how to get the binary.
const hint = "build it (once: a few minutes with a cold module cache; cached outside the repository) with `.ci/versitygw.sh`, " +
	"or run `export CAREINDEX_VERSITYGW=\"$(.ci/versitygw.sh)\"` from the repository root before `go test`"

// Server is a running versitygw.
type Server struct {
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey, SecretKey string
	// Root is the posix backend's directory: bucket/key is the file
	// Root/bucket/key.
	Root string

	endpoint string
	client   *s3.Client
}

// Endpoint returns the server's URL, such as "http://127.0.0.1:40123". The
// server needs path-style addressing (endpoint/bucket/key).
func (s *Server) Endpoint() string { return s.endpoint }

// Client returns an S3 client signed with the root credentials.
func (s *Server) Client() *s3.Client { return s.client }

// Binary returns the path of the versitygw binary, failing the test when
// there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CAREINDEX_VERSITYGW"); p != "" {
		if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			t.Fatalf("s3test: CAREINDEX_VERSITYGW=%s is not an executable file (%v); %s", p, err, hint)
		}
		return p
	}
	dir := os.Getenv("CAREINDEX_TOOLS_BIN")
	if dir == "" {
		cache, err := os.UserCacheDir() // $XDG_CACHE_HOME, else $HOME/.cache
		if err != nil {
			t.Fatalf("s3test: versitygw: no cache directory (%v); set CAREINDEX_VERSITYGW or %s", err, hint)
		}
		dir = filepath.Join(cache, "careindex-tools", "bin")
	}
	p := filepath.Join(dir, "versitygw")
	if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("s3test: the S3 test server versitygw is missing: %s not found and CAREINDEX_VERSITYGW not set; %s", p, hint)
	}
	return p
}

// Start starts versitygw on a free loopback port over a new directory,
// waits until it answers, and stops it when the test ends (t.Cleanup). On
// failure the server's output is logged.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	root := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		out := &lockedBuffer{}
		cmd := exec.Command(bin, "--port", addr, "--region", Region, "posix", root)
		cmd.Env = append(serverEnv(), "ROOT_ACCESS_KEY="+DefaultAccessKey, "ROOT_SECRET_KEY="+DefaultSecretKey)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("s3test: start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if err := waitReady(addr, exited, 20*time.Second); err != nil {
			stop()
			lastErr = fmt.Errorf("versitygw on %s: %v\noutput:\n%s", addr, err, out.String())
			continue // most likely the port was taken in between: try another
		}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("s3test: versitygw output:\n%s", out.String())
			}
		})
		s := &Server{AccessKey: DefaultAccessKey, SecretKey: DefaultSecretKey, Root: root, endpoint: "http://" + addr}
		s.client = s3.New(s3.Options{
			Region:       Region,
			BaseEndpoint: aws.String(s.endpoint),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		})
		return s
	}
	t.Fatalf("s3test: could not start versitygw: %v", lastErr)
	return nil
}

// CreateBucket creates a bucket through the S3 API.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	_, err := s.client.CreateBucket(context.Background(), &s3.CreateBucketInput{
		Bucket: aws.String(name),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(Region),
		},
	})
	if err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

// Put uploads body as bucket/key.
func (s *Server) Put(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	s.PutReader(t, bucket, key, bytes.NewReader(body), int64(len(body)))
}

// PutReader uploads size bytes of body as bucket/key without holding them
// in memory. body must be seekable so that the request can be signed over
// plain HTTP.
func (s *Server) PutReader(t testing.TB, bucket, key string, body io.ReadSeeker, size int64) {
	t.Helper()
	_, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		t.Fatalf("s3test: put %s/%s: %v", bucket, key, err)
	}
}

// serverEnv is the environment without variables that would configure
// versitygw behind the test's back.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ROOT_") || strings.HasPrefix(kv, "VGW_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady polls addr until it answers HTTP, the process exits, or the
// timeout passes.
func waitReady(addr string, exited <-chan error, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before answering: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil // any HTTP answer (403 for an anonymous request) will do
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %v", timeout)
}

// lockedBuffer collects a process's output (the first MiB) for diagnostics.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
