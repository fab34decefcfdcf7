package pgadmin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Errors returned by this package. Classify them with errors.Is.
var (
	// ErrNotMigrated: the schema's admin tables are missing or older than
	// this program; run Migrate (`tenantmcp db migrate`).
	ErrNotMigrated = errors.New("pgadmin: the admin tables are not migrated; run `tenantmcp db migrate`")
	// ErrInvalidOptions: an argument or option is not acceptable.
	ErrInvalidOptions = errors.New("pgadmin: invalid options")
)

// Options configures Open. A nil *Options means defaults.
type Options struct {
	// Schema holds the admin tables. "" means public. Migrate creates it
	// if it does not exist.
	Schema string
	// OwnerRole, if set, is the role Migrate acts as (SET LOCAL ROLE), so
	// that it owns the schema it creates and the tables: the owner role of
	// `db setup`, for a pool of an administrator that is a member of it.
	// "" means the pool's own role owns them.
	OwnerRole string
	// GrantTo, if set, is the application role Migrate grants USAGE on the
	// schema, SELECT on the version table, SELECT and INSERT on the
	// impersonations with UPDATE of ended_at and ended_by only, and
	// SELECT, INSERT, UPDATE, DELETE on the idempotency keys, revoking
	// anything else it holds on them. "" grants nothing.
	GrantTo string
	// SkipMigrate makes Open check that the tables are current instead of
	// migrating them (ErrNotMigrated if they are not): for the server,
	// whose role may not change the schema. false means Open migrates.
	SkipMigrate bool
	// Logger receives migration notices. nil discards.
	Logger *slog.Logger
}

// Store is an admin.Store in PostgreSQL. It is safe for concurrent use,
// also by several replicas on one schema.
type Store struct {
	pool         *pgxpool.Pool
	schema       string
	owner, grant string
	log          *slog.Logger

	// quoted, schema-qualified names
	qschema, impersonations, idempotency, versions string
	q                                              queries
}

var _ admin.Store = (*Store)(nil)

type queries struct {
	create, byToken, byID, list, createdAt, end string
	claim, key, complete, release               string
}

const grantColumns = `id, token_hash, tenant, admin, admin_issuer, user_id, reason, ticket, scopes,
	read_only, include_suspended, created_at, expires_at, ended_at, ended_by`

// Open returns a Store on pool, which the caller keeps and closes (Close
// leaves it open). Unless opts.SkipMigrate it runs Migrate; with it, it
// checks that the tables are current.
func Open(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case pool == nil:
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	case o.GrantTo != "" && o.GrantTo == o.OwnerRole:
		return nil, fmt.Errorf("%w: OwnerRole and GrantTo are both %q; they must differ (the application role must not own the admin tables)", ErrInvalidOptions, o.GrantTo)
	}
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	qs := ident(o.Schema)
	s := &Store{
		pool:           pool,
		schema:         o.Schema,
		owner:          o.OwnerRole,
		grant:          o.GrantTo,
		log:            o.Logger,
		qschema:        qs,
		impersonations: qs + "." + ImpersonationsTable,
		idempotency:    qs + "." + IdempotencyTable,
		versions:       qs + "." + VersionTable,
	}
	s.q = queries{
		create: `INSERT INTO ` + s.impersonations + ` (` + grantColumns + `)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		byToken:   `SELECT ` + grantColumns + ` FROM ` + s.impersonations + ` WHERE token_hash = $1`,
		byID:      `SELECT ` + grantColumns + ` FROM ` + s.impersonations + ` WHERE id = $1`,
		list:      `SELECT ` + grantColumns + ` FROM ` + s.impersonations,
		createdAt: `SELECT created_at FROM ` + s.impersonations + ` WHERE id = $1`,
		end: `UPDATE ` + s.impersonations + ` SET ended_at = $2, ended_by = $3
			WHERE id = $1 AND ended_at IS NULL RETURNING ` + grantColumns,
		// Claims a new key, or replaces one older than the TTL ($4 is the
		// cutoff); returns no row if the key is taken. The primary key
		// settles concurrent claims: the loser waits for the winner's
		// commit and then finds the key taken.
		claim: `INSERT INTO ` + s.idempotency + ` AS k (key, request, tenant, created_at) VALUES ($1, $2, '', $3)
			ON CONFLICT (key) DO UPDATE SET request = excluded.request, tenant = '', created_at = excluded.created_at
				WHERE k.created_at < $4
			RETURNING key, request, tenant, created_at`,
		key:      `SELECT key, request, tenant, created_at FROM ` + s.idempotency + ` WHERE key = $1`,
		complete: `UPDATE ` + s.idempotency + ` SET tenant = $2 WHERE key = $1`,
		release:  `DELETE FROM ` + s.idempotency + ` WHERE key = $1 AND tenant = ''`,
	}
	if !o.SkipMigrate {
		if err := s.Migrate(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	v, err := s.version(ctx, pool)
	switch {
	case err != nil:
		return nil, fmt.Errorf("pgadmin: open schema %q: %w", s.schema, err)
	case v < len(migrations):
		return nil, fmt.Errorf("%w: schema %q has admin tables at version %d, this program needs %d", ErrNotMigrated, s.schema, v, len(migrations))
	}
	return s, nil
}

// Close implements admin.Store; it leaves the pool open (its owner closes
// it).
func (s *Store) Close() error { return nil }

// CreateImpersonation implements admin.Store.
func (s *Store) CreateImpersonation(ctx context.Context, g *admin.Impersonation) error {
	scopes := g.Scopes
	if scopes == nil {
		scopes = []string{} // NOT NULL: an empty array, not NULL
	}
	_, err := s.pool.Exec(ctx, s.q.create, g.ID, g.TokenHash[:], string(g.Tenant), g.Admin, g.AdminIssuer, g.User,
		g.Reason, g.Ticket, scopes, g.ReadOnly, g.IncludeSuspended, g.CreatedAt, g.ExpiresAt, timeArg(g.EndedAt), g.EndedBy)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505" && strings.HasSuffix(pe.ConstraintName, "_pkey"):
		return fmt.Errorf("%w: impersonation id %q is taken", admin.ErrExists, g.ID)
	case errors.As(err, &pe) && pe.Code == "23505":
		return fmt.Errorf("%w: an impersonation with this token hash exists", admin.ErrExists)
	case err != nil:
		return fmt.Errorf("pgadmin: create impersonation %s: %w", g.ID, err)
	}
	return nil
}

// ImpersonationByToken implements admin.Store.
func (s *Store) ImpersonationByToken(ctx context.Context, h admin.TokenHash) (*admin.Impersonation, error) {
	return oneGrant(s.pool.QueryRow(ctx, s.q.byToken, h[:]), "look up impersonation by token")
}

// Impersonation implements admin.Store.
func (s *Store) Impersonation(ctx context.Context, id string) (*admin.Impersonation, error) {
	return oneGrant(s.pool.QueryRow(ctx, s.q.byID, id), "get impersonation "+id)
}

func oneGrant(row pgx.Row, op string) (*admin.Impersonation, error) {
	g, err := scanGrant(row)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, admin.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("pgadmin: %s: %w", op, err)
	}
	return g, nil
}

// ListImpersonations implements admin.Store.
func (s *Store) ListImpersonations(ctx context.Context, f admin.ImpersonationFilter) ([]*admin.Impersonation, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Tenant != "" {
		where = append(where, "tenant = "+arg(string(f.Tenant)))
	}
	if f.Admin != "" {
		where = append(where, "admin = "+arg(f.Admin))
	}
	if !f.ActiveAt.IsZero() {
		where = append(where, "ended_at IS NULL AND expires_at > "+arg(f.ActiveAt))
	}
	if f.Before != "" {
		var created time.Time
		err := s.pool.QueryRow(ctx, s.q.createdAt, f.Before).Scan(&created)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("%w: list impersonations before %q: no such grant", admin.ErrNotFound, f.Before)
		case err != nil:
			return nil, fmt.Errorf("pgadmin: list impersonations: find %q: %w", f.Before, err)
		}
		where = append(where, "(created_at, id) < ("+arg(created)+", "+arg(f.Before)+")")
	}
	q := s.q.list
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(admin.PageLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pgadmin: list impersonations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*admin.Impersonation, error) { return scanGrant(r) })
	if err != nil {
		return nil, fmt.Errorf("pgadmin: list impersonations: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// EndImpersonation implements admin.Store.
func (s *Store) EndImpersonation(ctx context.Context, id, by string, at time.Time) (*admin.Impersonation, error) {
	if at.IsZero() {
		return nil, admin.ErrZeroEndTime
	}
	g, err := oneGrant(s.pool.QueryRow(ctx, s.q.end, id, at, by), "end impersonation "+id)
	if errors.Is(err, admin.ErrNotFound) {
		// Unknown, or ended already: an ended grant never changes again,
		// so a fresh read returns its final state.
		return s.Impersonation(ctx, id)
	}
	return g, err
}

// claimAttempts bounds ClaimIdempotencyKey's retries when the key it
// found taken is released before it can read it.
const claimAttempts = 10

// ClaimIdempotencyKey implements admin.Store.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, key string, h admin.RequestHash, now time.Time) (*admin.IdempotencyRecord, bool, error) {
	for range claimAttempts {
		rec, err := scanKey(s.pool.QueryRow(ctx, s.q.claim, key, h[:], now, now.Add(-admin.IdempotencyTTL)))
		if err == nil {
			return rec, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, fmt.Errorf("pgadmin: claim idempotency key: %w", err)
		}
		// Taken: read it in a new snapshot, which sees the claim that won.
		rec, err = scanKey(s.pool.QueryRow(ctx, s.q.key, key))
		if err == nil {
			return rec, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, fmt.Errorf("pgadmin: claim idempotency key: %w", err)
		}
		// Released in between: claim again.
	}
	return nil, false, fmt.Errorf("pgadmin: claim idempotency key: taken and released %d times in a row", claimAttempts)
}

// CompleteIdempotencyKey implements admin.Store.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, key string, id tenant.ID) error {
	if id == "" {
		return admin.ErrEmptyTenant
	}
	tag, err := s.pool.Exec(ctx, s.q.complete, key, string(id))
	switch {
	case err != nil:
		return fmt.Errorf("pgadmin: complete idempotency key: %w", err)
	case tag.RowsAffected() == 0:
		return admin.ErrNotFound
	}
	return nil
}

// ReleaseIdempotencyKey implements admin.Store.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, s.q.release, key); err != nil {
		return fmt.Errorf("pgadmin: release idempotency key: %w", err)
	}
	return nil
}

func timeArg(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func scanGrant(row pgx.Row) (*admin.Impersonation, error) {
	var (
		g        admin.Impersonation
		hash     []byte
		tenantID string
		ended    *time.Time
	)
	if err := row.Scan(&g.ID, &hash, &tenantID, &g.Admin, &g.AdminIssuer, &g.User, &g.Reason, &g.Ticket, &g.Scopes,
		&g.ReadOnly, &g.IncludeSuspended, &g.CreatedAt, &g.ExpiresAt, &ended, &g.EndedBy); err != nil {
		return nil, err
	}
	if len(hash) != len(g.TokenHash) {
		return nil, fmt.Errorf("impersonation %s: token hash of %d bytes", g.ID, len(hash))
	}
	copy(g.TokenHash[:], hash)
	g.Tenant = tenant.ID(tenantID)
	if len(g.Scopes) == 0 {
		g.Scopes = nil
	}
	g.CreatedAt, g.ExpiresAt = g.CreatedAt.UTC(), g.ExpiresAt.UTC()
	if ended != nil {
		g.EndedAt = ended.UTC()
	}
	return &g, nil
}

func scanKey(row pgx.Row) (*admin.IdempotencyRecord, error) {
	var (
		rec      admin.IdempotencyRecord
		hash     []byte
		tenantID string
	)
	if err := row.Scan(&rec.Key, &hash, &tenantID, &rec.CreatedAt); err != nil {
		return nil, err
	}
	if len(hash) != len(rec.Request) {
		return nil, fmt.Errorf("idempotency key %q: request hash of %d bytes", rec.Key, len(hash))
	}
	copy(rec.Request[:], hash)
	rec.Tenant, rec.CreatedAt = tenant.ID(tenantID), rec.CreatedAt.UTC()
	return &rec, nil
}
