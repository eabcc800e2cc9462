package s3drop_test

import (
	"io"
	"testing"

	"github.com/careindex/careindex/extractors/s3drop/s3test"
)

// The tests run against a real S3-compatible server, versitygw with its
// posix backend, on loopback, with SigV4 signature checking on (package
// s3test). Nothing is mocked: a wrong secret is rejected by the server's
// own signature check.

const (
	testAccessKey = s3test.DefaultAccessKey
	testSecretKey = s3test.DefaultSecretKey
)

// gateway is a running versitygw.
type gateway struct {
	*s3test.Server
	endpoint string
}

// startGateway starts versitygw and stops it when the test ends.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	s := s3test.Start(t)
	return &gateway{Server: s, endpoint: s.Endpoint()}
}

// createBucket creates a bucket through the S3 API.
func (g *gateway) createBucket(t *testing.T, name string) {
	t.Helper()
	g.CreateBucket(t, name)
}

// put uploads body (seekable, so it can be signed over plain HTTP) as
// bucket/key.
func (g *gateway) put(t *testing.T, bucket, key string, body io.ReadSeeker, size int64) {
	t.Helper()
	g.PutReader(t, bucket, key, body, size)
}

func (g *gateway) putString(t *testing.T, bucket, key, body string) {
	t.Helper()
	g.Put(t, bucket, key, []byte(body))
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
