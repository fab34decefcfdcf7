package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	// AcquireTimeout is the longest an operation waits for a free
	// connection of the pool; past it the operation fails with
	// ErrPoolTimeout without touching the database. 0 waits as long as
	// the operation's context allows.
	AcquireTimeout time.Duration
	// StatementTimeout is the statement_timeout of every tenant
	// transaction. 0 leaves the server's setting.
	StatementTimeout time.Duration
}

// Schemas is the schema-per-tenant strategy. Each tenant has a schema and
// a NOLOGIN role, both named SchemaName(id); the application role is
// NOINHERIT and a member of every tenant role, so it holds no tenant's
// privileges until a transaction takes the tenant's role and search_path.
// Inside that transaction other tenants' schemas are unreadable even by
// qualified name (permission denied); after it, nothing remains set.
//
// A documents operation is one round trip, like RLS's (see oneTrip):
//
//	SELECT set_config('role', $1, true), set_config('search_path', $2, true) | the statement | Sync
//
// Its statements are unqualified, so they must be parsed with the
// tenant's search_path in force: they are prepared once per connection,
// inside the first tenant transaction on it (prepareDocs). PostgreSQL
// then re-plans them whenever the search_path differs from their last
// use (docs/benchmarks-isolation.md measures what that costs). InTx opens
// its transaction with one simple query,
//
//	BEGIN; SET LOCAL ROLE "t_…"; SET LOCAL search_path = "t_…", pg_temp
//
// so entering costs no round trip beyond BEGIN's: fn's statements are
// unqualified too, and pgx would prepare a statement it has not seen
// outside the transaction, before the batch that enters the tenant.
type Schemas struct {
	pool   *pgxpool.Pool
	prov   *Provisioner
	log    *slog.Logger
	limits limits
	// prepare is false when the pool's query mode prepares nothing (every
	// mode but cache_statement: for PgBouncer without prepared
	// statements); oneTrip then sends the documents statements unnamed,
	// parsed in order after the search_path is set.
	prepare bool
	closed  atomic.Bool
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
	if o.AcquireTimeout < 0 || o.StatementTimeout < 0 {
		return nil, fmt.Errorf("%w: AcquireTimeout and StatementTimeout must not be negative", ErrInvalidOptions)
	}
	return &Schemas{pool: pool, prov: o.Provisioner, log: logger(o.Logger),
		limits:  newLimits(o.AcquireTimeout, o.StatementTimeout),
		prepare: prepares(pool.Config().ConnConfig)}, nil
}

// InTx runs fn in one transaction, on one connection, as tenant id's role
// with search_path set to its schema; unqualified table names resolve in
// the tenant's schema. It returns ErrNotProvisioned if the tenant has no
// schema (unless SchemaOptions.Provisioner is set). If fn returns an error,
// or a statement fails, everything is rolled back, role and search_path
// included.
func (s *Schemas) InTx(ctx context.Context, id tenant.ID, fn func(store.Tx) error) error {
	return s.run(ctx, id, func(c *pgx.Conn) error {
		return txOn(ctx, c, s.log, s.begin(id), func(tx pgx.Tx) error { return fn(pgTx{tx}) })
	})
}

// run checks id, then runs op on a connection of the pool; if op finds
// the tenant not provisioned and a Provisioner is set, it provisions the
// tenant (with no connection of the pool held) and runs op once more.
// Failures to enter the tenant's role become ErrNotProvisioned.
func (s *Schemas) run(ctx context.Context, id tenant.ID, op func(*pgx.Conn) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !id.Valid() {
		return fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	try := func() error {
		conn, err := s.limits.conn(ctx, s.pool)
		if err != nil {
			return err
		}
		defer conn.Release() // destroys the connection unless it is idle and healthy
		err = op(conn.Conn())
		var be *beginError
		if errors.As(err, &be) {
			switch pgCode(be.err) {
			case "22023", "42501": // SET ROLE: no such role; not a member of it
				return ErrNotProvisioned
			}
		}
		return err
	}
	err := try()
	if errors.Is(err, ErrNotProvisioned) && s.prov != nil {
		if perr := s.prov.Provision(ctx, id); perr != nil {
			return perr
		}
		err = try()
	}
	return err
}

// begin is the BEGIN query of tenant id's InTx transactions, one simple
// query. The names are quoted identifiers of a valid tenant.ID and the
// timeout a number of milliseconds, so nothing in it can end a literal.
func (s *Schemas) begin(id tenant.ID) string {
	name := ident(SchemaName(id))
	q := "BEGIN; SET LOCAL ROLE " + name + "; SET LOCAL search_path = " + name + ", pg_temp"
	if ms := s.limits.statementMS(); ms != "" {
		q += "; SET LOCAL statement_timeout = " + ms
	}
	return q
}

// Statements that enter tenant id (the second with a statement timeout):
// the same as SET LOCAL ROLE and SET LOCAL search_path, with the names as
// parameters, so their text is the same for every tenant.
const (
	schemaEnter        = `SELECT set_config('role', $1, true), set_config('search_path', $2, true)`
	schemaEnterTimeout = `SELECT set_config('role', $1, true), set_config('search_path', $2, true), set_config('statement_timeout', $3, true)`
)

// enter returns the statement that enters tenant id's schema (and sets
// the statement timeout), with its arguments.
func (s *Schemas) enter(id tenant.ID) wireQuery {
	name := SchemaName(id)
	path := ident(name) + ", pg_temp"
	if s.limits.ms != "" {
		return wireQuery{sql: schemaEnterTimeout, params: [][]byte{text(name), text(path), text(s.limits.ms)}}
	}
	return wireQuery{sql: schemaEnter, params: [][]byte{text(name), text(path)}}
}

const (
	schemaGet    = `SELECT content FROM tenantmcp_documents WHERE key = $1`
	schemaPut    = `INSERT INTO tenantmcp_documents (key, content) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET content = EXCLUDED.content, updated_at = now()`
	schemaDelete = `DELETE FROM tenantmcp_documents WHERE key = $1`
	schemaList   = `SELECT key FROM tenantmcp_documents WHERE starts_with(key, $1) ORDER BY key`
)

// schemaDocs are the documents statements, prepared on each connection
// by prepareDocs.
var schemaDocs = [...]string{schemaGet, schemaPut, schemaDelete, schemaList}

// docsPrepared is the key, in a connection's pgconn CustomData, that says
// schemaDocs are prepared on it.
const docsPrepared = "github.com/tenantmcp/tenantmcp/store/postgres.schemaDocs"

// prepareDocs prepares schemaDocs on c, unless they are already, inside a
// transaction of tenant id, so that their unqualified names are parsed in
// a tenant's schema. Prepared statements outlive the transaction; their
// name is their text, which is how a pgx batch finds them, so a batch
// never prepares them itself (outside the tenant's search_path).
func (s *Schemas) prepareDocs(ctx context.Context, c *pgx.Conn, id tenant.ID) error {
	data := c.PgConn().CustomData()
	if data[docsPrepared] != nil {
		return nil
	}
	err := txOn(ctx, c, s.log, s.begin(id), func(pgx.Tx) error {
		for _, q := range schemaDocs {
			if _, err := c.Prepare(ctx, q, q); err != nil {
				return fmt.Errorf("prepare documents statements: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	data[docsPrepared] = true
	return nil
}

// forgetDocs deallocates schemaDocs on c, so that prepareDocs prepares
// them again.
func forgetDocs(ctx context.Context, c *pgx.Conn) {
	delete(c.PgConn().CustomData(), docsPrepared)
	forgetStatements(ctx, c, schemaDocs[:]...)
}

// one runs the documents statement stmt alone for tenant id in one round
// trip (oneTrip).
func (s *Schemas) one(ctx context.Context, id tenant.ID, stmt wireQuery, read func(*pgconn.ResultReader) error) error {
	return s.run(ctx, id, func(c *pgx.Conn) error {
		enter := s.enter(id)
		for attempt := 0; ; attempt++ {
			if s.prepare {
				if err := s.prepareDocs(ctx, c, id); err != nil {
					return err
				}
			}
			err := oneTrip(ctx, c, s.prepare, enter, stmt, read)
			if !retryable(err) || attempt > 0 {
				return err
			}
			forgetStatements(ctx, c, enter.sql)
			forgetDocs(ctx, c)
		}
	})
}

// Get implements store.Backend.
func (s *Schemas) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	var v []byte
	err := s.one(ctx, id, wireQuery{sql: schemaGet, params: [][]byte{text(key)}, results: binaryResult}, getDoc(&v))
	if errors.Is(err, ErrNotProvisioned) {
		return nil, err
	}
	return docResult(v, err, "get")
}

// Put implements store.Backend.
func (s *Schemas) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	err := s.one(ctx, id, wireQuery{sql: schemaPut, params: [][]byte{text(key), value}, formats: schemaPutFmt}, putDoc)
	if err != nil && !errors.Is(err, ErrNotProvisioned) {
		return fmt.Errorf("postgres: put document: %w", err)
	}
	return err
}

// Delete implements store.Backend.
func (s *Schemas) Delete(ctx context.Context, id tenant.ID, key string) error {
	return deleteResult(s.one(ctx, id, wireQuery{sql: schemaDelete, params: [][]byte{text(key)}}, deleteDoc))
}

// List implements store.Backend.
func (s *Schemas) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	var keys []string
	err := s.one(ctx, id, wireQuery{sql: schemaList, params: [][]byte{text(prefix)}}, listDocs(&keys))
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
