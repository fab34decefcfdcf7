package sqlitestore_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

// Two handles on one file, as the server and the CLI have.
func TestWatchContract(t *testing.T) {
	t.Parallel()
	registrytest.RunWatcher(t, func(t *testing.T) (registry.Store, registry.Store) {
		path := filepath.Join(t.TempDir(), "registry.db")
		return open(t, path), open(t, path)
	})
}

// A CLI process writes while the server watches: every tenant it adds is
// reported.
func TestWatchAnotherProcess(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	c := registrytest.Watch(t, open(t, path))
	c.Ready(t)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SQLITESTORE_CHILD="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for len(seen) < perProcess {
		if ch := c.Next(t); ch.Issuer == childIssuer {
			seen[ch.ExternalID] = true
		}
	}
}

// rawDB opens the registry file without the store, to write behind its
// back.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// More changes between two looks than the change log keeps: the watcher
// reports that anything may have changed, then carries on.
func TestWatchFallsBehind(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := open(t, path)
	c := registrytest.Watch(t, s)
	c.Ready(t)
	// 1500 tenants in one transaction: the watcher cannot look between.
	if _, err := rawDB(t, path).Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
		INSERT INTO tenants (id, issuer, external_id, status, created_at, updated_at)
		SELECT printf('t%020d', i), 'https://bulk.example.com/', 'org_' || i, 'active', 0, 0 FROM n`); err != nil {
		t.Fatal(err)
	}
	if got := c.Next(t); !got.All {
		t.Fatalf("after 1500 changes at once: reported %+v, want All", got)
	}
	c.ExpectCreate(t, s, "org_after")
	var n int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM tenant_changes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1000 {
		t.Errorf("the change log holds %d changes, want the last 1000", n)
	}
}

// A change log that restarts (emptied, its sequence reset) is taken as a
// change of any tenant.
func TestWatchLogReset(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := open(t, path)
	for _, ext := range []string{"org_1", "org_2"} {
		if err := s.Create(context.Background(), registrytest.Record("https://idp.example.com/", ext)); err != nil {
			t.Fatal(err)
		}
	}
	c := registrytest.Watch(t, s)
	c.Ready(t)
	if _, err := rawDB(t, path).Exec(`DELETE FROM tenant_changes; DELETE FROM sqlite_sequence WHERE name = 'tenant_changes'`); err != nil {
		t.Fatal(err)
	}
	if got := c.Next(t); !got.All {
		t.Fatalf("after the log was reset: reported %+v, want All", got)
	}
}
