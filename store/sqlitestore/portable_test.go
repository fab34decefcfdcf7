package sqlitestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestPortable(t *testing.T) {
	t.Parallel()
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s, err := sqlitestore.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, s
	})
}

// With a cache of one handle, every step evicts and reopens files.
func TestPortableSmallCache(t *testing.T) {
	t.Parallel()
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s, err := sqlitestore.Open(t.TempDir(), &sqlitestore.Options{MaxOpen: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s, s
	})
}

// tenantFiles lists the files in dir that belong to tenant id.
func tenantFiles(t *testing.T, dir string, id tenant.ID) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), string(id)) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPurgeRemovesEveryFile(t *testing.T) {
	t.Parallel()
	s, dir := setup(t, nil)
	ctx := context.Background()
	id, other := tenant.NewID(), tenant.NewID()
	for _, i := range []tenant.ID{id, other} {
		if err := s.Put(ctx, i, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// Leftovers of an interrupted import and a stale journal.
	for _, name := range []string{string(id) + ".import-0123456789abcdef.tmp", string(id) + ".db-journal"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("left behind"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := tenantFiles(t, dir, id); !slices.Contains(got, string(id)+".db-wal") {
		t.Fatalf("a tenant in use should have a WAL; files %q", got)
	}
	if err := s.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := tenantFiles(t, dir, id); len(got) != 0 {
		t.Fatalf("files left after Purge: %q", got)
	}
	if s.Exists(id) {
		t.Fatal("Exists after Purge = true")
	}
	if v, err := s.Get(ctx, other, "k"); err != nil || string(v) != "v" {
		t.Fatalf("other tenant after Purge: %q %v", v, err)
	}
	if got := tenantFiles(t, dir, other); !slices.Contains(got, string(other)+".db") {
		t.Fatalf("other tenant's files after Purge: %q", got)
	}
}

// Purge waits for a transaction using the file, and operations that start
// during the Purge wait for it and see the purged tenant.
func TestPurgeWaitsForUsers(t *testing.T) {
	t.Parallel()
	s, dir := setup(t, nil)
	ctx := context.Background()
	id := tenant.NewID()
	inside, proceed := make(chan struct{}), make(chan struct{})
	txDone := make(chan error, 1)
	go func() {
		txDone <- s.InTx(ctx, id, func(tx store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO documents (key, content, updated_at) VALUES ('in-tx', x'01', 0)`); err != nil {
				return err
			}
			close(inside)
			<-proceed
			return nil
		})
	}()
	<-inside
	purgeDone := make(chan error, 1)
	go func() { purgeDone <- s.Purge(ctx, id) }()
	for !sqlitestore.Held(s, id) {
		runtime.Gosched()
	}
	getDone := make(chan error, 1)
	go func() {
		_, err := s.Get(ctx, id, "in-tx")
		getDone <- err
	}()
	select {
	case err := <-purgeDone:
		t.Fatalf("Purge returned while a transaction used the file: %v", err)
	default:
	}
	close(proceed)
	if err := <-txDone; err != nil {
		t.Fatalf("transaction: %v", err)
	}
	if err := <-purgeDone; err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if err := <-getDone; !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get during Purge: err = %v, want store.ErrNotFound", err)
	}
	if got := tenantFiles(t, dir, id); len(got) != 0 {
		t.Fatalf("files left after Purge: %q", got)
	}
	// A cancelled caller stops waiting for a Purge.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Purge(cctx, id); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Purge with a cancelled context: %v", err)
	}
}

// The export is the whole file: tables a tenant's SQL created come back
// with their rows, and a table of its own (even an empty one) makes a
// tenant not empty.
func TestPortableSQLTables(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, nil)
	ctx := context.Background()
	src, dst := tenant.NewID(), tenant.NewID()
	err := s.InTx(ctx, src, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO notes (body) VALUES ($1), ($2)`, []byte("first\x00"), []byte{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	parts := &storetest.MemoryParts{}
	if err := s.Export(ctx, src, parts); err != nil {
		t.Fatal(err)
	}
	if got := parts.Names(); !slices.Equal(got, []string{sqlitestore.PartName}) {
		t.Fatalf("parts = %q", got)
	}

	// A provisioned, empty tenant may be restored into.
	if err := s.Provision(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, dst, parts); err != nil {
		t.Fatalf("Import into a provisioned empty tenant: %v", err)
	}
	var bodies [][]byte
	err = s.InTx(ctx, dst, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT body FROM notes ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				return err
			}
			bodies = append(bodies, b)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || string(bodies[0]) != "first\x00" || len(bodies[1]) != 0 {
		t.Fatalf("notes after Import = %q", bodies)
	}

	// An empty table of its own is data.
	empty := tenant.NewID()
	if err := s.InTx(ctx, empty, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE mine (x)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, empty, parts); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("Import into a tenant with its own empty table: err = %v, want store.ErrNotEmpty", err)
	}
}

func TestImportRefusesBadDatabase(t *testing.T) {
	t.Parallel()
	s, dir := setup(t, nil)
	ctx := context.Background()
	src := tenant.NewID()
	if err := s.Put(ctx, src, "k", bytes.Repeat([]byte("v"), 100000)); err != nil {
		t.Fatal(err)
	}
	good := &storetest.MemoryParts{}
	if err := s.Export(ctx, src, good); err != nil {
		t.Fatal(err)
	}
	db, _ := good.Part(sqlitestore.PartName)
	damaged := bytes.Clone(db)
	for i := len(damaged) / 2; i < len(damaged)/2+4096; i++ {
		damaged[i] ^= 0x5a
	}
	noDocs := exportOf(t, func(s *sqlitestore.Store, id tenant.ID) error {
		return s.InTx(ctx, id, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, `DROP TABLE documents`)
			return err
		})
	})
	for name, content := range map[string][]byte{
		"not a database": []byte("hello, I am not SQLite"),
		"truncated":      db[:len(db)/2],
		"damaged":        damaged,
		"no documents":   noDocs,
	} {
		parts := &storetest.MemoryParts{}
		w, _ := parts.Create(sqlitestore.PartName)
		w.Write(content)
		w.Close()
		dst := tenant.NewID()
		if err := s.Import(ctx, dst, parts); !errors.Is(err, sqlitestore.ErrBadPart) {
			t.Errorf("%s: Import err = %v, want ErrBadPart", name, err)
		}
		if got := tenantFiles(t, dir, dst); len(got) != 0 {
			t.Errorf("%s: files left after a refused Import: %q", name, got)
		}
	}
}

// exportOf exports a tenant of a scratch store after seeding it with fn.
func exportOf(t *testing.T, fn func(*sqlitestore.Store, tenant.ID) error) []byte {
	t.Helper()
	s, _ := setup(t, nil)
	id := tenant.NewID()
	if err := fn(s, id); err != nil {
		t.Fatal(err)
	}
	parts := &storetest.MemoryParts{}
	if err := s.Export(context.Background(), id, parts); err != nil {
		t.Fatal(err)
	}
	b, _ := parts.Part(sqlitestore.PartName)
	return b
}

func TestExportLeavesNoFiles(t *testing.T) {
	t.Parallel()
	s, dir := setup(t, nil)
	ctx := context.Background()
	never, used := tenant.NewID(), tenant.NewID()
	parts := &storetest.MemoryParts{}
	if err := s.Export(ctx, never, parts); err != nil {
		t.Fatal(err)
	}
	if len(parts.Names()) != 0 {
		t.Fatalf("Export of a tenant without a file wrote %q", parts.Names())
	}
	if got := tenantFiles(t, dir, never); len(got) != 0 {
		t.Fatalf("Export created files %q", got)
	}
	if err := s.Put(ctx, used, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	before := tenantFiles(t, dir, used)
	if err := s.Export(ctx, used, &storetest.MemoryParts{}); err != nil {
		t.Fatal(err)
	}
	if got := tenantFiles(t, dir, used); !slices.Equal(got, before) {
		t.Fatalf("files after Export = %q, before %q", got, before)
	}
	// Tenant SQL still cannot write a copy of its file elsewhere.
	err := s.InTx(ctx, used, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `VACUUM INTO $1`, filepath.Join(dir, "copy.db"))
		return err
	})
	if err == nil {
		t.Fatal("VACUUM INTO from tenant SQL succeeded")
	}
}

// The export of a tenant is one part, a snapshot of its file; Import
// refuses a tenant that holds data.
func ExampleStore_Export() {
	dir, err := os.MkdirTemp("", "tenants")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := sqlitestore.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	acme := tenant.NewID()
	s.Put(ctx, acme, "notes/q3.md", []byte("# Q3"))
	parts := &storetest.MemoryParts{} // an archive, in real use
	if err := s.Export(ctx, acme, parts); err != nil {
		log.Fatal(err)
	}
	fmt.Println(parts.Names())
	err = s.Import(ctx, acme, parts)
	fmt.Println(errors.Is(err, store.ErrNotEmpty))
	fmt.Println(s.Purge(ctx, acme), s.Exists(acme))
	fmt.Println(s.Import(ctx, acme, parts))
	v, err := s.Get(ctx, acme, "notes/q3.md")
	fmt.Printf("%s %v\n", v, err)
	// Output:
	// [sqlite/tenant.db]
	// true
	// <nil> false
	// <nil>
	// # Q3 <nil>
}

// TestAnotherProcessReplacesTheFile: a store (the server) with a tenant's
// file open sees a purge and a restore made by another store on the same
// directory (the CLI): never the old file's data.
func TestAnotherProcessReplacesTheFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	server, err := sqlitestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cli, err := sqlitestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	id := tenant.NewID()
	if err := server.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := server.Put(ctx, id, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	var parts storetest.MemoryParts
	if err := cli.Export(ctx, id, &parts); err != nil {
		t.Fatal(err)
	}
	if err := cli.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Get(ctx, id, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after another process purged the tenant, Get = %v, want ErrNotFound", err)
	}
	if err := cli.Import(ctx, id, &parts); err != nil {
		t.Fatal(err)
	}
	if err := cli.Put(ctx, id, "k2", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if v, err := server.Get(ctx, id, "k2"); err != nil || string(v) != "after" {
		t.Fatalf("after another process restored the tenant, Get = %q, %v", v, err)
	}
}
