package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migration is one versioned, forward-only schema change. Its SQL uses
// {table} for the quoted, schema-qualified tenants table and {leases} for
// the leases table. Append only.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{
	{1, "tenants table", `
CREATE TABLE {table} (
	id            text COLLATE "C" PRIMARY KEY CHECK (id ~ '^t[a-z2-7]{20}$'),
	issuer        text COLLATE "C" NOT NULL,
	external_id   text COLLATE "C" NOT NULL,
	name          text NOT NULL DEFAULT '',
	status        text NOT NULL,
	trial_ends_at timestamptz,
	rate_limit    integer NOT NULL DEFAULT 0,
	rate_burst    integer NOT NULL DEFAULT 0,
	allowed_tools jsonb NOT NULL DEFAULT '[]',
	flags         jsonb NOT NULL DEFAULT '{}',
	config        jsonb NOT NULL DEFAULT '{}',
	created_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL,
	CONSTRAINT tenantmcp_tenants_issuer_external_id_key UNIQUE (issuer, external_id)
)`},
	{2, "lifecycle state", `ALTER TABLE {table} ADD COLUMN lifecycle jsonb NOT NULL DEFAULT '{}'`},
	// The leases of lifecycle operations (registry.Lease), by tenant key,
	// so that one can be taken before the tenant is registered.
	{3, "lifecycle leases", `
CREATE TABLE {leases} (
	issuer      text COLLATE "C" NOT NULL,
	external_id text COLLATE "C" NOT NULL,
	tenant_id   text COLLATE "C" NOT NULL DEFAULT '',
	operation   text NOT NULL,
	holder      text NOT NULL,
	via         text NOT NULL DEFAULT '',
	token       text COLLATE "C" NOT NULL,
	acquired_at timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	PRIMARY KEY (issuer, external_id)
)`},
}

// SchemaVersion is the version Migrate brings the registry's tables to:
// its number of migrations, each recorded once.
var SchemaVersion = len(migrations)

// lockClass is the first key of the advisory lock Migrate takes; the
// second is hashtext(schema). ("tmrg")
const lockClass int32 = 0x746d7267

// Migrate brings the schema to the current version: it creates the schema
// if missing, the version table and the tenants table, and grants
// Options.GrantTo its privileges. It is idempotent and safe to run from
// several processes at once (they serialise on an advisory lock held for
// the transaction). An up-to-date schema needs no privileges beyond
// reading the version table.
func (s *Store) Migrate(ctx context.Context) error {
	current := len(migrations)
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+s.versions).Scan(&v)
	if err == nil && v == current && s.grant == "" {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClass, s.schema); err != nil {
		return fmt.Errorf("pgstore: migrate: lock: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return fmt.Errorf("pgstore: migrate: create schema %q: %w", s.schema, err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.versions+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("pgstore: migrate: create version table: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+s.versions).Scan(&v); err != nil {
		return fmt.Errorf("pgstore: migrate: read version: %w", err)
	}
	if v > current {
		return fmt.Errorf("pgstore: schema %q has registry version %d but this program knows only %d: upgrade tenantmcp", s.schema, v, current)
	}
	for _, m := range migrations[v:] {
		sql := strings.NewReplacer("{table}", s.table, "{leases}", s.leases).Replace(m.sql)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("pgstore: migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.versions+` (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return fmt.Errorf("pgstore: record migration %d: %w", m.version, err)
		}
		s.log.InfoContext(ctx, "pgstore: migrated tenant registry", "schema", s.schema, "version", m.version, "name", m.name)
	}
	if s.grant != "" {
		role := pgx.Identifier{s.grant}.Sanitize()
		if _, err := tx.Exec(ctx, `GRANT USAGE ON SCHEMA `+pgx.Identifier{s.schema}.Sanitize()+` TO `+role+`;
			GRANT SELECT, INSERT, UPDATE, DELETE ON `+s.table+` TO `+role+`;
			GRANT SELECT, INSERT, UPDATE, DELETE ON `+s.leases+` TO `+role+`;
			GRANT SELECT ON `+s.versions+` TO `+role); err != nil {
			return fmt.Errorf("pgstore: migrate: grant to %q: %w", s.grant, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate: commit: %w", err)
	}
	return nil
}
