package pgaudit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Table and function names, in the schema of Options.Schema (default
// public).
const (
	RecordsTable     = "tenantmcp_audit_records"
	CheckpointsTable = "tenantmcp_audit_checkpoints"
	FloorsTable      = "tenantmcp_audit_floors"
	// TriggerFunction refuses UPDATE, DELETE and TRUNCATE of records and
	// checkpoints, except DELETE in a transaction that set
	// RetentionSetting to "on".
	TriggerFunction = "tenantmcp_audit_append_only"
)

// RetentionSetting is the transaction-local setting (SET LOCAL, or
// set_config(…, true)) that lets DELETE through the append-only trigger.
// DeleteBefore sets it; only a role with DELETE on the tables, which the
// application role lacks, can use it.
const RetentionSetting = "tenantmcp.audit_retention"

// component names this package's migrations in tenantmcp_migrations, the
// table store/postgres keeps its own in.
const component = "tenantmcp_audit"

// lockMigrate is store/postgres's migration advisory lock, so that
// migrations of the two packages never run at once (both may create
// tenantmcp_migrations).
const lockMigrate int64 = 0x746d63705f6d6967 // "tmcp_mig"

// migration is one versioned, forward-only schema change; {schema} stands
// for the quoted schema. Append only.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{{1, "audit records, checkpoints and floors; append-only trigger", `
CREATE TABLE {schema}.tenantmcp_audit_records (
	chain   text COLLATE "C" NOT NULL,  -- tenant id, '' = the system chain
	seq     bigint NOT NULL CHECK (seq > 0),
	prev    bytea NOT NULL CHECK (length(prev) = 32),
	hash    bytea NOT NULL CHECK (length(hash) = 32),
	time    timestamptz NOT NULL,       -- the event's time
	outcome text NOT NULL,
	tool    text NOT NULL,
	user_id text NOT NULL,
	body    bytea NOT NULL,             -- the event's bytes, exactly as hashed
	CONSTRAINT tenantmcp_audit_records_pkey PRIMARY KEY (chain, seq)
);
CREATE INDEX tenantmcp_audit_records_chain_time ON {schema}.tenantmcp_audit_records (chain, time);

CREATE TABLE {schema}.tenantmcp_audit_checkpoints (
	id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- order of storing
	chain     text COLLATE "C" NOT NULL,
	count     bigint NOT NULL CHECK (count >= 0),
	head      bytea NOT NULL CHECK (length(head) = 32),
	time      timestamptz NOT NULL,
	time_ns   smallint NOT NULL CHECK (time_ns BETWEEN 0 AND 999), -- nanoseconds beyond: signed exactly
	key_id    text NOT NULL,
	signature bytea NOT NULL
);
CREATE INDEX tenantmcp_audit_checkpoints_chain ON {schema}.tenantmcp_audit_checkpoints (chain, id);
CREATE INDEX tenantmcp_audit_checkpoints_time ON {schema}.tenantmcp_audit_checkpoints (time);

-- Where a chain stood before its first kept record, once retention
-- removed records: the head of a chain it emptied.
CREATE TABLE {schema}.tenantmcp_audit_floors (
	chain text COLLATE "C" PRIMARY KEY,
	seq   bigint NOT NULL CHECK (seq > 0),
	hash  bytea NOT NULL CHECK (length(hash) = 32)
);

CREATE FUNCTION {schema}.tenantmcp_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' AND current_setting('tenantmcp.audit_retention', true) = 'on' THEN
		RETURN NULL;
	END IF;
	RAISE EXCEPTION 'tenantmcp audit trail is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING HINT = 'Only the retention job removes audit records (DELETE with tenantmcp.audit_retention set, as the owner role).';
END
$$;
CREATE TRIGGER tenantmcp_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.tenantmcp_audit_records
	FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tenantmcp_audit_append_only();
CREATE TRIGGER tenantmcp_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.tenantmcp_audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tenantmcp_audit_append_only();
`}}

// MigrateOptions configures Migrate. A nil *MigrateOptions means defaults.
type MigrateOptions struct {
	// Schema holds the audit tables; Migrate creates it if missing. ""
	// means public.
	Schema string
	// Logger receives one line per applied migration. nil discards.
	Logger *slog.Logger
}

// Migrate creates or upgrades the audit tables, for a deployment's `db
// setup` / `db migrate`: versioned (tenantmcp_migrations, component
// "tenantmcp_audit"), idempotent, serialised with store/postgres's
// migrations by an advisory lock, in one transaction as the owner role —
// pool must connect as owner or as an administrator that may SET ROLE to
// it (store/postgres.Setup arranges that).
//
// The tables belong to owner. app is granted USAGE on the schema and
// SELECT, INSERT on records and checkpoints, SELECT on floors, and nothing
// else: every other privilege it holds on them is revoked, each time
// Migrate runs. A trigger refuses UPDATE, DELETE and TRUNCATE of records
// and checkpoints even to the owner, except DELETE in a transaction that
// sets RetentionSetting (DeleteBefore).
func Migrate(ctx context.Context, pool *pgxpool.Pool, owner, app string, o *MigrateOptions) error {
	if o == nil {
		o = &MigrateOptions{}
	}
	switch {
	case pool == nil:
		return fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	case owner == "" || app == "":
		return fmt.Errorf("%w: owner and application role must both be named", ErrInvalidOptions)
	case owner == app:
		return fmt.Errorf("%w: owner and application role are both %q; they must differ (the application role must not own the audit tables)", ErrInvalidOptions, owner)
	}
	schema := o.Schema
	if schema == "" {
		schema = "public"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	qs := ident(schema)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident(owner)); err != nil {
			return fmt.Errorf("act as owner role %q (run store/postgres Setup, and connect as the owner or an administrator that is a member of it): %w", owner, err)
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+qs); err != nil {
			return fmt.Errorf("create schema %q: %w", schema, err)
		}
		versions := qs + ".tenantmcp_migrations"
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+versions+` (
	component  text NOT NULL,
	version    integer NOT NULL,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM "+versions+" WHERE component = $1", component).Scan(&v); err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("%s is at %s version %d but this binary knows only up to %d: upgrade tenantmcp", versions, component, v, len(migrations))
		}
		for _, m := range migrations[v:] {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(m.sql, "{schema}", qs)); err != nil {
				return fmt.Errorf("%s migration %d (%s): %w", component, m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+versions+" (component, version, name) VALUES ($1, $2, $3)", component, m.version, m.name); err != nil {
				return err
			}
			log.InfoContext(ctx, "applied migration", "table", versions, "component", component, "version", m.version, "name", m.name)
		}
		qa := ident(app)
		records, checkpoints, floors := qs+"."+RecordsTable, qs+"."+CheckpointsTable, qs+"."+FloorsTable
		for _, g := range []string{
			"REVOKE ALL ON " + records + ", " + checkpoints + ", " + floors + " FROM PUBLIC, " + qa,
			"GRANT USAGE ON SCHEMA " + qs + " TO " + qa,
			"GRANT SELECT, INSERT ON " + records + ", " + checkpoints + " TO " + qa,
			"GRANT SELECT ON " + floors + " TO " + qa,
		} {
			if _, err := tx.Exec(ctx, g); err != nil {
				return fmt.Errorf("%s: %w", g, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgaudit: migrate: %w", err)
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
