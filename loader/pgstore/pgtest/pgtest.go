// Package pgtest gives tests a database of their own on the local
// PostgreSQL server. The server is found through CAREINDEX_TEST_PG_DSN
// (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
// A test that cannot reach it fails with instructions; it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq" // the postgres driver
)

// AdminDSN returns the DSN of the maintenance database.
func AdminDSN() string {
	if v := os.Getenv("CAREINDEX_TEST_PG_DSN"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Admin opens the maintenance database or fails the test.
func Admin(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", AdminDSN())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("pgtest: PostgreSQL is not reachable at %s: %v\n"+
			"Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
			"(or set CAREINDEX_TEST_PG_DSN); .ci/run starts it for you.", redact(AdminDSN()), err)
	}
	return db
}

// NewDatabase creates an empty database for the test, dropped when the
// test ends, and returns its DSN.
func NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	admin := Admin(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := fmt.Sprintf("%s_%s", prefix, hex.EncodeToString(b))
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		admin.Close()
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Logf("pgtest: dropping database %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(AdminDSN())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// EnsureDatabase creates the named database if it does not exist and
// returns its DSN. It is for databases shared by tests, such as the
// fixture export database; it is not dropped.
func EnsureDatabase(t testing.TB, name string) string {
	t.Helper()
	admin := Admin(t)
	defer admin.Close()
	var exists bool
	if err := admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if !exists {
		if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
			// Another test package may have created it meanwhile.
			if err2 := admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err2 != nil || !exists {
				t.Fatalf("pgtest: creating database %s: %v", name, err)
			}
		}
	}
	u, err := url.Parse(AdminDSN())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
