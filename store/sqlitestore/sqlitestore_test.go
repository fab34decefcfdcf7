package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite" // registers "sqlite" for direct inspection of files

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// helperEnv makes the test binary act as a second process writing to the
// same files (see TestSecondProcess).
const helperEnv = "SQLITESTORE_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helper(spec))
	}
	goleak.VerifyTestMain(m)
}

// helper writes n documents "child/<i>" for one tenant; spec is
// "dir|id|n".
func helper(spec string) int {
	parts := strings.SplitN(spec, "|", 3)
	dir, id, nStr := parts[0], parts[1], parts[2]
	n, _ := strconv.Atoi(nStr)
	s, err := sqlitestore.Open(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	for i := range n {
		if err := s.Put(context.Background(), tenant.ID(id), "child/"+strconv.Itoa(i), []byte("c")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func setup(t *testing.T, o *sqlitestore.Options) (*sqlitestore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlitestore.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Backend {
		s, err := sqlitestore.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestContractSmallCache(t *testing.T) {
	t.Parallel()
	// With one open handle every tenant switch evicts: the contract must
	// still hold.
	storetest.Run(t, func(t *testing.T) store.Backend {
		s, err := sqlitestore.Open(t.TempDir(), &sqlitestore.Options{MaxOpen: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReadsDoNotCreateFiles(t *testing.T) {
	t.Parallel()
	s, dir := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	if _, err := s.Get(ctx, id, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	if keys, err := s.List(ctx, id, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List: %q %v, want empty", keys, err)
	}
	if err := s.Delete(ctx, id, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete: %v, want ErrNotFound", err)
	}
	if s.Exists(id) {
		t.Fatal("Exists after reads = true")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("reads created files: %v", ents)
	}
	if err := s.Put(ctx, id, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if !s.Exists(id) {
		t.Fatal("Exists after Put = false")
	}
	if _, err := os.Stat(filepath.Join(dir, string(id)+".db")); err != nil {
		t.Fatalf("tenant file not named <id>.db: %v", err)
	}
	if s.Path(id) != filepath.Join(dir, string(id)+".db") {
		t.Fatalf("Path = %s", s.Path(id))
	}
}

func TestProvision(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	for range 2 { // idempotent
		if err := s.Provision(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Exists(id) {
		t.Fatal("no file after Provision")
	}
	if err := s.Provision(ctx, "../x"); !errors.Is(err, tenant.ErrInvalidID) {
		t.Fatalf("Provision(bad id): %v", err)
	}
	if s.Exists("../x") {
		t.Fatal("Exists(bad id) = true")
	}
	// The file is migrated: documents exists and the version is recorded.
	err := s.InTx(ctx, id, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM documents`).Scan(&n); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT MAX(version) FROM tenantmcp_schema`).Scan(&v); err != nil {
			return err
		}
		if v != 1 {
			t.Errorf("schema version = %d, want 1", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigratesExistingFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id := tenant.NewID()
	// A file created by something else (an older version, the CLI) with
	// an unrelated table and no schema table.
	raw, err := sql.Open("sqlite", filepath.Join(dir, string(id)+".db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	s, err := sqlitestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if keys, err := s.List(ctx, id, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List on migrated file: %q %v", keys, err)
	}
	if err := s.Put(ctx, id, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	err = s.InTx(ctx, id, func(tx store.Tx) error {
		var body string
		if err := tx.QueryRow(ctx, `SELECT body FROM notes`).Scan(&body); err != nil {
			return err
		}
		if body != "kept" {
			t.Errorf("existing data = %q", body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	err := s.InTx(ctx, id, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, n INTEGER)`); err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `INSERT INTO notes (body, n) VALUES ($1, $2), ($3, $2)`, "first", 7, "second")
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("rows affected = %d, want 2", n)
		}
		var body string
		var sum int
		// $2 before $1, and $1 used twice.
		if err := tx.QueryRow(ctx, `SELECT body, n + $2 + $1 + $1 FROM notes WHERE body = $3`, 1, 100, "second").Scan(&body, &sum); err != nil {
			return err
		}
		if body != "second" || sum != 109 {
			t.Errorf("got %q %d, want second 109", body, sum)
		}
		rows, err := tx.Query(ctx, `SELECT body FROM notes WHERE n = $1 ORDER BY body`, 7)
		if err != nil {
			return err
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				return err
			}
			got = append(got, b)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !slices.Equal(got, []string{"first", "second"}) {
			t.Errorf("Query = %q", got)
		}
		err = tx.QueryRow(ctx, `SELECT body FROM notes WHERE n = $1`, -1).Scan(&body)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("QueryRow no row: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInTxRollback(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "keep", []byte("1")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.InTx(ctx, id, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO documents (key, content, updated_at) VALUES ($1, $2, 0)`, "gone", []byte("x")); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM documents WHERE key = $1`, "keep"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: %v, want boom", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in fn was swallowed")
			}
		}()
		s.InTx(ctx, id, func(tx store.Tx) error {
			tx.Exec(ctx, `DELETE FROM documents`)
			panic("fn panics")
		})
	}()
	keys, err := s.List(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"keep"}) {
		t.Fatalf("after rolled-back transactions keys = %q, want [keep]", keys)
	}
	// The handle is still usable (no connection left mid-transaction).
	if err := s.Put(ctx, id, "after", nil); err != nil {
		t.Fatal(err)
	}
}

func TestSQLIsolation(t *testing.T) {
	t.Parallel()
	s, dir := setup(t, nil)
	ctx := context.Background()
	a, b := tenant.NewID(), tenant.NewID()
	if err := s.Put(ctx, a, "secret", []byte("a-secret")); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx, b); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, b, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM documents`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("B sees %d documents", n)
		}
		for _, q := range []string{
			`ATTACH DATABASE '` + filepath.Join(dir, string(a)+".db") + `' AS other`,
			`ATTACH DATABASE 'file:` + filepath.Join(dir, string(a)+".db") + `?mode=ro' AS other`,
			`ATTACH DATABASE 'file:shared?mode=memory&cache=shared' AS other`,
			`VACUUM INTO '` + filepath.Join(dir, "copy.db") + `'`,
			`SELECT load_extension('` + filepath.Join(dir, "x.so") + `')`,
		} {
			if _, err := tx.Exec(ctx, q); err == nil {
				t.Errorf("%s: allowed, want refused", q)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "copy.db")); err == nil {
		t.Error("VACUUM INTO wrote a file")
	}
	if v, err := s.Get(ctx, a, "secret"); err != nil || string(v) != "a-secret" {
		t.Fatalf("A's data after B's attempts: %q %v", v, err)
	}
}

func TestEvictionWhileInUse(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, &sqlitestore.Options{MaxOpen: 2})
	ctx := context.Background()
	a := tenant.NewID()
	inside := make(chan struct{})
	proceed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, a, func(tx store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO documents (key, content, updated_at) VALUES ('in-tx', x'00', 0)`); err != nil {
				return err
			}
			close(inside)
			<-proceed
			// The handle was evicted meanwhile; it must still be open.
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM documents`).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("count = %d", n)
			}
			return nil
		})
	}()
	<-inside
	for range 5 { // evict a's handle several times over
		if err := s.Put(ctx, tenant.NewID(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.CachedHandles(); n > 2 {
		t.Fatalf("cache holds %d handles, MaxOpen 2", n)
	}
	// Another operation on a opens a fresh handle while the old one is
	// still in use; it must wait for the write lock, not fail.
	getDone := make(chan error, 1)
	go func() {
		_, err := s.Get(ctx, a, "in-tx")
		getDone <- err
	}()
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("transaction on evicted handle: %v", err)
	}
	if err := <-getDone; err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, a, "in-tx"); err != nil || string(v) != "\x00" {
		t.Fatalf("after commit: %q %v", v, err)
	}
}

func TestConcurrentTenants(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, &sqlitestore.Options{MaxOpen: 3})
	ctx := context.Background()
	ids := make([]tenant.ID, 8)
	for i := range ids {
		ids[i] = tenant.NewID()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				id := ids[(g+i)%len(ids)]
				key := fmt.Sprintf("g%02d/%02d", g, i)
				if err := s.Put(ctx, id, key, []byte(string(id))); err != nil {
					errs <- err
					return
				}
				v, err := s.Get(ctx, id, key)
				if err != nil || string(v) != string(id) {
					errs <- fmt.Errorf("Get %s: %q %v", key, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, id := range ids {
		keys, err := s.List(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			v, _ := s.Get(ctx, id, k)
			if string(v) != string(id) {
				t.Fatalf("tenant %s key %s holds %q", id, k, v)
			}
		}
		total += len(keys)
	}
	if total != 16*20 {
		t.Fatalf("stored %d documents, want %d", total, 16*20)
	}
	if n := s.CachedHandles(); n > 3 {
		t.Fatalf("cache holds %d handles, MaxOpen 3", n)
	}
}

func TestTwoStoresSameDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	id := tenant.NewID()
	var wg sync.WaitGroup
	for w := range 2 {
		s, err := sqlitestore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Go(func() {
			for i := range 50 {
				if err := s.Put(ctx, id, fmt.Sprintf("w%d/%d", w, i), []byte("x")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s, err := sqlitestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys, err := s.List(ctx, id, "")
	if err != nil || len(keys) != 100 {
		t.Fatalf("List: %d keys, %v; want 100", len(keys), err)
	}
}

func TestSecondProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	s, dir := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir+"|"+string(id)+"|200")
	out := make(chan error, 1)
	var stderr []byte
	go func() {
		var err error
		stderr, err = cmd.CombinedOutput()
		out <- err
	}()
	for i := range 200 {
		if err := s.Put(ctx, id, "parent/"+strconv.Itoa(i), []byte("p")); err != nil {
			t.Fatalf("parent Put while child writes: %v", err)
		}
	}
	if err := <-out; err != nil {
		t.Fatalf("child process: %v: %s", err, stderr)
	}
	for _, p := range []string{"child/", "parent/"} {
		keys, err := s.List(ctx, id, p)
		if err != nil || len(keys) != 200 {
			t.Fatalf("List(%s): %d keys, %v; want 200", p, len(keys), err)
		}
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, id, "k"); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := s.Put(ctx, id, "k", nil); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := s.InTx(ctx, id, func(store.Tx) error { return nil }); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Fatalf("InTx after Close: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "k", []byte("v")); err == nil {
		t.Fatal("Put with cancelled context succeeded")
	}
	if _, err := s.Get(context.Background(), id, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("value written despite cancelled Put: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := sqlitestore.Open("", nil); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := sqlitestore.Open(t.TempDir(), &sqlitestore.Options{MaxOpen: -1}); err == nil {
		t.Error("negative MaxOpen accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := sqlitestore.Open(f, nil); err == nil {
		t.Error("Open on a regular file succeeded")
	}
}
