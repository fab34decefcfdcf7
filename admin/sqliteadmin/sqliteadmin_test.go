package sqliteadmin_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/admin/admintest"
	"github.com/tenantmcp/tenantmcp/admin/sqliteadmin"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) {
	if path := os.Getenv("SQLITEADMIN_CHILD"); path != "" {
		os.Exit(child(path))
	}
	goleak.VerifyTestMain(m)
}

// open opens the file at path for the test, which closes it at its end.
func open(t testing.TB, path string) *sqliteadmin.Store {
	t.Helper()
	s, err := sqliteadmin.Open(path, nil)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() { noError(t, s.Close()) })
	return s
}

func noError(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}

// TestContract runs the suite on a new file per subtest.
func TestContract(t *testing.T) {
	t.Parallel()
	admintest.Run(t, func(t *testing.T) admin.Store { return open(t, filepath.Join(t.TempDir(), "registry.db")) })
}

// versions returns the rows of a version table of the file at path.
func versions(t *testing.T, path, table string) []int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT version FROM ` + table + ` ORDER BY version`)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The admin store and the registry's store open one new file at once
// (the server and a CLI starting together), each migrating its own
// tables; both then work on it side by side.
func TestBesideRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	const n = 4
	var (
		wg      sync.WaitGroup
		admins  [n]*sqliteadmin.Store
		regs    [n]*sqlitestore.Store
		errs    [2 * n]error
		cleanup []func() error
	)
	for i := range n {
		wg.Go(func() { admins[i], errs[i] = sqliteadmin.Open(path, nil) })
		wg.Go(func() { regs[i], errs[n+i] = sqlitestore.Open(path, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
	}
	for i := range n {
		cleanup = append(cleanup, admins[i].Close, regs[i].Close)
	}
	defer func() {
		for _, c := range cleanup {
			noError(t, c())
		}
	}()

	// Writes of both, interleaved from several goroutines.
	var created [n]*registry.Tenant
	grants := make([]*admin.Impersonation, n)
	for i := range n {
		wg.Go(func() {
			created[i] = registrytest.Record("https://idp.example.com/", "org_"+strconv.Itoa(i))
			if err := regs[i].Create(ctx, created[i]); err != nil {
				t.Errorf("registry Create: %v", err)
				return
			}
			grants[i] = admintest.Grant(created[i].ID, "admin-"+strconv.Itoa(i))
			if err := admins[(i+1)%n].CreateImpersonation(ctx, grants[i]); err != nil {
				t.Errorf("CreateImpersonation: %v", err)
			}
			if _, _, err := admins[i].ClaimIdempotencyKey(ctx, "key-"+strconv.Itoa(i), admin.RequestHash{}, time.Now()); err != nil {
				t.Errorf("ClaimIdempotencyKey: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all, err := registry.New(regs[2], nil).List(ctx)
	if err != nil || len(all) != n {
		t.Errorf("registry lists %d tenants, %v; want %d", len(all), err, n)
	}
	for i, g := range grants {
		got, err := admins[(i+2)%n].Impersonation(ctx, g.ID)
		if err != nil || got.Tenant != created[i].ID {
			t.Errorf("grant %d through another handle = %+v, %v", i, got, err)
		}
	}
	// The registry's versions are those of a file it has to itself.
	alone := filepath.Join(t.TempDir(), "alone.db")
	reg, err := sqlitestore.Open(alone, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := versions(t, path, "schema_version"), versions(t, alone, "schema_version"); !slices.Equal(got, want) {
		t.Errorf("the registry's versions = %v, want %v: the admin store touched them", got, want)
	}
	if got := versions(t, path, sqliteadmin.VersionTable); len(got) != 1 || got[0] != 1 {
		t.Errorf("the admin versions = %v, want [1] (applied once)", got)
	}
}

// Two Stores on one file (the server and the CLI) see each other's
// writes at once.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	a, b := open(t, path), open(t, path)
	g := admintest.Grant(tenant.NewID(), "admin-1")
	if err := a.CreateImpersonation(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ImpersonationByToken(ctx, g.TokenHash); err != nil || got.ID != g.ID {
		t.Fatalf("the other store: %+v, %v", got, err)
	}
	if _, err := b.EndImpersonation(ctx, g.ID, "admin-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Impersonation(ctx, g.ID); err != nil || got.EndedBy != "admin-2" {
		t.Errorf("ended through the other store: %+v, %v", got, err)
	}
	if page, err := a.ListImpersonations(ctx, admin.ImpersonationFilter{ActiveAt: time.Now()}); err != nil || len(page) != 0 {
		t.Errorf("active grants after the other store ended it: %d, %v", len(page), err)
	}
	if _, claimed, err := a.ClaimIdempotencyKey(ctx, "k", admin.RequestHash{1}, time.Now()); err != nil || !claimed {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	if _, claimed, err := b.ClaimIdempotencyKey(ctx, "k", admin.RequestHash{2}, time.Now()); err != nil || claimed {
		t.Errorf("claim through the other store: claimed = %v, %v; want false", claimed, err)
	}
	id := tenant.NewID()
	if err := b.CompleteIdempotencyKey(ctx, "k", id); err != nil {
		t.Fatal(err)
	}
	if rec, _, err := a.ClaimIdempotencyKey(ctx, "k", admin.RequestHash{1}, time.Now()); err != nil || rec.Tenant != id {
		t.Errorf("completed through the other store: %+v, %v", rec, err)
	}
}

const contested = 60

var (
	parentHash = admin.RequestHash(sha256.Sum256([]byte("parent")))
	childHash  = admin.RequestHash(sha256.Sum256([]byte("child")))
)

// child is the other process of TestTwoProcesses: it claims the
// contested keys and prints how many it won.
func child(path string) int {
	s, err := sqliteadmin.Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	won, err := claimAll(s, childHash)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(won)
	return 0
}

// claimAll claims the contested keys with h, creating a grant between
// claims, and counts the claims it won.
func claimAll(s *sqliteadmin.Store, h admin.RequestHash) (int, error) {
	ctx := context.Background()
	won := 0
	for i := range contested {
		_, claimed, err := s.ClaimIdempotencyKey(ctx, "key-"+strconv.Itoa(i), h, time.Now())
		if err != nil {
			return 0, fmt.Errorf("claim %d: %w", i, err)
		}
		if claimed {
			won++
		}
		if err := s.CreateImpersonation(ctx, admintest.Grant(tenant.NewID(), fmt.Sprintf("%x", h[:4]))); err != nil {
			return 0, fmt.Errorf("create %d: %w", i, err)
		}
	}
	return won, nil
}

// Two processes claim the same keys at once: each key is won once, by
// the process whose request it then records.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SQLITEADMIN_CHILD="+path)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	parentWon, err := claimAll(s, parentHash)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v\n%s", err, stderr.String())
	}
	childWon, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("child output %q: %v", stdout.String(), err)
	}
	if parentWon+childWon != contested {
		t.Errorf("parent won %d and child %d claims of %d keys; want %d in all", parentWon, childWon, contested, contested)
	}
	ctx := context.Background()
	byHash := map[admin.RequestHash]int{}
	for i := range contested {
		rec, claimed, err := s.ClaimIdempotencyKey(ctx, "key-"+strconv.Itoa(i), admin.RequestHash{}, time.Now())
		if err != nil || claimed {
			t.Fatalf("key %d: claimed = %v, %v; want it recorded", i, claimed, err)
		}
		byHash[rec.Request]++
	}
	if byHash[parentHash] != parentWon || byHash[childHash] != childWon {
		t.Errorf("records: %d of the parent's request, %d of the child's; they won %d and %d", byHash[parentHash], byHash[childHash], parentWon, childWon)
	}
	page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Limit: admin.MaxPageSize})
	if err != nil || len(page) != 2*contested {
		t.Errorf("%d grants listed, %v; want %d", len(page), err, 2*contested)
	}
}

func TestReopenKeepsRecordsAndPrivateFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "registry.db")
	g := admintest.Grant(tenant.NewID(), "admin-1")
	if s, err := sqliteadmin.Open(path, nil); err != nil {
		t.Fatal(err)
	} else {
		noError(t, s.CreateImpersonation(ctx, g))
		noError(t, s.Close())
	}
	// Private from the start: the file and the directories made for it.
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700, filepath.Dir(filepath.Dir(path)): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %v, want %v", p, got, want)
		}
	}
	s2 := open(t, path) // migrations are not applied again
	if got, err := s2.Impersonation(ctx, g.ID); err != nil || got.Reason != g.Reason {
		t.Errorf("after reopen: %+v, %v", got, err)
	}
	if s2.Path() != path {
		t.Errorf("Path = %q, want %q", s2.Path(), path)
	}
	if got := versions(t, path, sqliteadmin.VersionTable); len(got) != 1 {
		t.Errorf("versions after reopen = %v, want one", got)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, open := range map[string]func() (*sqliteadmin.Store, error){
		"empty path": func() (*sqliteadmin.Store, error) { return sqliteadmin.Open("", nil) },
		"negative timeout": func() (*sqliteadmin.Store, error) {
			return sqliteadmin.Open(filepath.Join(dir, "a.db"), &sqliteadmin.Options{BusyTimeout: -1})
		},
		"negative conns": func() (*sqliteadmin.Store, error) {
			return sqliteadmin.Open(filepath.Join(dir, "b.db"), &sqliteadmin.Options{MaxConns: -1})
		},
		"not a database": func() (*sqliteadmin.Store, error) {
			p := filepath.Join(dir, "junk.db")
			if err := os.WriteFile(p, []byte(strings.Repeat("this is a text file, not a database. ", 10)), 0o600); err != nil {
				t.Fatal(err)
			}
			return sqliteadmin.Open(p, nil)
		},
	} {
		if s, err := open(); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

// A file migrated by a newer release is refused, not written to.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "registry.db")
	open(t, path)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO ` + sqliteadmin.VersionTable + ` (version, applied_at) VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	s, err := sqliteadmin.Open(path, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of a file at admin version 99 succeeded")
	}
	if !strings.Contains(err.Error(), "version 99") || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("error %q does not say the file is newer", err)
	}
}
