package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantmcp/tenantmcp/audit/pgaudit"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/postgres"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// ErrNotSetUp is matched (errors.Is) by the error Open returns when the
// PostgreSQL database of database.dsn has not been prepared for tenantmcp:
// the application role may not log in, or the tables do not exist.
// SetupDatabase prepares it (the CLI's "db setup").
var ErrNotSetUp = errors.New("the database is not set up for tenantmcp")

// notSetUpError says what is missing; it matches ErrNotSetUp.
type notSetUpError struct {
	msg   string
	cause error
}

func (e *notSetUpError) Error() string        { return e.msg }
func (e *notSetUpError) Is(target error) bool { return target == ErrNotSetUp }
func (e *notSetUpError) Unwrap() error        { return e.cause }

// pool returns the server's PostgreSQL pool (database.dsn, the
// application role), opening it once.
func (a *App) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if a.pgPool != nil {
		return a.pgPool, nil
	}
	p, err := openPool(ctx, a.Config.Database.DSN, a.Config.Database.MaxConns)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "28000" { // invalid_authorization_specification
		// The role does not exist, or pg_hba.conf lets it not in: the
		// server's text says which.
		_, role, _ := DatabaseRoles(a.Config)
		user := role
		if u, perr := url.Parse(a.Config.Database.DSN); perr == nil && u.User != nil && u.User.Username() != "" {
			user = u.User.Username()
		}
		msg := fmt.Sprintf("database.dsn: PostgreSQL does not let the application role %q log in (%s)", user, pgErr.Message)
		if user != role {
			msg = fmt.Sprintf("database.dsn: PostgreSQL does not let %q log in (%s), and db setup creates the application role %q, not %q: database.dsn should log in as %q (or set database.app_role)",
				user, pgErr.Message, role, user, role)
		}
		return nil, &notSetUpError{msg: msg, cause: err}
	}
	if err != nil {
		return nil, fmt.Errorf("database.dsn: %w", err)
	}
	a.pgPool = p
	a.onClose(func() error { p.Close(); return nil })
	return p, nil
}

func openPool(ctx context.Context, dsn string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d as %q: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.User, err)
	}
	return p, nil
}

// poolCollector exports the server's PostgreSQL pool (database.dsn),
// read at scrape time: its size and use, and its waits. Waits are for
// PromQL, e.g. the mean wait of an acquire that found no idle connection:
// rate(tenantmcp_db_pool_acquire_wait_seconds_total[5m]) / rate(tenantmcp_db_pool_acquire_waits_total[5m]).
type poolCollector struct{ p *pgxpool.Pool }

var (
	poolMaxDesc      = prometheus.NewDesc("tenantmcp_db_pool_max_conns", "Largest size of the PostgreSQL pool (database.max_conns).", nil, nil)
	poolConnsDesc    = prometheus.NewDesc("tenantmcp_db_pool_conns", "Connections of the PostgreSQL pool, by state: in_use, idle or connecting.", []string{"state"}, nil)
	poolAcquiresDesc = prometheus.NewDesc("tenantmcp_db_pool_acquires_total", "Connections taken from the PostgreSQL pool.", nil, nil)
	poolWaitsDesc    = prometheus.NewDesc("tenantmcp_db_pool_acquire_waits_total", "Acquires that found no idle connection and waited for one to be released or opened.", nil, nil)
	poolWaitDesc     = prometheus.NewDesc("tenantmcp_db_pool_acquire_wait_seconds_total", "Time spent in acquires that waited (and got a connection).", nil, nil)
	poolCanceledDesc = prometheus.NewDesc("tenantmcp_db_pool_acquires_canceled_total", "Acquires that gave up waiting: database.acquire_timeout passed (the request got 503) or the request ended.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolMaxDesc, poolConnsDesc, poolAcquiresDesc, poolWaitsDesc, poolWaitDesc, poolCanceledDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stat()
	gauge := func(d *prometheus.Desc, v int32, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(poolMaxDesc, st.MaxConns())
	gauge(poolConnsDesc, st.AcquiredConns(), "in_use")
	gauge(poolConnsDesc, st.IdleConns(), "idle")
	gauge(poolConnsDesc, st.ConstructingConns(), "connecting")
	counter(poolAcquiresDesc, float64(st.AcquireCount()))
	counter(poolWaitsDesc, float64(st.EmptyAcquireCount()))
	counter(poolWaitDesc, st.EmptyAcquireWaitTime().Seconds())
	counter(poolCanceledDesc, float64(st.CanceledAcquireCount()))
}

// pingPool checks that PostgreSQL answers on p. A pool whose every
// connection is in use counts as answering: its requests are being served,
// and a readiness check that timed out waiting for a free connection would
// take a busy replica out of service when it is needed most.
func pingPool(ctx context.Context, p *pgxpool.Pool) error {
	err := p.Ping(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		if st := p.Stat(); st.AcquiredConns() > 0 && st.AcquiredConns() >= st.MaxConns() {
			return nil
		}
	}
	return err
}

func (a *App) openPostgresRegistry(ctx context.Context) (*pgstore.Store, error) {
	p, err := a.pool(ctx)
	if err != nil {
		return nil, err
	}
	// The server never migrates (its role may not): without the registry
	// table every lookup would fail with "relation does not exist".
	var migrated bool
	table := pgx.Identifier{"public", pgstore.TableName}.Sanitize()
	if err := p.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&migrated); err != nil {
		return nil, fmt.Errorf("database.dsn: look for the tenant registry: %w", err)
	}
	if !migrated {
		return nil, a.notMigrated(nil)
	}
	return pgstore.New(p, &pgstore.Options{Logger: a.log}), nil
}

// notMigrated is the error for a database without tenantmcp's tables.
func (a *App) notMigrated(cause error) error {
	db, _ := databaseName(a.Config.Database.DSN)
	return &notSetUpError{msg: fmt.Sprintf("database.dsn: the database %q has no tenantmcp tables", db), cause: cause}
}

func (a *App) openPostgresStores(ctx context.Context, set *store.Set, iso string) error {
	p, err := a.pool(ctx)
	if err != nil {
		return err
	}
	owner, app, err := DatabaseRoles(a.Config)
	if err != nil {
		return err
	}
	if err := postgres.CheckAppRole(ctx, p); errors.Is(err, postgres.ErrNotMigrated) {
		return a.notMigrated(err)
	} else if err != nil {
		return fmt.Errorf("database.dsn: %w (connect as the application role %q that 'tenantmcp db setup' creates)", err, app)
	}
	switch iso {
	case config.IsolationRLS:
		rls, err := postgres.NewRLS(p, &postgres.RLSOptions{Logger: a.log,
			AcquireTimeout: a.Config.Database.AcquireTimeout, StatementTimeout: a.Config.Database.StatementTimeout})
		if err != nil {
			return err
		}
		set.Docs, set.SQL = rls, rls
		a.provision = func(context.Context, tenant.ID) error { return nil }
	case config.IsolationSchema:
		s, err := postgres.NewSchemas(p, &postgres.SchemaOptions{Logger: a.log,
			AcquireTimeout: a.Config.Database.AcquireTimeout, StatementTimeout: a.Config.Database.StatementTimeout})
		if err != nil {
			return err
		}
		set.Docs, set.SQL = s, s
		a.provision = a.schemaProvisioner(owner, app)
	}
	return nil
}

// schemaProvisioner provisions tenant schemas through database.admin_dsn.
// It connects for each provisioning and disconnects at once, so a serving
// process holds no administrator connection: only the application role's
// pool, which CheckAppRole has vetted, stays open.
func (a *App) schemaProvisioner(owner, app string) func(context.Context, tenant.ID) error {
	return func(ctx context.Context, id tenant.ID) error {
		if a.Config.Database.AdminDSN == "" {
			return fmt.Errorf("schema_per_tenant: creating a tenant's schema needs a role that may create schemas and roles: set database.admin_dsn (or TENANTMCP_DATABASE_ADMIN_DSN)")
		}
		admin, err := openPool(ctx, a.Config.Database.AdminDSN, 1)
		if err != nil {
			return fmt.Errorf("database.admin_dsn: %w", err)
		}
		defer admin.Close()
		prov, err := postgres.NewProvisioner(admin, &postgres.ProvisionerOptions{OwnerRole: owner, AppRole: app, Logger: a.log})
		if err != nil {
			return err
		}
		return prov.Provision(ctx, id)
	}
}

// DatabaseRoles returns the owner and application roles of cfg's
// PostgreSQL deployment: database.owner_role and database.app_role, each
// one left empty named by postgres.RoleNames after the database that
// database.dsn names. Roles belong to the whole cluster, so deriving them
// from the database keeps deployments that share a cluster apart.
func DatabaseRoles(cfg *config.Config) (owner, app string, err error) {
	owner, app = cfg.Database.OwnerRole, cfg.Database.AppRole
	if owner != "" && app != "" {
		return owner, app, nil
	}
	db, err := databaseName(cfg.Database.DSN)
	if err != nil {
		return "", "", err
	}
	defOwner, defApp := postgres.RoleNames(db)
	if owner == "" {
		owner = defOwner
	}
	if app == "" {
		app = defApp
	}
	if owner == app {
		return "", "", fmt.Errorf("database.owner_role and database.app_role are both %q: they must differ (the server must not own the tables it is isolated by)", owner)
	}
	return owner, app, nil
}

// databaseName is the database a postgres:// URL names: its path, or its
// dbname parameter.
func databaseName(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("database.dsn: %q is not a postgres:// URL", redact(dsn))
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = u.Query().Get("dbname")
	}
	if db == "" {
		return "", fmt.Errorf("database.dsn %q names no database, and the default role names come from it: add one (postgres://host:5432/DBNAME) or set database.owner_role and database.app_role", redact(dsn))
	}
	return db, nil
}

// SetupOptions adjust SetupDatabase. A nil *SetupOptions means defaults.
type SetupOptions struct {
	// AppPassword is set on the application role if SetupDatabase creates
	// it. "" sets none. For a role that already exists SetupDatabase fails
	// with postgres.ErrRoleExists, leaving the password as it is, unless
	// ResetPassword is set.
	AppPassword string
	// ResetPassword also sets AppPassword on an existing application role.
	ResetPassword bool
	// Progress receives a line per step; nil discards.
	Progress io.Writer
}

// SetupDatabase creates the owner and application roles (DatabaseRoles) in
// the database adminDSN names, then migrates everything.
func SetupDatabase(ctx context.Context, cfg *config.Config, adminDSN string, o *SetupOptions) error {
	if o == nil {
		o = &SetupOptions{}
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	owner, app, err := DatabaseRoles(cfg)
	if err != nil {
		return err
	}
	if err := sameDatabase(cfg, adminDSN); err != nil {
		return err
	}
	err = postgres.Setup(ctx, adminDSN, &postgres.SetupOptions{
		OwnerRole: owner, AppRole: app, AppPassword: o.AppPassword, ResetPassword: o.ResetPassword,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "roles ready: owner %s, application %s\n", owner, app)
	return MigrateDatabase(ctx, cfg, adminDSN, progress)
}

// sameDatabase refuses an administrator URL that names another database
// than database.dsn: roles and tables would be made where the server does
// not look (and named after the wrong database).
func sameDatabase(cfg *config.Config, adminDSN string) error {
	want, err1 := databaseName(cfg.Database.DSN)
	got, err2 := databaseName(adminDSN)
	if err1 == nil && err2 == nil && want != got {
		return fmt.Errorf("the administrator URL names the database %q but database.dsn names %q: give an administrator URL for %q, the database the server uses", got, want, want)
	}
	return nil
}

// CheckLogin connects to dsn once and disconnects, to tell whether its
// role can log in.
func CheckLogin(ctx context.Context, dsn string) error {
	p, err := openPool(ctx, dsn, 1)
	if err != nil {
		return err
	}
	p.Close()
	return nil
}

// MigrateDatabase brings the registry and the isolation strategy's tables
// (and, for schema_per_tenant, every tenant schema) to the current version,
// as the administrator adminDSN names. It is idempotent.
func MigrateDatabase(ctx context.Context, cfg *config.Config, adminDSN string, progress io.Writer) error {
	owner, app, err := DatabaseRoles(cfg)
	if err != nil {
		return err
	}
	if err := sameDatabase(cfg, adminDSN); err != nil {
		return err
	}
	admin, err := openPool(ctx, adminDSN, 4)
	if err != nil {
		return fmt.Errorf("admin database: %w", err)
	}
	defer admin.Close()
	reg := pgstore.New(admin, &pgstore.Options{GrantTo: app})
	if err := reg.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(progress, "registry tables ready\n")
	if err := pgaudit.Migrate(ctx, admin, owner, app, nil); err != nil {
		return fmt.Errorf("audit tables: %w", err)
	}
	fmt.Fprintf(progress, "audit tables ready (append-only: %s may only insert and read)\n", app)
	if err := migrateAdminStore(ctx, admin, owner, app); err != nil {
		return err
	}
	fmt.Fprintf(progress, "admin tables ready (impersonations, idempotency keys)\n")
	iso := cfg.EffectiveIsolation()
	mopts := &postgres.MigrateOptions{OwnerRole: owner, AppRole: app}
	switch iso {
	case config.IsolationRLS:
		if err := postgres.Migrate(ctx, admin, postgres.RowLevelSecurity, mopts); err != nil {
			return err
		}
		fmt.Fprintf(progress, "row-level security tables ready\n")
	case config.IsolationSchema:
		if err := postgres.Migrate(ctx, admin, postgres.SchemaPerTenant, mopts); err != nil {
			return err
		}
		prov, err := postgres.NewProvisioner(admin, &postgres.ProvisionerOptions{OwnerRole: owner, AppRole: app})
		if err != nil {
			return err
		}
		err = prov.MigrateAll(ctx, func(done, total int, id tenant.ID) {
			if total > 0 && (done == total || done%100 == 0) {
				fmt.Fprintf(progress, "tenant schemas migrated: %d/%d\n", done, total)
			}
		})
		if err != nil {
			return err
		}
		// A registered tenant whose schema is missing (say, its record was
		// written by another tool) is provisioned now.
		recs, err := registry.New(reg, nil).List(ctx)
		if err != nil {
			return err
		}
		for i, rec := range recs {
			if err := prov.Provision(ctx, rec.ID); err != nil {
				return fmt.Errorf("provision tenant %s (%s): %w", rec.ExternalID, rec.ID, err)
			}
			if i+1 == len(recs) || (i+1)%100 == 0 {
				fmt.Fprintf(progress, "registered tenants provisioned: %d/%d\n", i+1, len(recs))
			}
		}
		fmt.Fprintf(progress, "tenant schemas ready\n")
	}
	return nil
}

// AppDSN returns adminDSN with its user and password replaced by the
// application role's.
func AppDSN(adminDSN, role, password string) (string, error) {
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%q is not a postgres:// URL", redact(adminDSN))
	}
	u.User = url.UserPassword(role, password)
	return u.String(), nil
}

// RandomPassword returns a fresh password for a generated role.
func RandomPassword() string {
	var b [18]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
