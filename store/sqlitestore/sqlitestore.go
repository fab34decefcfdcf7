package sqlitestore

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("sqlitestore: store is closed")

// DefaultMaxOpen is the number of tenant files kept open when
// Options.MaxOpen is zero.
const DefaultMaxOpen = 64

// Options configure a Store. A nil *Options means all defaults.
type Options struct {
	// MaxOpen bounds how many tenant files are kept open in the handle
	// cache. The least recently used handle is evicted beyond it (and
	// closed as soon as no operation uses it). Zero means DefaultMaxOpen.
	MaxOpen int
	// BusyTimeout is how long a statement waits for another connection or
	// process holding the file's write lock before failing with
	// SQLITE_BUSY. Zero means 5 seconds.
	BusyTimeout time.Duration
	// ConnsPerTenant bounds the connections in each tenant's pool (WAL
	// allows concurrent readers and one writer). Zero means 4.
	ConnsPerTenant int
	// Logger receives debug records about opened, evicted and migrated
	// files. Nil discards them.
	Logger *slog.Logger
}

// Store keeps one SQLite file per tenant under a directory. It implements
// store.Backend and store.SQLBackend and is safe for concurrent use by
// many goroutines and, through SQLite's file locking, by other processes
// (such as the CLI) on the same files.
type Store struct {
	dir     string
	maxOpen int
	busy    time.Duration
	conns   int
	log     *slog.Logger
	drv     *sqlite.Driver

	mu     sync.Mutex
	closed bool
	open   map[tenant.ID]*handle
	lru    list.List                   // of *handle, most recently used at the front
	excl   map[tenant.ID]chan struct{} // tenants held by exclusive; closed when released
}

var (
	_ store.Backend    = (*Store)(nil)
	_ store.SQLBackend = (*Store)(nil)
)

// handle is one tenant's pool. It is in the cache while elem != nil; once
// evicted it is closed by whoever drops refs to zero.
type handle struct {
	id    tenant.ID
	ready chan struct{} // closed when db/err are set
	db    *sql.DB
	err   error
	refs  int           // operations using the handle (guarded by Store.mu)
	elem  *list.Element // position in Store.lru; nil once evicted
	gone  chan struct{} // closed once the handle is closed
	// file is the tenant file the handle opened: a handle whose file was
	// removed or replaced by another process (a purge or restore by the
	// CLI) is not used again.
	file os.FileInfo
}

// Open returns a Store keeping tenant files in dir, which is created (mode
// 0700) if it does not exist. No tenant file is opened until it is used.
func Open(dir string, o *Options) (*Store, error) {
	if o == nil {
		o = &Options{}
	}
	if dir == "" {
		return nil, errors.New("sqlitestore: empty directory path; pass the directory that holds the tenant files")
	}
	if o.MaxOpen < 0 || o.BusyTimeout < 0 || o.ConnsPerTenant < 0 {
		return nil, errors.New("sqlitestore: MaxOpen, BusyTimeout and ConnsPerTenant must not be negative")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: resolve directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("sqlitestore: create directory %s: %w", abs, err)
	}
	s := &Store{
		dir:     abs,
		maxOpen: cmpOr(o.MaxOpen, DefaultMaxOpen),
		busy:    cmpOr(o.BusyTimeout, 5*time.Second),
		conns:   cmpOr(o.ConnsPerTenant, 4),
		log:     o.Logger,
		drv:     &sqlite.Driver{},
		open:    map[tenant.ID]*handle{},
		excl:    map[tenant.ID]chan struct{}{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.drv.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
		a, ok := c.(sqlite.AuthorizerRegisterer)
		if !ok {
			return errors.New("sqlitestore: driver connection has no authorizer; refusing to open")
		}
		return a.RegisterAuthorizer(authorize)
	})
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// authorize refuses ATTACH of any named database: a tenant's SQL must not
// reach another file (another tenant's, or anything else on disk). The
// anonymous temporary database plain VACUUM attaches is allowed; VACUUM
// INTO names a file and is refused.
func authorize(action sqlite.AuthorizerActionCode, arg1, _, _, _ string) sqlite.AuthorizerReturnCode {
	if action == sqlite.AuthAttach && arg1 != "" {
		return sqlite.AuthorizerDeny
	}
	return sqlite.AuthorizerOK
}

// Path returns the file that holds (or will hold) tenant id's data.
func (s *Store) Path(id tenant.ID) string {
	return filepath.Join(s.dir, string(id)+".db")
}

// Exists reports whether tenant id has a database file.
func (s *Store) Exists(id tenant.ID) bool {
	if !id.Valid() {
		return false
	}
	fi, err := os.Stat(s.Path(id))
	return err == nil && fi.Mode().IsRegular()
}

// Provision creates tenant id's file and brings it to the current schema.
// It is idempotent.
func (s *Store) Provision(ctx context.Context, id tenant.ID) error {
	if !id.Valid() {
		return fmt.Errorf("sqlitestore: provision: %w", tenant.ErrInvalidID)
	}
	h, err := s.acquire(ctx, id, true)
	if err != nil {
		return err
	}
	s.release(h)
	return nil
}

// errNoFile: the tenant has no file and the operation must not create one.
var errNoFile = errors.New("sqlitestore: tenant has no database file")

// acquire returns id's handle with a reference taken; the caller must
// release it. With create false a missing file yields errNoFile.
func (s *Store) acquire(ctx context.Context, id tenant.ID, create bool) (*handle, error) {
	if err := s.lockFree(ctx, id); err != nil {
		return nil, err
	}
	h := s.open[id]
	if h == nil && !create {
		// Stat outside the lock, then look again.
		s.mu.Unlock()
		if _, err := os.Stat(s.Path(id)); errors.Is(err, fs.ErrNotExist) {
			return nil, errNoFile
		}
		if err := s.lockFree(ctx, id); err != nil {
			return nil, err
		}
		h = s.open[id]
	}
	if h != nil {
		h.refs++
		s.lru.MoveToFront(h.elem)
		s.mu.Unlock()
		select {
		case <-h.ready:
		case <-ctx.Done():
			s.release(h)
			return nil, ctx.Err()
		}
		if h.err != nil {
			s.release(h)
			return nil, h.err
		}
		if s.replaced(h) {
			s.forget(h)
			s.release(h)
			return s.acquire(ctx, id, create)
		}
		return h, nil
	}
	h = &handle{id: id, ready: make(chan struct{}), refs: 1, gone: make(chan struct{})}
	h.elem = s.lru.PushFront(h)
	s.open[id] = h
	victims := s.evictLocked()
	s.mu.Unlock()
	s.closeAll(victims)

	// Open and migrate without the lock. A caller's cancellation must not
	// fail the open for others waiting on the same handle.
	h.db, h.err = s.openDB(context.WithoutCancel(ctx), id, create)
	if h.err == nil {
		h.file, _ = os.Stat(s.Path(id))
	}
	close(h.ready)
	if h.err != nil {
		s.mu.Lock()
		if h.elem != nil {
			s.lru.Remove(h.elem)
			h.elem = nil
			delete(s.open, id)
		}
		s.mu.Unlock()
		s.release(h)
		return nil, h.err
	}
	return h, nil
}

// replaced reports whether h's tenant file is gone or is another file
// than the one h opened: another process purged or restored the tenant.
func (s *Store) replaced(h *handle) bool {
	if h.file == nil {
		return false
	}
	fi, err := os.Stat(s.Path(h.id))
	return err != nil || !os.SameFile(fi, h.file)
}

// forget takes h out of the cache, so the next operation opens the file
// afresh; h is closed when its last operation ends.
func (s *Store) forget(h *handle) {
	s.mu.Lock()
	if h.elem != nil {
		s.lru.Remove(h.elem)
		h.elem = nil
		delete(s.open, h.id)
	}
	s.mu.Unlock()
}

// lockFree locks s.mu once the store is open and no exclusive call (see
// portable.go) holds tenant id, waiting for it to end.
func (s *Store) lockFree(ctx context.Context, id tenant.ID) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		held := s.excl[id]
		if held == nil {
			return nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release drops a reference and closes the handle if it was evicted and
// this was the last user.
func (s *Store) release(h *handle) {
	s.mu.Lock()
	h.refs--
	last := h.refs == 0 && h.elem == nil
	s.mu.Unlock()
	if last {
		s.closeAll([]*handle{h})
	}
}

// evictLocked removes least recently used handles beyond maxOpen from the
// cache and returns those nobody uses, to be closed after unlocking.
func (s *Store) evictLocked() []*handle {
	var idle []*handle
	for s.lru.Len() > s.maxOpen {
		h := s.lru.Remove(s.lru.Back()).(*handle)
		h.elem = nil
		delete(s.open, h.id)
		s.log.Debug("sqlitestore: evict tenant file", "tenant_id", h.id, "in_use", h.refs)
		if h.refs == 0 {
			idle = append(idle, h)
		}
	}
	return idle
}

func (s *Store) closeAll(hs []*handle) error {
	var errs []error
	for _, h := range hs {
		<-h.ready // an idle handle is always ready; this documents it
		if h.db != nil {
			if err := h.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("sqlitestore: close tenant %s: %w", h.id, err))
			}
		}
		close(h.gone)
	}
	return errors.Join(errs...)
}

// Close closes every idle handle; handles still in use are closed when
// their last operation ends. Later calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var idle []*handle
	for e := s.lru.Front(); e != nil; e = e.Next() {
		h := e.Value.(*handle)
		h.elem = nil
		if h.refs == 0 {
			idle = append(idle, h)
		}
	}
	s.lru.Init()
	clear(s.open)
	s.mu.Unlock()
	return s.closeAll(idle)
}

// connector opens connections to one file through the Store's private
// driver, which carries the authorizer hook.
type connector struct {
	drv *sqlite.Driver
	dsn string
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.drv.Open(c.dsn)
}

func (c connector) Driver() driver.Driver { return c.drv }

func (s *Store) dsn(id tenant.ID, create bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(s.busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	if !create {
		q.Set("mode", "rw") // open an existing file; never create one
	}
	u := url.URL{Scheme: "file", Path: s.Path(id), RawQuery: q.Encode()}
	if filepath.Separator == '\\' {
		u.Path = "/" + filepath.ToSlash(u.Path)
	}
	return u.String()
}

func (s *Store) openDB(ctx context.Context, id tenant.ID, create bool) (*sql.DB, error) {
	db := sql.OpenDB(connector{drv: s.drv, dsn: s.dsn(id, create)})
	db.SetMaxOpenConns(s.conns)
	db.SetMaxIdleConns(s.conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := migrate(ctx, db, s.log, id); err != nil {
		db.Close()
		if !create && isCantOpen(err) {
			return nil, errNoFile
		}
		return nil, fmt.Errorf("sqlitestore: open database of tenant %s: %w", id, err)
	}
	s.log.Debug("sqlitestore: opened tenant file", "tenant_id", id)
	return db, nil
}

func isCantOpen(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 14 // SQLITE_CANTOPEN
}

// use runs fn with id's handle. With create false and no file, it returns
// errNoFile without creating one.
func (s *Store) use(ctx context.Context, id tenant.ID, create bool, fn func(db *sql.DB) error) error {
	h, err := s.acquire(ctx, id, create)
	if err != nil {
		return storageFull(err)
	}
	defer s.release(h)
	return storageFull(fn(h.db))
}

// storageFull marks SQLITE_FULL (the filesystem holding the file is full;
// SQLite rolled the statement back) as store.ErrStorageFull.
func storageFull(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == 13 { // SQLITE_FULL
		return fmt.Errorf("%w: %w", store.ErrStorageFull, err)
	}
	return err
}

// Get returns the document stored under key, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	var v []byte
	err := s.use(ctx, id, false, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, `SELECT content FROM documents WHERE key = $1`, key).Scan(&v)
	})
	switch {
	case errors.Is(err, errNoFile), errors.Is(err, sql.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("sqlitestore: get %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put stores value under key, creating the tenant's file if needed.
func (s *Store) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if value == nil {
		value = []byte{} // nil binds as NULL; content is NOT NULL
	}
	err := s.use(ctx, id, true, func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, `INSERT INTO documents (key, content, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at`,
			key, value, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: put %q: %w", key, err)
	}
	return nil
}

// Delete removes key, or returns store.ErrNotFound.
func (s *Store) Delete(ctx context.Context, id tenant.ID, key string) error {
	var n int64
	err := s.use(ctx, id, false, func(db *sql.DB) error {
		r, err := db.ExecContext(ctx, `DELETE FROM documents WHERE key = $1`, key)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	switch {
	case errors.Is(err, errNoFile):
		return store.ErrNotFound
	case err != nil:
		return fmt.Errorf("sqlitestore: delete %q: %w", key, err)
	case n == 0:
		return store.ErrNotFound
	}
	return nil
}

// List returns the tenant's keys starting with prefix, sorted bytewise.
func (s *Store) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	keys := []string{}
	err := s.use(ctx, id, false, func(db *sql.DB) error {
		// Keys compare bytewise (BINARY collation on UTF-8), so the keys
		// with this prefix are a contiguous run starting at prefix.
		rows, err := db.QueryContext(ctx, `SELECT key FROM documents WHERE key >= $1 ORDER BY key`, prefix)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			if len(k) < len(prefix) || k[:len(prefix)] != prefix {
				break
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	switch {
	case errors.Is(err, errNoFile):
		return []string{}, nil
	case err != nil:
		return nil, fmt.Errorf("sqlitestore: list %q: %w", prefix, err)
	}
	return keys, nil
}
