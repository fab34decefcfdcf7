package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Strategy names a PostgreSQL isolation strategy, spelt as in the
// deployment file's isolation key.
type Strategy string

// Strategies.
const (
	// RowLevelSecurity: one shared table, rows filtered by a policy on
	// the transaction-local setting app.tenant_id.
	RowLevelSecurity Strategy = "row_level_security"
	// SchemaPerTenant: one schema and one NOLOGIN role per tenant.
	SchemaPerTenant Strategy = "schema_per_tenant"
)

// Migration is one versioned, forward-only schema change. SQL may hold
// several statements; it runs in a transaction as the owner role, with
// search_path set to the target schema (public for Migrate, the tenant's
// schema for Provisioner).
type Migration struct {
	// Version orders migrations; versions start at 1 and increase.
	Version int
	// Name describes the change; it is recorded with the version.
	Name string
	// SQL is the change itself.
	SQL string
}

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// OwnerRole owns the tables. "" means DefaultOwnerRole.
	OwnerRole string
	// AppRole is granted SELECT, INSERT, UPDATE, DELETE on the documents
	// table. "" means DefaultAppRole.
	AppRole string
	// Migrations are the application's own shared tables (in schema
	// public), applied after tenantmcp's own. Use EnableRLS afterwards for
	// each table that holds tenant rows. nil means none.
	Migrations []Migration
	// Logger receives one line per applied migration. nil discards.
	Logger *slog.Logger
}

// Built-in migrations of the shared schema (public), per strategy.
var sharedMigrations = map[Strategy][]Migration{
	RowLevelSecurity: {{Version: 1, Name: "documents table with forced row level security", SQL: `
CREATE TABLE public.tenantmcp_documents (
	tenant_id  text COLLATE "C" NOT NULL DEFAULT current_setting('app.tenant_id'),
	key        text COLLATE "C" NOT NULL,
	content    bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, key),
	CONSTRAINT tenantmcp_documents_tenant_id_check CHECK (tenant_id ~ '^t[a-z2-7]{20}$')
);
ALTER TABLE public.tenantmcp_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tenantmcp_documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.tenantmcp_documents
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
`}},
	SchemaPerTenant: {{Version: 1, Name: "tenant schema catalog", SQL: `
CREATE TABLE public.tenantmcp_schemas (
	tenant_id      text COLLATE "C" PRIMARY KEY CHECK (tenant_id ~ '^t[a-z2-7]{20}$'),
	schema_name    text COLLATE "C" NOT NULL UNIQUE,
	provisioned_at timestamptz NOT NULL DEFAULT now(),
	migrated_at    timestamptz NOT NULL DEFAULT now()
);
`}},
}

// Migrate brings the shared tables of strategy up to date: versioned,
// idempotent, recorded in public.tenantmcp_migrations, and serialised by an
// advisory lock so replicas starting together are safe. pool must connect
// as the owner role or as an administrator that may SET ROLE to it (see
// Setup); every change runs in one transaction as the owner role. It also
// (re)grants the application role its table privileges.
//
// For SchemaPerTenant this creates the tenant catalog; the tenant schemas
// themselves are created and upgraded by Provisioner.
func Migrate(ctx context.Context, pool *pgxpool.Pool, strategy Strategy, o *MigrateOptions) error {
	if o == nil {
		o = &MigrateOptions{}
	}
	if pool == nil {
		return fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	builtin, ok := sharedMigrations[strategy]
	if !ok {
		return fmt.Errorf("%w: unknown strategy %q (want %q or %q)", ErrInvalidOptions, strategy, RowLevelSecurity, SchemaPerTenant)
	}
	r, err := newRoleNames(o.OwnerRole, o.AppRole)
	if err != nil {
		return err
	}
	if err := checkMigrations(o.Migrations); err != nil {
		return err
	}
	log := logger(o.Logger)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
			return err
		}
		if err := setOwner(ctx, tx, r.owner); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = public;
CREATE TABLE IF NOT EXISTS public.tenantmcp_migrations (
	component  text NOT NULL,
	version    integer NOT NULL,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
)`); err != nil {
			return err
		}
		if _, err := applyMigrations(ctx, tx, log, "public.tenantmcp_migrations", "tenantmcp_"+string(strategy), builtin); err != nil {
			return err
		}
		if _, err := applyMigrations(ctx, tx, log, "public.tenantmcp_migrations", "app", o.Migrations); err != nil {
			return err
		}
		if strategy == RowLevelSecurity {
			if _, err := tx.Exec(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON public.tenantmcp_documents TO "+ident(r.app)); err != nil {
				return fmt.Errorf("grant documents table to %q: %w", r.app, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", strategy, err)
	}
	return nil
}

// setOwner switches the transaction to the owner role.
func setOwner(ctx context.Context, tx pgx.Tx, owner string) error {
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident(owner)); err != nil {
		return fmt.Errorf("act as owner role %q (run Setup, and connect as the owner or an administrator that is a member of it): %w", owner, err)
	}
	return nil
}

func checkMigrations(ms []Migration) error {
	last := 0
	for _, m := range ms {
		if m.Version <= last {
			return fmt.Errorf("%w: migration versions must start at 1 and increase: %d after %d", ErrInvalidOptions, m.Version, last)
		}
		if strings.TrimSpace(m.SQL) == "" {
			return fmt.Errorf("%w: migration %d (%s) has no SQL", ErrInvalidOptions, m.Version, m.Name)
		}
		last = m.Version
	}
	return nil
}

// applyMigrations applies the migrations of component that table does not
// record yet, in order, and records them. It refuses a database that has
// versions newer than the binary knows. An empty ms means the caller does
// not manage component (a generic tenantmcp binary knows none of the
// application's migrations): nothing is checked or applied. The caller
// holds the lock.
func applyMigrations(ctx context.Context, tx pgx.Tx, log *slog.Logger, table, component string, ms []Migration) (applied int, err error) {
	if len(ms) == 0 {
		return 0, nil
	}
	rows, err := tx.Query(ctx, "SELECT version FROM "+table+" WHERE component = $1", component)
	if err != nil {
		return 0, err
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, err
	}
	have := map[int]bool{}
	latest := ms[len(ms)-1].Version
	for _, v := range done {
		have[int(v)] = true
		if int(v) > latest {
			return 0, fmt.Errorf("%s is at %s version %d but this binary knows only up to %d: upgrade tenantmcp", table, component, v, latest)
		}
	}
	for _, m := range ms {
		if have[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return applied, fmt.Errorf("%s migration %d (%s): %w", component, m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (component, version, name) VALUES ($1, $2, $3)", component, m.Version, m.Name); err != nil {
			return applied, err
		}
		log.InfoContext(ctx, "applied migration", "table", table, "component", component, "version", m.Version, "name", m.Name)
		applied++
	}
	return applied, nil
}

// EnableRLS puts one of the application's own shared tables under the same
// tenant isolation as tenantmcp_documents. The table (name or
// schema.name; public by default) must have a column tenant_id of type
// text. EnableRLS, idempotently and in one transaction as the owner role:
// sets tenant_id's default to current_setting('app.tenant_id'), adds a
// CHECK that it is not empty, enables and forces row level security,
// (re)creates the policy tenant_isolation, creates an index on tenant_id
// unless an index already leads with it, and grants the application role
// SELECT, INSERT, UPDATE, DELETE on the table and USAGE on its serial
// sequences.
func EnableRLS(ctx context.Context, pool *pgxpool.Pool, table string, o *MigrateOptions) error {
	if o == nil {
		o = &MigrateOptions{}
	}
	if pool == nil {
		return fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	r, err := newRoleNames(o.OwnerRole, o.AppRole)
	if err != nil {
		return err
	}
	parts := strings.Split(table, ".")
	if len(parts) == 1 {
		parts = []string{"public", parts[0]}
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("%w: table %q: want name or schema.name", ErrInvalidOptions, table)
	}
	qt := pgx.Identifier(parts).Sanitize()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
			return err
		}
		if err := setOwner(ctx, tx, r.owner); err != nil {
			return err
		}
		var oid uint32
		var typ *string
		err := tx.QueryRow(ctx, `SELECT c.oid, format_type(a.atttypid, a.atttypmod)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, parts[0], parts[1]).Scan(&oid, &typ)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("table %s not found: create it in a migration first", qt)
		case err != nil:
			return err
		case typ == nil:
			return fmt.Errorf("table %s has no tenant_id column: add `tenant_id text NOT NULL`", qt)
		case *typ != "text":
			return fmt.Errorf("table %s: tenant_id is %s, want text", qt, *typ)
		}
		stmts := []string{
			"ALTER TABLE " + qt + " ALTER COLUMN tenant_id SET DEFAULT current_setting('app.tenant_id')",
			"ALTER TABLE " + qt + " ALTER COLUMN tenant_id SET NOT NULL",
			"ALTER TABLE " + qt + " ENABLE ROW LEVEL SECURITY",
			"ALTER TABLE " + qt + " FORCE ROW LEVEL SECURITY",
			"DROP POLICY IF EXISTS tenant_isolation ON " + qt,
			"CREATE POLICY tenant_isolation ON " + qt + " USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true))",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON " + qt + " TO " + ident(r.app),
		}
		var hasCheck, hasIndex bool
		if err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1 AND conname = 'tenantmcp_tenant_id_not_empty'),
			EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
				WHERE i.indrelid = $1 AND a.attname = 'tenant_id')`, oid).Scan(&hasCheck, &hasIndex); err != nil {
			return err
		}
		if !hasCheck {
			stmts = append(stmts, "ALTER TABLE "+qt+" ADD CONSTRAINT tenantmcp_tenant_id_not_empty CHECK (tenant_id <> '')")
		}
		if !hasIndex {
			stmts = append(stmts, "CREATE INDEX ON "+qt+" (tenant_id)")
		}
		rows, err := tx.Query(ctx, `SELECT s.oid::regclass::text FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
			WHERE d.refobjid = $1 AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND s.relkind = 'S'`, oid)
		if err != nil {
			return err
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, s := range seqs { // regclass text output is already quoted
			stmts = append(stmts, "GRANT USAGE, SELECT ON SEQUENCE "+s+" TO "+ident(r.app))
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: enable row level security on %s: %w", table, err)
	}
	return nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}
