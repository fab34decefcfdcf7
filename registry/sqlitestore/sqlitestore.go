package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Options configures Open. A nil *Options means defaults.
type Options struct {
	// BusyTimeout is how long a statement waits for another connection or
	// process holding the write lock. 0 means 5s.
	BusyTimeout time.Duration
	// MaxConns bounds the connections to the file. 0 means 4.
	MaxConns int
	// WatchInterval is how often Watch asks the file whether another
	// connection or process wrote to it. 0 means 250ms.
	WatchInterval time.Duration
	// Logger receives migration notices. nil discards.
	Logger *slog.Logger
}

// Store is a registry.Store in one SQLite file. It is safe for concurrent
// use.
type Store struct {
	db         *sql.DB
	path, dsn  string
	watchEvery time.Duration
	log        *slog.Logger
}

var _ registry.Store = (*Store)(nil)

// Open opens (creating if needed, with mode 0600 and its directory with
// 0700) the registry file at path and migrates it to the current schema.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if path == "" {
		return nil, errors.New("sqlitestore: empty path; pass the registry file's path (e.g. <data dir>/registry.db)")
	}
	if o.BusyTimeout < 0 || o.MaxConns < 0 || o.WatchInterval < 0 {
		return nil, errors.New("sqlitestore: BusyTimeout, MaxConns and WatchInterval must not be negative")
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.MaxConns == 0 {
		o.MaxConns = 4
	}
	if o.WatchInterval == 0 {
		o.WatchInterval = DefaultWatchInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := CreateFile(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	dsn := DSN(abs, o.BusyTimeout)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", abs, err)
	}
	db.SetMaxOpenConns(o.MaxConns)
	db.SetMaxIdleConns(o.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), o.BusyTimeout+10*time.Second)
	defer cancel()
	if err := migrate(ctx, db, o.Logger); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: migrate %s: %w", abs, err)
	}
	return &Store{db: db, path: abs, dsn: dsn, watchEvery: o.WatchInterval, log: o.Logger}, nil
}

// CreateFile makes the registry file at path, and its directory, private
// (0600 and 0700) if they do not exist yet, and returns its absolute path.
// Other stores that keep tables in the registry's file (the admin store)
// open it with CreateFile and DSN too, so that all use one set of settings.
func CreateFile(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", fmt.Errorf("create the directory of %s: %w", abs, err)
	}
	// Create the file ourselves so that it is private from the start.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return abs, f.Close()
	}
	if errors.Is(err, fs.ErrExist) {
		return abs, nil
	}
	return "", fmt.Errorf("create %s: %w", abs, err)
}

// DSN names the file at abs to the driver with the registry's settings:
// WAL (readers never wait for the writer), the busy timeout for the write
// lock, synchronous=NORMAL, and transactions that take the write lock
// when they begin.
func DSN(abs string, busy time.Duration) string {
	q := url.Values{"_txlock": {"immediate"}, "_pragma": {
		"busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")",
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
	}}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	if filepath.Separator == '\\' {
		u.Path = "/" + u.Path // file:///C:/…
	}
	return u.String()
}

// Path returns the absolute path of the registry file.
func (s *Store) Path() string { return s.path }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

const columns = `id, issuer, external_id, name, status, trial_ends_at, rate_limit, rate_burst,
	allowed_tools, flags, config, created_at, updated_at, lifecycle`

// Get implements registry.Store.
func (s *Store) Get(ctx context.Context, issuer, externalID string) (*registry.Tenant, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM tenants WHERE issuer = $1 AND external_id = $2`, issuer, externalID)
	return scanOne(row, "look up tenant")
}

// GetByID implements registry.Store.
func (s *Store) GetByID(ctx context.Context, id tenant.ID) (*registry.Tenant, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM tenants WHERE id = $1`, string(id))
	return scanOne(row, "get tenant")
}

func scanOne(row *sql.Row, op string) (*registry.Tenant, error) {
	t, err := scan(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, registry.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("sqlitestore: %s: %w", op, err)
	}
	return t, nil
}

// List implements registry.Store.
func (s *Store) List(ctx context.Context, after tenant.ID, limit int) ([]*registry.Tenant, error) {
	if limit <= 0 {
		limit = registry.DefaultPageSize
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM tenants WHERE id > $1 ORDER BY id LIMIT $2`, string(after), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list tenants: %w", err)
	}
	defer rows.Close()
	var out []*registry.Tenant
	for rows.Next() {
		t, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: list tenants: %w", err)
	}
	return out, nil
}

// Create implements registry.Store.
func (s *Store) Create(ctx context.Context, t *registry.Tenant) error {
	v, err := encode(t)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO tenants (`+columns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		string(t.ID), t.Issuer, t.ExternalID, t.Name, string(t.Status), v.trialEndsAt, t.RateLimit, t.RateBurst,
		v.tools, v.flags, v.config, micros(t.CreatedAt), micros(t.UpdatedAt), v.lifecycle)
	var se *sqlite.Error
	switch {
	case errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return registry.ExistsError(t.Issuer, t.ExternalID)
	case errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: tenant id %s is taken", registry.ErrExists, t.ID)
	case err != nil:
		return fmt.Errorf("sqlitestore: create tenant: %w", err)
	}
	return nil
}

// Update implements registry.Store.
func (s *Store) Update(ctx context.Context, t *registry.Tenant) error {
	v, err := encode(t)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE tenants SET name = $2, status = $3, trial_ends_at = $4,
		rate_limit = $5, rate_burst = $6, allowed_tools = $7, flags = $8, config = $9, updated_at = $10,
		lifecycle = $11
		WHERE id = $1`,
		string(t.ID), t.Name, string(t.Status), v.trialEndsAt, t.RateLimit, t.RateBurst,
		v.tools, v.flags, v.config, micros(t.UpdatedAt), v.lifecycle)
	return affected(res, err, "update tenant")
}

// Delete implements registry.Store.
func (s *Store) Delete(ctx context.Context, id tenant.ID) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tenants WHERE id = $1`, string(id))
	return affected(res, err, "delete tenant")
}

func affected(res sql.Result, err error, op string) error {
	if err != nil {
		return fmt.Errorf("sqlitestore: %s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlitestore: %s: %w", op, err)
	}
	if n == 0 {
		return registry.ErrNotFound
	}
	return nil
}

// encoded holds the columns that need encoding.
type encoded struct {
	trialEndsAt                     sql.NullInt64
	tools, flags, config, lifecycle string
}

func encode(t *registry.Tenant) (encoded, error) {
	var v encoded
	if !t.TrialEndsAt.IsZero() {
		v.trialEndsAt = sql.NullInt64{Int64: micros(t.TrialEndsAt), Valid: true}
	}
	var err error
	if v.tools, err = jsonText(t.AllowedTools, len(t.AllowedTools), "[]"); err != nil {
		return v, err
	}
	if v.flags, err = jsonText(t.Flags, len(t.Flags), "{}"); err != nil {
		return v, err
	}
	if v.config, err = jsonText(t.Config, len(t.Config), "{}"); err != nil {
		return v, err
	}
	n := 1
	if t.Lifecycle.IsZero() {
		n = 0
	}
	if v.lifecycle, err = jsonText(t.Lifecycle, n, "{}"); err != nil {
		return v, err
	}
	return v, nil
}

func jsonText(v any, n int, empty string) (string, error) {
	if n == 0 {
		return empty, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sqlitestore: encode tenant: %w", err)
	}
	return string(b), nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

type scanner interface{ Scan(dest ...any) error }

func scan(row scanner) (*registry.Tenant, error) {
	var (
		t                    registry.Tenant
		id, status           string
		trial                sql.NullInt64
		tools, flags, config string
		lifecycle            string
		created, updated     int64
	)
	if err := row.Scan(&id, &t.Issuer, &t.ExternalID, &t.Name, &status, &trial, &t.RateLimit, &t.RateBurst,
		&tools, &flags, &config, &created, &updated, &lifecycle); err != nil {
		return nil, err
	}
	t.ID, t.Status = tenant.ID(id), registry.Status(status)
	if trial.Valid {
		t.TrialEndsAt = fromMicros(trial.Int64)
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := decode(tools, "[]", &t.AllowedTools); err != nil {
		return nil, fmt.Errorf("tenant %s: allowed_tools: %w", id, err)
	}
	if err := decode(flags, "{}", &t.Flags); err != nil {
		return nil, fmt.Errorf("tenant %s: flags: %w", id, err)
	}
	if err := decode(config, "{}", &t.Config); err != nil {
		return nil, fmt.Errorf("tenant %s: config: %w", id, err)
	}
	if err := decode(lifecycle, "{}", &t.Lifecycle); err != nil {
		return nil, fmt.Errorf("tenant %s: lifecycle: %w", id, err)
	}
	t.Lifecycle = t.Lifecycle.UTC()
	return &t, nil
}

// decode unmarshals JSON text, leaving dst nil for an empty list or map.
func decode(text, empty string, dst any) error {
	if text == empty || strings.TrimSpace(text) == "" || text == "null" {
		return nil
	}
	return json.Unmarshal([]byte(text), dst)
}
