package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Options configures a Store. A nil *Options means defaults.
type Options struct {
	// Schema holds the registry's tables. "" means public. Migrate creates
	// it if it does not exist.
	Schema string
	// GrantTo, if set, is a role Migrate grants USAGE on the schema and
	// SELECT, INSERT, UPDATE, DELETE on the tenants and leases tables
	// (for servers that connect as a less privileged role than the one
	// migrating). "" grants nothing.
	GrantTo string
	// SkipMigrate makes Open skip Migrate (run it separately, as a role
	// that may change the schema). false means Open migrates.
	SkipMigrate bool
	// MaxConns bounds the pool Open creates. 0 means pgx's default.
	MaxConns int32
	// Logger receives migration notices. nil discards.
	Logger *slog.Logger
}

// TableName is the name of the tenants table (in Options.Schema).
const TableName = "tenantmcp_tenants"

// LeaseTableName is the name of the table of lifecycle leases (in
// Options.Schema).
const LeaseTableName = "tenantmcp_tenant_leases"

const versionTable = "tenantmcp_registry_version"

// Store is a registry.Store in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	owned  bool // Close closes the pool
	schema string
	grant  string
	log    *slog.Logger

	table, versions, leases string // quoted, schema-qualified
	channel                 string // of the notifications of writes, see Watch
	q                       queries
}

var _ registry.Store = (*Store)(nil)

type queries struct {
	get, getByID, list, create, update, delete string
}

// Open connects to dsn and, unless opts.SkipMigrate, runs Migrate. Close
// closes the connections.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parse DSN: %w", err)
	}
	if opts != nil && opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s := New(pool, opts)
	s.owned = true
	if opts == nil || !opts.SkipMigrate {
		if err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return s, nil
}

// New returns a Store on a pool the caller owns (Close leaves it open).
// Call Migrate before first use unless the schema is known to be current.
func New(pool *pgxpool.Pool, opts *Options) *Store {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		pool:     pool,
		schema:   o.Schema,
		grant:    o.GrantTo,
		log:      o.Logger,
		table:    pgx.Identifier{o.Schema, TableName}.Sanitize(),
		versions: pgx.Identifier{o.Schema, versionTable}.Sanitize(),
		leases:   pgx.Identifier{o.Schema, LeaseTableName}.Sanitize(),
	}
	const cols = `id, issuer, external_id, name, status, trial_ends_at, rate_limit, rate_burst,
		allowed_tools, flags, config, created_at, updated_at, lifecycle`
	s.channel = channelName(o.Schema)
	s.q = queries{
		get:     `SELECT ` + cols + ` FROM ` + s.table + ` WHERE issuer = $1 AND external_id = $2`,
		getByID: `SELECT ` + cols + ` FROM ` + s.table + ` WHERE id = $1`,
		list:    `SELECT ` + cols + ` FROM ` + s.table + ` WHERE id > $1 ORDER BY id LIMIT $2`,
		create: notifying(`INSERT INTO ` + s.table + ` (` + cols + `)
			VALUES ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`),
		update: notifying(`UPDATE ` + s.table + ` SET name = $3, status = $4, trial_ends_at = $5, rate_limit = $6,
			rate_burst = $7, allowed_tools = $8, flags = $9, config = $10, updated_at = $11, lifecycle = $12
			WHERE id = $2`),
		delete: notifying(`DELETE FROM ` + s.table + ` WHERE id = $2`),
	}
	return s
}

// notifying wraps a write of tenant rows (whose parameters start at $2)
// so that the same statement, and so the same transaction, sends one
// notification per row written on channel $1 (see Watch), and returns the
// number of rows written. The payload names the tenant by id, issuer and
// external id in JSON, or by id alone where that would not fit within
// NOTIFY's limit (payloads must be shorter than 8000 bytes).
func notifying(write string) string {
	return `WITH w AS (` + write + ` RETURNING id, issuer, external_id),
	p AS (SELECT id, json_build_object('id', id, 'issuer', issuer, 'external_id', external_id)::text AS msg FROM w)
	SELECT count(pg_notify($1, CASE WHEN octet_length(msg) < ` + strconv.Itoa(maxPayload) + ` THEN msg
		ELSE json_build_object('id', id)::text END)) FROM p`
}

// Close closes the pool if Open created it.
func (s *Store) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// Get implements registry.Store.
func (s *Store) Get(ctx context.Context, issuer, externalID string) (*registry.Tenant, error) {
	return s.one(ctx, "look up tenant", s.q.get, issuer, externalID)
}

// GetByID implements registry.Store.
func (s *Store) GetByID(ctx context.Context, id tenant.ID) (*registry.Tenant, error) {
	return s.one(ctx, "get tenant", s.q.getByID, string(id))
}

func (s *Store) one(ctx context.Context, op, sql string, args ...any) (*registry.Tenant, error) {
	t, err := scan(s.pool.QueryRow(ctx, sql, args...))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, registry.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	return t, nil
}

// List implements registry.Store.
func (s *Store) List(ctx context.Context, after tenant.ID, limit int) ([]*registry.Tenant, error) {
	if limit <= 0 {
		limit = registry.DefaultPageSize
	}
	rows, err := s.pool.Query(ctx, s.q.list, string(after), limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list tenants: %w", err)
	}
	defer rows.Close()
	var out []*registry.Tenant
	for rows.Next() {
		t, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("pgstore: list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: list tenants: %w", err)
	}
	return out, nil
}

// Create implements registry.Store.
func (s *Store) Create(ctx context.Context, t *registry.Tenant) error {
	tools, flags, config, lifecycle, err := encode(t)
	if err != nil {
		return err
	}
	_, err = s.write(ctx, s.q.create, string(t.ID), t.Issuer, t.ExternalID, t.Name, string(t.Status),
		trialArg(t.TrialEndsAt), t.RateLimit, t.RateBurst, tools, flags, config, t.CreatedAt, t.UpdatedAt, lifecycle)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505" && strings.HasSuffix(pe.ConstraintName, "_pkey"):
		return fmt.Errorf("%w: tenant id %s is taken", registry.ErrExists, t.ID)
	case errors.As(err, &pe) && pe.Code == "23505":
		return registry.ExistsError(t.Issuer, t.ExternalID)
	case err != nil:
		return fmt.Errorf("pgstore: create tenant: %w", err)
	}
	return nil
}

// Update implements registry.Store.
func (s *Store) Update(ctx context.Context, t *registry.Tenant) error {
	tools, flags, config, lifecycle, err := encode(t)
	if err != nil {
		return err
	}
	n, err := s.write(ctx, s.q.update, string(t.ID), t.Name, string(t.Status), trialArg(t.TrialEndsAt),
		t.RateLimit, t.RateBurst, tools, flags, config, t.UpdatedAt, lifecycle)
	return affected(n, err, "update tenant")
}

// Delete implements registry.Store.
func (s *Store) Delete(ctx context.Context, id tenant.ID) error {
	n, err := s.write(ctx, s.q.delete, string(id))
	return affected(n, err, "delete tenant")
}

// write runs a notifying statement with the channel as $1 and returns how
// many rows it wrote.
func (s *Store) write(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, sql, append([]any{s.channel}, args...)...).Scan(&n)
	return n, err
}

func affected(n int64, err error, op string) error {
	if err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if n == 0 {
		return registry.ErrNotFound
	}
	return nil
}

func trialArg(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// encode returns the jsonb columns as JSON text.
func encode(t *registry.Tenant) (tools, flags, config, lifecycle string, err error) {
	enc := func(v any, n int, empty string) string {
		if n == 0 || err != nil {
			return empty
		}
		b, e := json.Marshal(v)
		if e != nil {
			err = fmt.Errorf("pgstore: encode tenant: %w", e)
		}
		return string(b)
	}
	tools = enc(t.AllowedTools, len(t.AllowedTools), "[]")
	flags = enc(t.Flags, len(t.Flags), "{}")
	config = enc(t.Config, len(t.Config), "{}")
	n := 1
	if t.Lifecycle.IsZero() {
		n = 0
	}
	lifecycle = enc(t.Lifecycle, n, "{}")
	return tools, flags, config, lifecycle, err
}

func scan(row pgx.Row) (*registry.Tenant, error) {
	var (
		t                    registry.Tenant
		id, status           string
		trial                *time.Time
		tools, flags, config []byte
		lifecycle            []byte
	)
	if err := row.Scan(&id, &t.Issuer, &t.ExternalID, &t.Name, &status, &trial, &t.RateLimit, &t.RateBurst,
		&tools, &flags, &config, &t.CreatedAt, &t.UpdatedAt, &lifecycle); err != nil {
		return nil, err
	}
	t.ID, t.Status = tenant.ID(id), registry.Status(status)
	if trial != nil {
		t.TrialEndsAt = trial.UTC()
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	if err := decode(tools, &t.AllowedTools); err != nil {
		return nil, fmt.Errorf("tenant %s: allowed_tools: %w", id, err)
	}
	if err := decode(flags, &t.Flags); err != nil {
		return nil, fmt.Errorf("tenant %s: flags: %w", id, err)
	}
	if err := decode(config, &t.Config); err != nil {
		return nil, fmt.Errorf("tenant %s: config: %w", id, err)
	}
	if err := decode(lifecycle, &t.Lifecycle); err != nil {
		return nil, fmt.Errorf("tenant %s: lifecycle: %w", id, err)
	}
	t.Lifecycle = t.Lifecycle.UTC()
	return &t, nil
}

// decode unmarshals jsonb text, leaving dst nil for an empty list or map.
func decode(b []byte, dst any) error {
	switch string(b) {
	case "", "null", "[]", "{}":
		return nil
	}
	return json.Unmarshal(b, dst)
}
