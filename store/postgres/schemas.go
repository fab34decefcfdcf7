package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// SchemaName returns the schema, and the NOLOGIN role, of tenant id:
// "t_" followed by the registry-assigned internal id. It never depends on
// claim text. id must be valid.
func SchemaName(id tenant.ID) string { return "t_" + string(id) }

// tenantSchemaMigrations are tenantmcp's own tables in every tenant schema.
var tenantSchemaMigrations = []Migration{{Version: 1, Name: "documents table", SQL: `
CREATE TABLE tenantmcp_documents (
	key        text COLLATE "C" PRIMARY KEY,
	content    bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
`}}

// SchemaOptions configures NewSchemas.
type SchemaOptions struct {
	// Provisioner, if set, provisions a tenant whose schema is missing on
	// its first transaction instead of failing with ErrNotProvisioned.
	// Meant for development and tests: it needs the administrator pool in
	// the serving process. nil means never provision on demand.
	Provisioner *Provisioner
	// Logger receives failures to roll back. nil discards.
	Logger *slog.Logger
}

// Schemas is the schema-per-tenant strategy. Each tenant has a schema and
// a NOLOGIN role, both named SchemaName(id); the application role is
// NOINHERIT and a member of every tenant role, so it holds no tenant's
// privileges until a transaction does
//
//	BEGIN; SET LOCAL ROLE "t_…"; SET LOCAL search_path = "t_…", pg_temp; ...; COMMIT
//
// (the first three statements as one simple query, one round trip).
// Inside that transaction other tenants' schemas are unreadable even by
// qualified name (permission denied); after it, nothing remains set.
type Schemas struct {
	pool   *pgxpool.Pool
	prov   *Provisioner
	log    *slog.Logger
	closed atomic.Bool
}

var (
	_ store.Backend    = (*Schemas)(nil)
	_ store.SQLBackend = (*Schemas)(nil)
)

// NewSchemas returns the schema-per-tenant backend over pool, which must
// connect as the application role (check it with CheckAppRole). The
// caller owns pool: Close does not close it.
func NewSchemas(pool *pgxpool.Pool, o *SchemaOptions) (*Schemas, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	if o == nil {
		o = &SchemaOptions{}
	}
	return &Schemas{pool: pool, prov: o.Provisioner, log: logger(o.Logger)}, nil
}

// InTx runs fn in one transaction, on one connection, as tenant id's role
// with search_path set to its schema; unqualified table names resolve in
// the tenant's schema. It returns ErrNotProvisioned if the tenant has no
// schema (unless SchemaOptions.Provisioner is set). If fn returns an error,
// or a statement fails, everything is rolled back, role and search_path
// included.
func (s *Schemas) InTx(ctx context.Context, id tenant.ID, fn func(store.Tx) error) error {
	return s.tx(ctx, id, func(tx pgx.Tx) error { return fn(pgTx{tx}) })
}

func (s *Schemas) tx(ctx context.Context, id tenant.ID, fn func(pgx.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !id.Valid() {
		return fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	name := ident(SchemaName(id))
	begin := "BEGIN; SET LOCAL ROLE " + name + "; SET LOCAL search_path = " + name + ", pg_temp"
	run := func() error {
		err := runTx(ctx, s.pool, s.log, begin, fn)
		var be *beginError
		if errors.As(err, &be) {
			switch pgCode(be.err) {
			case "22023", "42501": // SET ROLE: no such role; not a member of it
				return ErrNotProvisioned
			}
		}
		return err
	}
	err := run()
	if errors.Is(err, ErrNotProvisioned) && s.prov != nil {
		if perr := s.prov.Provision(ctx, id); perr != nil {
			return perr
		}
		err = run()
	}
	return err
}

const (
	schemaGet    = `SELECT content FROM tenantmcp_documents WHERE key = $1`
	schemaPut    = `INSERT INTO tenantmcp_documents (key, content) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET content = EXCLUDED.content, updated_at = now()`
	schemaDelete = `DELETE FROM tenantmcp_documents WHERE key = $1`
	schemaList   = `SELECT key FROM tenantmcp_documents WHERE starts_with(key, $1) ORDER BY key`
)

// Get implements store.Backend.
func (s *Schemas) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	var v []byte
	err := s.tx(ctx, id, func(tx pgx.Tx) error { return tx.QueryRow(ctx, schemaGet, key).Scan(&v) })
	return docResult(v, err, "get")
}

// Put implements store.Backend.
func (s *Schemas) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	err := s.tx(ctx, id, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, schemaPut, key, value)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotProvisioned) {
		return fmt.Errorf("postgres: put document: %w", err)
	}
	return err
}

// Delete implements store.Backend.
func (s *Schemas) Delete(ctx context.Context, id tenant.ID, key string) error {
	return s.tx(ctx, id, func(tx pgx.Tx) error { return deleteDoc(ctx, tx, schemaDelete, key) })
}

// List implements store.Backend.
func (s *Schemas) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	var keys []string
	err := s.tx(ctx, id, func(tx pgx.Tx) error {
		var err error
		keys, err = listDocs(ctx, tx, schemaList, prefix)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotProvisioned) {
		return nil, fmt.Errorf("postgres: list documents: %w", err)
	}
	return keys, err
}

// Close marks the backend closed. It does not close the pool.
func (s *Schemas) Close() error {
	s.closed.Store(true)
	return nil
}

// ProvisionerOptions configures NewProvisioner.
type ProvisionerOptions struct {
	// OwnerRole owns every tenant schema and its tables. "" means
	// DefaultOwnerRole.
	OwnerRole string
	// AppRole is made a member of every tenant role. "" means
	// DefaultAppRole.
	AppRole string
	// Migrations are the application's own tables in every tenant schema,
	// applied after tenantmcp's own (tenantmcp_documents), with
	// search_path set to the tenant's schema, so write unqualified names.
	// Tables and sequences they create are usable by the tenant role
	// (SELECT, INSERT, UPDATE, DELETE; USAGE, SELECT) through default
	// privileges. nil means none.
	Migrations []Migration
	// Logger receives one line per provisioned tenant and applied
	// migration. nil discards.
	Logger *slog.Logger
}

// Provisioner creates and upgrades tenant schemas, and is their
// store.Portable: it exports, imports and purges them. Its pool must connect
// as a superuser, or as a CREATEROLE administrator that is a member of the
// owner role (Setup arranges that): creating a tenant role needs
// CREATEROLE, which neither the owner nor the application role has.
type Provisioner struct {
	pool       *pgxpool.Pool
	roles      roleNames
	migrations []Migration
	log        *slog.Logger
}

// NewProvisioner returns a Provisioner over the administrator pool admin.
func NewProvisioner(admin *pgxpool.Pool, o *ProvisionerOptions) (*Provisioner, error) {
	if admin == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	if o == nil {
		o = &ProvisionerOptions{}
	}
	r, err := newRoleNames(o.OwnerRole, o.AppRole)
	if err != nil {
		return nil, err
	}
	if err := checkMigrations(o.Migrations); err != nil {
		return nil, err
	}
	return &Provisioner{pool: admin, roles: r, migrations: o.Migrations, log: logger(o.Logger)}, nil
}

// Provision creates tenant id's role and schema if they are missing,
// (re)applies their grants, applies the schema's missing migrations
// (recorded in the schema's own tenantmcp_migrations table) and records
// the tenant in public.tenantmcp_schemas, all in one transaction. It is
// idempotent and serialised per tenant by an advisory lock. Purge removes
// the schema and role again.
func (p *Provisioner) Provision(ctx context.Context, id tenant.ID) error {
	_, err := p.provision(ctx, id)
	return err
}

func (p *Provisioner) provision(ctx context.Context, id tenant.ID) (applied int, err error) {
	if !id.Valid() {
		return 0, fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := p.prepareSchema(ctx, tx, id); err != nil {
			return err
		}
		var err error
		if applied, err = p.migrateSchema(ctx, tx, id, nil); err != nil {
			return err
		}
		return recordSchema(ctx, tx, id, applied > 0)
	})
	if err != nil {
		if errors.Is(err, ErrNotMigrated) {
			return 0, err
		}
		return 0, fmt.Errorf("postgres: provision tenant %s: %w", id, err)
	}
	level := slog.LevelDebug
	if applied > 0 {
		level = slog.LevelInfo
	}
	p.log.Log(ctx, level, "tenant schema ready", "tenant_id", string(id), "schema", SchemaName(id), "applied", applied)
	return applied, nil
}

// Components of the migrations recorded in a tenant schema.
const (
	componentTenantmcp = "tenantmcp" // tenantSchemaMigrations
	componentApp       = "app"       // ProvisionerOptions.Migrations
)

// prepareSchema is the first part of provisioning tenant id in tx: under
// the tenant's advisory lock it creates the role and schema if they are
// missing, (re)applies their grants and creates the schema's migrations
// table. It leaves tx acting as the owner role, with search_path set to
// the schema.
func (p *Provisioner) prepareSchema(ctx context.Context, tx pgx.Tx, id tenant.ID) error {
	name := SchemaName(id)
	q := ident(name)
	owner := ident(p.roles.owner)
	if err := lockTenant(ctx, tx, id); err != nil {
		return err
	}
	var catalog, roleExists bool
	var version int
	if err := tx.QueryRow(ctx, `SELECT to_regclass('public.tenantmcp_schemas') IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		current_setting('server_version_num')::int`, name).Scan(&catalog, &roleExists, &version); err != nil {
		return err
	}
	if !catalog {
		return ErrNotMigrated
	}
	if !roleExists {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+q+" NOLOGIN NOINHERIT"); err != nil {
			return fmt.Errorf("create tenant role: %w", err)
		}
	}
	grant := "GRANT " + q + " TO " + ident(p.roles.app)
	if version >= 160000 {
		grant += " WITH INHERIT FALSE, SET TRUE"
	}
	if _, err := tx.Exec(ctx, grant); err != nil {
		return fmt.Errorf("grant tenant role to %q: %w", p.roles.app, err)
	}
	if err := setOwner(ctx, tx, p.roles.owner); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
		return fmt.Errorf("create tenant schema: %w", err)
	}
	var schemaOwner string
	if err := tx.QueryRow(ctx, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", name).Scan(&schemaOwner); err != nil {
		return err
	}
	if schemaOwner != p.roles.owner {
		return fmt.Errorf("schema %s exists but is owned by %q, not %q: refusing to use it", q, schemaOwner, p.roles.owner)
	}
	// The migrations table is created before the default privileges,
	// so the tenant role gets no privilege on it.
	if _, err := tx.Exec(ctx, `REVOKE ALL ON SCHEMA `+q+` FROM PUBLIC;
GRANT USAGE ON SCHEMA `+q+` TO `+q+`;
CREATE TABLE IF NOT EXISTS `+q+`.tenantmcp_migrations (
	component  text NOT NULL,
	version    integer NOT NULL,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
);
REVOKE ALL ON `+q+`.tenantmcp_migrations FROM PUBLIC, `+q+`;
ALTER DEFAULT PRIVILEGES FOR ROLE `+owner+` IN SCHEMA `+q+` GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO `+q+`;
ALTER DEFAULT PRIVILEGES FOR ROLE `+owner+` IN SCHEMA `+q+` GRANT USAGE, SELECT ON SEQUENCES TO `+q+`;
SET LOCAL search_path = `+q); err != nil {
		return fmt.Errorf("prepare tenant schema: %w", err)
	}
	return nil
}

// migrateSchema applies the migrations tenant id's schema is missing, in
// tx after prepareSchema; with upTo, those of each component only up to
// upTo[component] (none of a component upTo does not name).
func (p *Provisioner) migrateSchema(ctx context.Context, tx pgx.Tx, id tenant.ID, upTo map[string]int) (applied int, err error) {
	table := ident(SchemaName(id)) + ".tenantmcp_migrations"
	for _, c := range []struct {
		component string
		ms        []Migration
	}{{componentTenantmcp, tenantSchemaMigrations}, {componentApp, p.migrations}} {
		ms := c.ms
		if upTo != nil {
			ms = migrationsUpTo(ms, upTo[c.component])
		}
		n, err := applyMigrations(ctx, tx, p.log, table, c.component, ms)
		applied += n
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// recordSchema records tenant id in the catalog, with migrated_at set to
// now if migrated.
func recordSchema(ctx context.Context, tx pgx.Tx, id tenant.ID, migrated bool) error {
	_, err := tx.Exec(ctx, `INSERT INTO public.tenantmcp_schemas (tenant_id, schema_name) VALUES ($1, $2)
		ON CONFLICT (tenant_id) DO UPDATE SET migrated_at = now() WHERE $3`, string(id), SchemaName(id), migrated)
	return err
}

// lockTenant takes tenant id's advisory lock for the rest of tx: it
// serialises provisioning, imports and purges of one tenant.
func lockTenant(ctx context.Context, tx pgx.Tx, id tenant.ID) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockProvision, string(id))
	return err
}

// MigrateAll brings every tenant schema recorded in public.tenantmcp_schemas
// up to date (Provision for each, in tenant id order), calling progress,
// if not nil, after each one. It stops at the first failure and says which
// tenant failed; running it again is safe and skips what is done.
func (p *Provisioner) MigrateAll(ctx context.Context, progress func(done, total int, id tenant.ID)) error {
	var ids []tenant.ID
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := setOwner(ctx, tx, p.roles.owner); err != nil {
			return err
		}
		var catalog bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass('public.tenantmcp_schemas') IS NOT NULL").Scan(&catalog); err != nil {
			return err
		}
		if !catalog {
			return ErrNotMigrated
		}
		rows, err := tx.Query(ctx, "SELECT tenant_id FROM public.tenantmcp_schemas ORDER BY tenant_id")
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenant.ID, error) {
			var s string
			if err := r.Scan(&s); err != nil {
				return "", err
			}
			return tenant.ParseID(s)
		})
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotMigrated) {
			return err
		}
		return fmt.Errorf("postgres: list tenant schemas: %w", err)
	}
	total := 0
	for i, id := range ids {
		n, err := p.provision(ctx, id)
		if err != nil {
			return fmt.Errorf("postgres: migrate tenant schemas: %d of %d done: %w", i, len(ids), err)
		}
		total += n
		if progress != nil {
			progress(i+1, len(ids), id)
		}
	}
	p.log.InfoContext(ctx, "tenant schemas migrated", "schemas", len(ids), "applied", total)
	return nil
}
