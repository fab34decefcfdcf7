package pgadmin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Table names, in the schema of Options.Schema (default public).
const (
	ImpersonationsTable = "tenantmcp_admin_impersonations"
	IdempotencyTable    = "tenantmcp_admin_idempotency"
	// VersionTable records the versions of this package's migrations.
	VersionTable = "tenantmcp_admin_version"
)

// migration is one versioned, forward-only schema change; {schema} stands
// for the quoted schema. Append only: never edit or reorder an applied one.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{{1, "impersonation grants and idempotency keys", `
CREATE TABLE {schema}.tenantmcp_admin_impersonations (
	id                text COLLATE "C" NOT NULL,
	token_hash        bytea NOT NULL CHECK (length(token_hash) = 32), -- SHA-256 of the credential
	tenant            text COLLATE "C" NOT NULL,
	admin             text COLLATE "C" NOT NULL,
	admin_issuer      text NOT NULL DEFAULT '',
	user_id           text NOT NULL,
	reason            text NOT NULL,
	ticket            text NOT NULL DEFAULT '',
	scopes            text[] NOT NULL DEFAULT '{}',
	read_only         boolean NOT NULL,
	include_suspended boolean NOT NULL,
	created_at        timestamptz NOT NULL,
	expires_at        timestamptz NOT NULL,
	ended_at          timestamptz,                 -- NULL while not ended
	ended_by          text NOT NULL DEFAULT '',
	CONSTRAINT tenantmcp_admin_impersonations_pkey PRIMARY KEY (id),
	CONSTRAINT tenantmcp_admin_impersonations_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX tenantmcp_admin_impersonations_newest ON {schema}.tenantmcp_admin_impersonations (created_at DESC, id DESC);
CREATE INDEX tenantmcp_admin_impersonations_tenant ON {schema}.tenantmcp_admin_impersonations (tenant, created_at DESC, id DESC);
CREATE INDEX tenantmcp_admin_impersonations_admin ON {schema}.tenantmcp_admin_impersonations (admin, created_at DESC, id DESC);

CREATE TABLE {schema}.tenantmcp_admin_idempotency (
	key        text COLLATE "C" NOT NULL,
	request    bytea NOT NULL CHECK (length(request) = 32), -- SHA-256 of the request
	tenant     text COLLATE "C" NOT NULL DEFAULT '',        -- '' while the create runs
	created_at timestamptz NOT NULL,
	CONSTRAINT tenantmcp_admin_idempotency_pkey PRIMARY KEY (key)
);
CREATE INDEX tenantmcp_admin_idempotency_created ON {schema}.tenantmcp_admin_idempotency (created_at);
`}}

// lockMigrate is the advisory lock of store/postgres's and pgaudit's
// migrations ("tmcp_mig"): taking it too, these never run at the same
// time as those, which may create the same schema.
const lockMigrate int64 = 0x746d63705f6d6967

// Migrate brings the admin tables to the current version: it creates the
// schema if missing, the version table and the tables, as Options.OwnerRole
// if set, and grants Options.GrantTo what the server needs (see Options).
// It is idempotent and safe to run from several processes at once: they
// serialise on an advisory lock held for the transaction, which applies
// each migration once. An up-to-date schema with no GrantTo needs no
// privilege beyond reading the version table.
func (s *Store) Migrate(ctx context.Context) error {
	current := len(migrations)
	if s.grant == "" {
		if v, err := s.version(ctx, s.pool); err == nil && v == current {
			return nil
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if s.owner != "" {
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+ident(s.owner)); err != nil {
				return fmt.Errorf("act as owner role %q (connect as an administrator that is a member of it; db setup arranges that): %w", s.owner, err)
			}
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+s.qschema); err != nil {
				return fmt.Errorf("create schema %q: %w", s.schema, err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.versions+` (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create %s: %w", VersionTable, err)
		}
		v, err := s.version(ctx, tx)
		if err != nil {
			return err
		}
		for _, m := range migrations[v:] {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(m.sql, "{schema}", s.qschema)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.versions+` (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
			s.log.InfoContext(ctx, "pgadmin: migrated admin tables", "schema", s.schema, "version", m.version, "name", m.name)
		}
		if s.grant != "" {
			return s.grantApp(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgadmin: migrate schema %q: %w", s.schema, err)
	}
	return nil
}

// grantApp gives the application role exactly what the server needs,
// revoking anything else it (or PUBLIC) held on the tables, so that every
// Migrate converges on these privileges. Grants are never deleted and
// only their end can be changed, so an ended or expired grant cannot be
// revived or erased through the server's connection.
func (s *Store) grantApp(ctx context.Context, tx pgx.Tx) error {
	app := ident(s.grant)
	for _, g := range []string{
		`REVOKE ALL ON ` + s.impersonations + `, ` + s.idempotency + `, ` + s.versions + ` FROM PUBLIC, ` + app,
		`GRANT USAGE ON SCHEMA ` + s.qschema + ` TO ` + app,
		`GRANT SELECT ON ` + s.versions + ` TO ` + app,
		`GRANT SELECT, INSERT ON ` + s.impersonations + ` TO ` + app,
		`GRANT UPDATE (ended_at, ended_by) ON ` + s.impersonations + ` TO ` + app,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + s.idempotency + ` TO ` + app,
	} {
		if _, err := tx.Exec(ctx, g); err != nil {
			return fmt.Errorf("grant to %q: %s: %w", s.grant, g, err)
		}
	}
	return nil
}

// version returns the schema's admin version: 0 before any migration,
// ErrNotMigrated if the version table does not exist, and an error for a
// version newer than this program knows.
func (s *Store) version(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM `+s.versions).Scan(&v)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"): // undefined_table, invalid_schema_name
		return 0, fmt.Errorf("%w: schema %q has no %s", ErrNotMigrated, s.schema, VersionTable)
	case err != nil:
		return 0, fmt.Errorf("read %s: %w", VersionTable, err)
	case v > len(migrations):
		return 0, fmt.Errorf("schema %q has admin tables at version %d but this program knows only %d: upgrade tenantmcp", s.schema, v, len(migrations))
	}
	return v, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
