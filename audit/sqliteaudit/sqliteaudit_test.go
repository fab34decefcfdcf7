package sqliteaudit_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/audittest"
	"github.com/tenantmcp/tenantmcp/audit/sqliteaudit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ audittest.Tamperer = (*sqliteaudit.Tamperer)(nil)

func open(t testing.TB, path string, opts *sqliteaudit.Options) *sqliteaudit.Store {
	t.Helper()
	s, err := sqliteaudit.Open(path, opts)
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
	audittest.Run(t, func(t *testing.T) audit.Store {
		return open(t, filepath.Join(t.TempDir(), "audit.db"), nil)
	})
}

// TestContractOneReader runs the suite with a single read connection: Scan
// must not hold it while its callback uses the store.
func TestContractOneReader(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		return open(t, filepath.Join(t.TempDir(), "audit.db"), &sqliteaudit.Options{ReadConns: 1})
	})
}

// tamperer opens a Tamperer of the file at path, closed when t ends.
func tamperer(t testing.TB, path string) *sqliteaudit.Tamperer {
	t.Helper()
	tm, err := sqliteaudit.NewTamperer(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Close() })
	return tm
}

func TestTamper(t *testing.T) {
	audittest.RunTamper(t, func(t *testing.T) (audit.Store, audittest.Tamperer) {
		path := filepath.Join(t.TempDir(), "audit.db")
		return open(t, path, nil), tamperer(t, path)
	})
}

// TestTwoProcesses has two stores on one file, as two processes would:
// the file's write lock and primary key keep the chain whole.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	stores := []*sqliteaudit.Store{open(t, path, nil), open(t, path, nil)}
	ctx := context.Background()
	const each = 40
	bodies := audittest.Bodies(t, "a", 0, len(stores)*each)
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for w, s := range stores {
		wg.Go(func() {
			for i := 0; i < each; {
				h, err := s.Head(ctx, "a")
				if err != nil {
					errs <- err
					return
				}
				recs, _ := audittest.Chain("a", h, bodies[w*each+i])
				switch err := s.Append(ctx, recs); {
				case errors.Is(err, audit.ErrConflict):
					continue
				case err != nil:
					errs <- err
					return
				}
				i++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v := audit.NewVerifier("a")
	rs := audittest.ScanAll(t, stores[1], "a", 1)
	for _, r := range rs {
		if err := v.Next(&r); err != nil {
			t.Fatal(err)
		}
	}
	if len(rs) != 2*each {
		t.Errorf("%d records, want %d", len(rs), 2*each)
	}
}

// TestFile checks what Open makes: a private file, bodies kept as BLOBs,
// and UPDATE refused.
func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.db")
	s := open(t, path, nil)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	audittest.AppendN(t, s, "a", 0, 2)
	audittest.Checkpoint(t, s, "a", audittest.Base)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var typ string
	if err := db.QueryRow(`SELECT typeof(body) FROM audit_records LIMIT 1`).Scan(&typ); err != nil || typ != "blob" {
		t.Errorf("typeof(body) = %q, %v; want blob", typ, err)
	}
	for _, q := range []string{
		`UPDATE audit_records SET body = x'00' WHERE seq = 1`,
		`UPDATE audit_records SET seq = 9 WHERE seq = 2`,
		`UPDATE audit_checkpoints SET count = 9`,
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", q, err)
		}
	}
	// Reopening an up-to-date file migrates nothing and keeps the data.
	s2 := open(t, path, nil)
	if h, err := s2.Head(context.Background(), "a"); err != nil || h.Seq != 2 {
		t.Errorf("Head after reopening = %+v, %v", h, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		path string
		opts *sqliteaudit.Options
		want string
	}{
		"empty path":        {"", nil, "empty path"},
		"negative timeout":  {filepath.Join(dir, "a.db"), &sqliteaudit.Options{BusyTimeout: -1}, "negative"},
		"negative conns":    {filepath.Join(dir, "b.db"), &sqliteaudit.Options{ReadConns: -1}, "negative"},
		"directory as file": {dir, nil, "sqliteaudit"},
	} {
		s, err := sqliteaudit.Open(tc.path, tc.opts)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	// A file from a newer tenantmcp is refused, not changed.
	path := filepath.Join(dir, "new.db")
	open(t, path, nil).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO audit_schema_version VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqliteaudit.Open(path, nil); err == nil || !strings.Contains(err.Error(), "upgrade tenantmcp") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open of a newer file: err = %v, want upgrade advice", err)
	}
}
