package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"modernc.org/sqlite"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// PartName is the one part an Export writes: a snapshot of the tenant's
// whole database file (its documents and every table its SQL created).
const PartName = "sqlite/tenant.db"

// ErrBadPart is returned by Import for a part that is not a sound SQLite
// database of this package (not a database, damaged, or without the
// documents table).
var ErrBadPart = errors.New("sqlitestore: the part is not a sound tenant database")

var _ store.Portable = (*Store)(nil)

// plain is a driver without the authorizer of tenant connections. Only
// Export and Import use it, with their own statements (VACUUM INTO and
// checks); tenant SQL never runs on it.
var plain = &sqlite.Driver{}

// Export writes a consistent snapshot of tenant id's file as one part,
// PartName, made with VACUUM INTO in a read transaction: writes running
// meanwhile are either wholly in it or not at all, and the free pages of
// deleted data are not carried over. A tenant without a file writes no
// part.
func (s *Store) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	if !id.Valid() {
		return fmt.Errorf("sqlitestore: export: %w", tenant.ErrInvalidID)
	}
	// The reference keeps Purge and Import of this tenant waiting until
	// the snapshot is taken.
	h, err := s.acquire(ctx, id, false)
	if errors.Is(err, errNoFile) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: export tenant %s: %w", id, err)
	}
	defer s.release(h)
	// VACUUM INTO fills an empty file; creating it first keeps it 0600.
	tmp := s.tempName(id, "export")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlitestore: export tenant %s: %w", id, err)
	}
	defer f.Close()
	defer os.Remove(tmp)
	if err := s.withPlain(ctx, s.dsn(id, false), func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, `VACUUM INTO $1`, tmp)
		return err
	}); err != nil {
		return fmt.Errorf("sqlitestore: export tenant %s: snapshot: %w", id, err)
	}
	pw, err := w.Create(PartName)
	if err != nil {
		return fmt.Errorf("sqlitestore: export tenant %s: create part %s: %w", id, PartName, err)
	}
	if _, err := io.Copy(pw, f); err != nil {
		pw.Close()
		return fmt.Errorf("sqlitestore: export tenant %s: write part %s: %w", id, PartName, err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("sqlitestore: export tenant %s: close part %s: %w", id, PartName, err)
	}
	return nil
}

// Import makes the database of an Export tenant id's file. The part is
// copied to a temporary file next to the tenant files, checked (SQLite's
// quick_check, and the documents table must be there), then renamed over
// the tenant's file, so the tenant has the whole import or nothing of it.
// The tenant must have no file, or one without documents and without
// tables of its own, else store.ErrNotEmpty. An export without parts
// leaves the tenant as it is. A file of an older schema is migrated the
// first time it is used.
//
// Operations of this Store on the tenant wait while the file is replaced;
// another process must not have the tenant's file open.
func (s *Store) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	if !id.Valid() {
		return fmt.Errorf("sqlitestore: import: %w", tenant.ErrInvalidID)
	}
	names := r.Names()
	for i, n := range names {
		if n != PartName || i > 0 {
			return fmt.Errorf("sqlitestore: import tenant %s: unknown part %q (an export of this backend has only %q)", id, n, PartName)
		}
	}
	// Refuse early, before copying what may be a large file.
	if err := s.exclusive(ctx, id, func() error { return s.checkEmpty(ctx, id) }); err != nil || len(names) == 0 {
		return err
	}
	tmp, err := s.stage(ctx, id, r)
	if tmp != "" {
		defer os.Remove(tmp) // fails harmlessly once renamed
	}
	if err != nil {
		return err
	}
	return s.exclusive(ctx, id, func() error {
		if err := s.checkEmpty(ctx, id); err != nil {
			return err
		}
		// A WAL left by the previous file must not be replayed into the
		// new one.
		if err := s.removeFiles(id, "-wal", "-shm", "-journal"); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.Path(id)); err != nil {
			return fmt.Errorf("sqlitestore: import tenant %s: %w", id, err)
		}
		return s.syncDir()
	})
}

// stage copies the part into a temporary file, syncs and checks it.
func (s *Store) stage(ctx context.Context, id tenant.ID, r store.PartReader) (string, error) {
	tmp := s.tempName(id, "import")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("sqlitestore: import tenant %s: %w", id, err)
	}
	err = copyPart(f, r)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return tmp, fmt.Errorf("sqlitestore: import tenant %s: %w", id, err)
	}
	if err := s.withPlain(ctx, readOnlyDSN(tmp), checkPart); err != nil {
		return tmp, fmt.Errorf("sqlitestore: import tenant %s: part %s: %w", id, PartName, err)
	}
	return tmp, nil
}

func copyPart(dst io.Writer, r store.PartReader) error {
	rc, err := r.Open(PartName)
	if err != nil {
		return fmt.Errorf("open part %s: %w", PartName, err)
	}
	defer rc.Close()
	if _, err := io.Copy(dst, rc); err != nil {
		return fmt.Errorf("read part %s: %w", PartName, err)
	}
	return nil
}

// checkPart checks a staged database file.
func checkPart(db *sql.DB) error {
	var res string
	if err := db.QueryRow(`PRAGMA quick_check`).Scan(&res); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPart, err)
	}
	if res != "ok" {
		return fmt.Errorf("%w: quick_check: %s", ErrBadPart, res)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'documents'`).Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("%w: no documents table (%v)", ErrBadPart, err)
	}
	return nil
}

// checkEmpty returns store.ErrNotEmpty if tenant id's file holds
// documents or any table, view, index or trigger but this package's own.
// No file is empty. The caller holds the tenant exclusively.
func (s *Store) checkEmpty(ctx context.Context, id tenant.ID) error {
	if _, err := os.Lstat(s.Path(id)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var own, docs bool
	err := s.withPlain(ctx, s.dsn(id, false), func(db *sql.DB) error {
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema
			WHERE name NOT IN ('documents', '`+versionTable+`') AND name NOT LIKE 'sqlite\_%' ESCAPE '\')`).Scan(&own)
		if err != nil || own {
			return err
		}
		var n int
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'documents'`).Scan(&n)
		if err != nil || n == 0 {
			return err
		}
		return db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM documents)`).Scan(&docs)
	})
	switch {
	case err != nil:
		return fmt.Errorf("sqlitestore: import tenant %s: read the existing file: %w", id, err)
	case own || docs:
		return fmt.Errorf("%w (tenant %s has a database file with data)", store.ErrNotEmpty, id)
	}
	return nil
}

// Purge removes tenant id's file with its -wal, -shm and -journal files
// and any temporary file an interrupted Export or Import left. Open
// handles of this Store on the file are closed first (operations using
// them are waited for; new ones wait for the Purge). A tenant without
// files is purged already. Another process must not have the file open.
func (s *Store) Purge(ctx context.Context, id tenant.ID) error {
	if !id.Valid() {
		return fmt.Errorf("sqlitestore: purge: %w", tenant.ErrInvalidID)
	}
	return s.exclusive(ctx, id, func() error {
		// The WAL first: without its database it could be replayed
		// into a new file of the same name.
		if err := s.removeFiles(id, "-wal", "-shm", "-journal", ""); err != nil {
			return err
		}
		temps, err := filepath.Glob(filepath.Join(s.dir, string(id)+".*.tmp"))
		if err != nil {
			return fmt.Errorf("sqlitestore: purge tenant %s: %w", id, err)
		}
		for _, t := range temps {
			if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sqlitestore: purge tenant %s: %w", id, err)
			}
		}
		return s.syncDir()
	})
}

// exclusive runs fn while no operation of this Store uses tenant id's
// file: it takes the tenant's handle out of the cache, waits until the
// operations still using it end and it is closed, and makes operations
// that start meanwhile wait (see lockFree); they open the file afresh.
func (s *Store) exclusive(ctx context.Context, id tenant.ID, fn func() error) error {
	if err := s.lockFree(ctx, id); err != nil {
		return err
	}
	released := make(chan struct{})
	s.excl[id] = released
	h := s.open[id]
	if h != nil {
		s.lru.Remove(h.elem)
		h.elem = nil
		delete(s.open, id)
	}
	idle := h != nil && h.refs == 0
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.excl, id)
		s.mu.Unlock()
		close(released)
	}()
	switch {
	case idle:
		if err := s.closeAll([]*handle{h}); err != nil {
			return err
		}
	case h != nil:
		select { // the last user's release closes it
		case <-h.gone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fn()
}

// withPlain runs fn on a one-connection pool of the plain driver.
func (s *Store) withPlain(ctx context.Context, dsn string, fn func(*sql.DB) error) error {
	db := sql.OpenDB(connector{drv: plain, dsn: dsn})
	db.SetMaxOpenConns(1)
	err := fn(db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// readOnlyDSN opens a file nobody else writes, without creating -wal or
// -shm files next to it.
func readOnlyDSN(path string) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("immutable", "1")
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	if filepath.Separator == '\\' {
		u.Path = "/" + filepath.ToSlash(u.Path)
	}
	return u.String()
}

// tempName returns an unused name for a temporary file of tenant id
// next to the tenant files: <id>.<what>-<random>.tmp, which Purge removes
// if a crash left it behind.
func (s *Store) tempName(id tenant.ID, what string) string {
	var b [8]byte
	rand.Read(b[:])
	return filepath.Join(s.dir, string(id)+"."+what+"-"+hex.EncodeToString(b[:])+".tmp")
}

// removeFiles removes the tenant's file with each suffix ("" for the
// database itself), in order; missing files are fine.
func (s *Store) removeFiles(id tenant.ID, suffixes ...string) error {
	for _, suf := range suffixes {
		if err := os.Remove(s.Path(id) + suf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sqlitestore: remove file of tenant %s: %w", id, err)
		}
	}
	return nil
}

// syncDir makes renames and removals in the directory durable.
func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("sqlitestore: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sqlitestore: sync directory: %w", err)
	}
	return nil
}
