package sqliteadmin

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Options configures Open. A nil *Options means defaults.
type Options struct {
	// BusyTimeout is how long a statement waits for another connection or
	// process holding the file's write lock. 0 means 5s.
	BusyTimeout time.Duration
	// MaxConns bounds the connections to the file. 0 means 4.
	MaxConns int
	// Logger receives migration notices. nil discards.
	Logger *slog.Logger
}

// Store is an admin.Store in a SQLite file. It is safe for concurrent
// use, also by several Stores and processes on one file.
type Store struct {
	db   *sql.DB
	path string
}

var _ admin.Store = (*Store)(nil)

// Open opens (creating if needed, with mode 0600 and its directory with
// 0700) the SQLite file at path, usually the registry's
// (<data dir>/registry.db), and migrates the admin tables in it to the
// current version. It leaves every other table of the file alone.
func Open(path string, opts *Options) (*Store, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("sqliteadmin: empty path; pass the registry file's path (<data dir>/registry.db)")
	}
	abs, err := sqlitestore.CreateFile(path)
	if err != nil {
		return nil, fmt.Errorf("sqliteadmin: %w", err)
	}
	db, err := sql.Open("sqlite", sqlitestore.DSN(abs, o.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("sqliteadmin: open %s: %w", abs, err)
	}
	db.SetMaxOpenConns(o.MaxConns)
	db.SetMaxIdleConns(o.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), o.BusyTimeout+10*time.Second)
	defer cancel()
	if err := migrate(ctx, db, o.Logger); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqliteadmin: migrate %s: %w", abs, err)
	}
	return &Store{db: db, path: abs}, nil
}

// resolve returns the options with defaults applied, or why they are not
// acceptable.
func (opts *Options) resolve() (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.BusyTimeout < 0 || o.MaxConns < 0 {
		return o, errors.New("sqliteadmin: BusyTimeout and MaxConns must not be negative")
	}
	o.BusyTimeout = cmp.Or(o.BusyTimeout, 5*time.Second)
	o.MaxConns = cmp.Or(o.MaxConns, 4)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Path returns the absolute path of the file.
func (s *Store) Path() string { return s.path }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

const grantColumns = `id, token_hash, tenant, admin, admin_issuer, user_id, reason, ticket, scopes,
	read_only, include_suspended, created_at, expires_at, ended_at, ended_by`

// CreateImpersonation implements admin.Store.
func (s *Store) CreateImpersonation(ctx context.Context, g *admin.Impersonation) error {
	scopes := "[]"
	if len(g.Scopes) > 0 {
		b, err := json.Marshal(g.Scopes)
		if err != nil {
			return fmt.Errorf("sqliteadmin: create impersonation %s: encode scopes: %w", g.ID, err)
		}
		scopes = string(b)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO admin_impersonations (`+grantColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.TokenHash[:], string(g.Tenant), g.Admin, g.AdminIssuer, g.User, g.Reason, g.Ticket, scopes,
		g.ReadOnly, g.IncludeSuspended, micros(g.CreatedAt), micros(g.ExpiresAt), nullMicros(g.EndedAt), g.EndedBy)
	var se *sqlite.Error
	switch {
	case errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: impersonation id %q is taken", admin.ErrExists, g.ID)
	case errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return fmt.Errorf("%w: an impersonation with this token hash exists", admin.ErrExists)
	case err != nil:
		return fmt.Errorf("sqliteadmin: create impersonation %s: %w", g.ID, err)
	}
	return nil
}

// ImpersonationByToken implements admin.Store.
func (s *Store) ImpersonationByToken(ctx context.Context, h admin.TokenHash) (*admin.Impersonation, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM admin_impersonations WHERE token_hash = ?`, h[:])
	return oneGrant(row, "look up impersonation by token")
}

// Impersonation implements admin.Store.
func (s *Store) Impersonation(ctx context.Context, id string) (*admin.Impersonation, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM admin_impersonations WHERE id = ?`, id)
	return oneGrant(row, "get impersonation "+id)
}

func oneGrant(row *sql.Row, op string) (*admin.Impersonation, error) {
	g, err := scanGrant(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, admin.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("sqliteadmin: %s: %w", op, err)
	}
	return g, nil
}

// ListImpersonations implements admin.Store.
func (s *Store) ListImpersonations(ctx context.Context, f admin.ImpersonationFilter) ([]*admin.Impersonation, error) {
	var where []string
	var args []any
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, string(f.Tenant))
	}
	if f.Admin != "" {
		where, args = append(where, "admin = ?"), append(args, f.Admin)
	}
	if !f.ActiveAt.IsZero() {
		where, args = append(where, "ended_at IS NULL AND expires_at > ?"), append(args, micros(f.ActiveAt))
	}
	if f.Before != "" {
		var created int64
		err := s.db.QueryRowContext(ctx, `SELECT created_at FROM admin_impersonations WHERE id = ?`, f.Before).Scan(&created)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("%w: list impersonations before %q: no such grant", admin.ErrNotFound, f.Before)
		case err != nil:
			return nil, fmt.Errorf("sqliteadmin: list impersonations: find %q: %w", f.Before, err)
		}
		where, args = append(where, "(created_at, id) < (?, ?)"), append(args, created, f.Before)
	}
	q := `SELECT ` + grantColumns + ` FROM admin_impersonations`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	rows, err := s.db.QueryContext(ctx, q, append(args, admin.PageLimit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("sqliteadmin: list impersonations: %w", err)
	}
	defer rows.Close()
	var out []*admin.Impersonation
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("sqliteadmin: list impersonations: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqliteadmin: list impersonations: %w", err)
	}
	return out, nil
}

// EndImpersonation implements admin.Store.
func (s *Store) EndImpersonation(ctx context.Context, id, by string, at time.Time) (*admin.Impersonation, error) {
	if at.IsZero() {
		return nil, admin.ErrZeroEndTime
	}
	row := s.db.QueryRowContext(ctx, `UPDATE admin_impersonations SET ended_at = ?, ended_by = ?
		WHERE id = ? AND ended_at IS NULL RETURNING `+grantColumns, micros(at), by, id)
	g, err := oneGrant(row, "end impersonation "+id)
	if errors.Is(err, admin.ErrNotFound) {
		// Unknown, or ended already: an ended grant never changes again.
		return s.Impersonation(ctx, id)
	}
	return g, err
}

// ClaimIdempotencyKey implements admin.Store.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, key string, h admin.RequestHash, now time.Time) (*admin.IdempotencyRecord, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		return nil, false, fmt.Errorf("sqliteadmin: claim idempotency key: %w", err)
	}
	defer tx.Rollback()
	created := micros(now)
	// A new key, or one older than the TTL, is claimed: inserted, or
	// replaced in place.
	rec, err := scanKey(tx.QueryRowContext(ctx, `INSERT INTO admin_idempotency AS k (key, request, tenant, created_at)
		VALUES (?, ?, '', ?)
		ON CONFLICT (key) DO UPDATE SET request = excluded.request, tenant = '', created_at = excluded.created_at
			WHERE k.created_at < ?
		RETURNING key, request, tenant, created_at`, key, h[:], created, created-admin.IdempotencyTTL.Microseconds()))
	claimed := err == nil
	if errors.Is(err, sql.ErrNoRows) {
		rec, err = scanKey(tx.QueryRowContext(ctx, `SELECT key, request, tenant, created_at FROM admin_idempotency WHERE key = ?`, key))
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqliteadmin: claim idempotency key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("sqliteadmin: claim idempotency key: commit: %w", err)
	}
	return rec, claimed, nil
}

// CompleteIdempotencyKey implements admin.Store.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, key string, id tenant.ID) error {
	if id == "" {
		return admin.ErrEmptyTenant
	}
	res, err := s.db.ExecContext(ctx, `UPDATE admin_idempotency SET tenant = ? WHERE key = ?`, string(id), key)
	if err != nil {
		return fmt.Errorf("sqliteadmin: complete idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqliteadmin: complete idempotency key: %w", err)
	} else if n == 0 {
		return admin.ErrNotFound
	}
	return nil
}

// ReleaseIdempotencyKey implements admin.Store.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM admin_idempotency WHERE key = ? AND tenant = ''`, key); err != nil {
		return fmt.Errorf("sqliteadmin: release idempotency key: %w", err)
	}
	return nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

type scanner interface{ Scan(dest ...any) error }

func scanGrant(row scanner) (*admin.Impersonation, error) {
	var (
		g                       admin.Impersonation
		hash                    []byte
		tenantID, scopes        string
		created, expires        int64
		ended                   sql.NullInt64
		readOnly, inclSuspended bool
	)
	if err := row.Scan(&g.ID, &hash, &tenantID, &g.Admin, &g.AdminIssuer, &g.User, &g.Reason, &g.Ticket, &scopes,
		&readOnly, &inclSuspended, &created, &expires, &ended, &g.EndedBy); err != nil {
		return nil, err
	}
	if len(hash) != len(g.TokenHash) {
		return nil, fmt.Errorf("impersonation %s: token hash of %d bytes", g.ID, len(hash))
	}
	copy(g.TokenHash[:], hash)
	g.Tenant, g.ReadOnly, g.IncludeSuspended = tenant.ID(tenantID), readOnly, inclSuspended
	g.CreatedAt, g.ExpiresAt = fromMicros(created), fromMicros(expires)
	if ended.Valid {
		g.EndedAt = fromMicros(ended.Int64)
	}
	if scopes != "[]" {
		if err := json.Unmarshal([]byte(scopes), &g.Scopes); err != nil {
			return nil, fmt.Errorf("impersonation %s: scopes: %w", g.ID, err)
		}
		if len(g.Scopes) == 0 {
			g.Scopes = nil
		}
	}
	return &g, nil
}

func scanKey(row scanner) (*admin.IdempotencyRecord, error) {
	var (
		rec      admin.IdempotencyRecord
		hash     []byte
		tenantID string
		created  int64
	)
	if err := row.Scan(&rec.Key, &hash, &tenantID, &created); err != nil {
		return nil, err
	}
	if len(hash) != len(rec.Request) {
		return nil, fmt.Errorf("idempotency key %q: request hash of %d bytes", rec.Key, len(hash))
	}
	copy(rec.Request[:], hash)
	rec.Tenant, rec.CreatedAt = tenant.ID(tenantID), fromMicros(created)
	return &rec, nil
}
