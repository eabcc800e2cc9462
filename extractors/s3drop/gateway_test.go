package s3drop_test

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

// The tests run against a real S3-compatible server, versitygw with its
// posix backend, on loopback, with SigV4 signature checking on. Nothing is
// mocked: a wrong secret is rejected by the server's own signature check.

const (
	testAccessKey = "careindextestroot"
	testSecretKey = "careindex-test-secret-do-not-print-3f9a"
	testRegion    = "eu-west-2" // the package default, so tests leave Region empty
)

// versitygwBinary returns the path of the versitygw binary: $CAREINDEX_VERSITYGW,
// or the cache .ci/versitygw.sh builds into. It fails the test, never skips
// it, when there is none.
func versitygwBinary(t *testing.T) string {
	t.Helper()
	const hint = "build it (once: a few minutes with a cold module cache; cached outside the repository) with `.ci/versitygw.sh`, " +
		"or run `export CAREINDEX_VERSITYGW=\"$(.ci/versitygw.sh)\"` from the repository root before `go test`"
	if p := os.Getenv("CAREINDEX_VERSITYGW"); p != "" {
		if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			t.Fatalf("CAREINDEX_VERSITYGW=%s is not an executable file (%v); %s", p, err, hint)
		}
		return p
	}
	dir := os.Getenv("CAREINDEX_TOOLS_BIN")
	if dir == "" {
		cache, err := os.UserCacheDir() // $XDG_CACHE_HOME, else $HOME/.cache
		if err != nil {
			t.Fatalf("versitygw: no cache directory (%v); set CAREINDEX_VERSITYGW or %s", err, hint)
		}
		dir = filepath.Join(cache, "careindex-tools", "bin")
	}
	p := filepath.Join(dir, "versitygw")
	if info, err := os.Stat(p); err != nil || info.Mode()&0o111 == 0 {
		t.Fatalf("the S3 test server versitygw is missing: %s not found and CAREINDEX_VERSITYGW not set; %s", p, hint)
	}
	return p
}

// gateway is a running versitygw.
type gateway struct {
	endpoint string
	root     string // the posix backend's directory
	admin    *s3.Client
}

// lockedBuffer collects a process's output for diagnostics.
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

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGateway starts versitygw on a free loopback port over a new
// directory, waits until it answers, and stops it when the test ends.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	bin := versitygwBinary(t)
	root := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		out := &lockedBuffer{}
		cmd := exec.Command(bin, "--port", addr, "--region", testRegion, "posix", root)
		cmd.Env = append(gatewayEnv(), "ROOT_ACCESS_KEY="+testAccessKey, "ROOT_SECRET_KEY="+testSecretKey)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
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
				t.Logf("versitygw output:\n%s", out.String())
			}
		})
		g := &gateway{endpoint: "http://" + addr, root: root}
		g.admin = s3.New(s3.Options{
			Region:       testRegion,
			BaseEndpoint: aws.String(g.endpoint),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		})
		return g
	}
	t.Fatalf("could not start versitygw: %v", lastErr)
	return nil
}

// gatewayEnv is the test's environment without variables that would
// configure versitygw behind the test's back.
func gatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ROOT_") || strings.HasPrefix(kv, "VGW_") {
			continue
		}
		env = append(env, kv)
	}
	return env
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

// createBucket creates a bucket through the S3 API.
func (g *gateway) createBucket(t *testing.T, name string) {
	t.Helper()
	_, err := g.admin.CreateBucket(context.Background(), &s3.CreateBucketInput{
		Bucket: aws.String(name),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(testRegion),
		},
	})
	if err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// put uploads body (which must be seekable, so it can be signed over
// plain HTTP) as bucket/key.
func (g *gateway) put(t *testing.T, bucket, key string, body io.ReadSeeker, size int64) {
	t.Helper()
	_, err := g.admin.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func (g *gateway) putString(t *testing.T, bucket, key, body string) {
	t.Helper()
	g.put(t, bucket, key, strings.NewReader(body), int64(len(body)))
}

// env is a lookup function over a fixed map, standing in for os.LookupEnv.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// goodEnv holds the right credentials under the names the tests use.
var goodEnv = env(map[string]string{"DROP_ACCESS_KEY": testAccessKey, "DROP_SECRET_KEY": testSecretKey})
