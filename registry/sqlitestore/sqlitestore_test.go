package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
)

func TestMain(m *testing.M) {
	if os.Getenv("SQLITESTORE_CHILD") != "" {
		os.Exit(child())
	}
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	registrytest.Run(t, func(t *testing.T) registry.Store {
		return open(t, filepath.Join(t.TempDir(), "registry.db"))
	})
}

func TestReopenKeepsRecordsAndPrivateFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "dir", "registry.db")
	s, err := sqlitestore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := registrytest.Record("https://idp.example.com/", "org_keep")
	if err := s.Create(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v, want 0600", perm)
	}
	s2 := open(t, path) // migrations are not re-applied
	got, err := s2.GetByID(context.Background(), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := registrytest.Diff(want, got); d != "" {
		t.Errorf("after reopen (-want +got):\n%s", d)
	}
	if s2.Path() != path {
		t.Errorf("Path = %q, want %q", s2.Path(), path)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := sqlitestore.Open("", nil); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	dir := t.TempDir()
	notDB := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(notDB, []byte("this is not a database, it is a text file of some length........................................................"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlitestore.Open(notDB, nil); err == nil {
		s.Close()
		t.Error("Open of a non-database file succeeded")
	}
}

// Several openers of a new file at once (as two processes starting
// together) all succeed and the schema is applied once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "registry.db")
	var wg sync.WaitGroup
	stores := make([]*sqlitestore.Store, 6)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = sqlitestore.Open(path, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	rec := registrytest.Record("https://idp.example.com/", "org_1")
	if err := stores[0].Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[5].GetByID(context.Background(), rec.ID); err != nil {
		t.Errorf("another handle does not see the record: %v", err)
	}
}

const (
	childIssuer  = "https://child.example.com/"
	parentIssuer = "https://parent.example.com/"
	perProcess   = 40
)

// child is the other process of TestTwoProcesses: it writes perProcess
// tenants and races the parent for contested keys.
func child() int {
	s, err := sqlitestore.Open(os.Getenv("SQLITESTORE_CHILD"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	if err := writeMany(s, childIssuer); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// writeMany creates perProcess tenants under issuer and tries to create
// the contested keys, counting wins in a tenant's name.
func writeMany(s *sqlitestore.Store, issuer string) error {
	ctx := context.Background()
	for i := range perProcess {
		if err := s.Create(ctx, registrytest.Record(issuer, "org_"+strconv.Itoa(i))); err != nil {
			return fmt.Errorf("create %d: %w", i, err)
		}
		err := s.Create(ctx, registrytest.Record("https://contested.example.com/", "org_"+strconv.Itoa(i)))
		if err != nil && !errors.Is(err, registry.ErrExists) {
			return fmt.Errorf("contested %d: %w", i, err)
		}
	}
	return nil
}

// A CLI process writes while the server process writes and reads: both
// succeed, nothing is lost, each contested key is won once.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SQLITESTORE_CHILD="+path)
	out := make(chan error, 1)
	var output []byte
	go func() {
		var err error
		output, err = cmd.CombinedOutput()
		out <- err
	}()
	s := open(t, path)
	if err := writeMany(s, parentIssuer); err != nil {
		t.Fatal(err)
	}
	if err := <-out; err != nil {
		t.Fatalf("child process: %v\n%s", err, output)
	}
	all, err := registry.New(s, nil).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range all {
		count[r.Issuer]++
	}
	if count[parentIssuer] != perProcess || count[childIssuer] != perProcess || count["https://contested.example.com/"] != perProcess {
		t.Errorf("records per issuer = %v, want %d each", count, perProcess)
	}
}
