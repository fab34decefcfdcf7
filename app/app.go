// Package app assembles a running deployment from a configuration: the
// registry, the tenant-scoped stores of the chosen isolation strategy, the
// token verifier, the rate limiter and the server. The CLI's dev, serve,
// tenant and db commands all build on it, so they cannot drift apart; a
// program of your own can use it directly, without the CLI:
//
//	cfg, err := config.Load("deploy.toml", os.Environ())
//	a, err := app.Open(ctx, cfg, &app.Options{Tools: notes.Tools(), Logger: log})
//	defer a.Close()
//	srv, stop, err := a.Server(ctx)
//	defer stop()
//	ln, err := net.Listen("tcp", cfg.Server.Listen)
//	err = srv.Serve(ctx, ln, cfg.Server.ShutdownTimeout)
//
// Tenants are added with AddTenant (registry record plus storage, through
// the resumable lifecycle) or, audited, with AdminService; PostgreSQL roles and tables are created once
// with SetupDatabase and kept current with MigrateDatabase.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	tenantdb "github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Options adjust how a deployment is assembled. A nil *Options means
// defaults.
type Options struct {
	// Dev, if set, is the development issuer: tokens are verified against
	// its key instead of the configured identity provider, and its JWKS is
	// served at /dev/jwks.json.
	Dev *auth.DevIssuer
	// Tools to serve; nil serves the example documents tools.
	Tools []server.Tool
	// Logger; nil discards.
	Logger *slog.Logger
	// Progress receives human-readable progress of long operations
	// (migrations over many tenant schemas); nil discards.
	Progress io.Writer
	// S3AccessKey and S3SecretKey are the static credentials for
	// storage.blob = "s3" (the CLI reads AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY). Both empty means unsigned requests.
	S3AccessKey, S3SecretKey string
	// Version is the server's version, written into archives.
	Version string
	// BeforeLifecycleStep, if set, runs before each persisted lifecycle
	// step (see lifecycle.Options.BeforeStep): for fault-injection tests.
	BeforeLifecycleStep func(op, step string, id tenant.ID) error
}

// SingleTenantID is the external id of the one tenant of a single-tenant
// deployment (auth.multi_tenant.enabled = false).
const SingleTenantID = "default"

// LocalIssuer and LocalTenantID identify the tenant served when
// [auth] enabled = false.
const (
	LocalIssuer   = "urn:tenantmcp:local"
	LocalTenantID = "local"
)

// App is an assembled deployment.
type App struct {
	Config   *config.Config
	Registry *registry.Registry
	Stores   *store.Set

	opts      Options
	log       *slog.Logger
	provision func(context.Context, tenant.ID) error
	closers   []func() error
	pgPool    *pgxpool.Pool
	audit     audit.Store // nil when audit.enabled = false
	// adminStore is opened by AdminService on first use.
	adminStore admin.Store
	// backends are where tenant data lives (Open); archives is the
	// archive store, opened by Lifecycle on first use.
	backends []lifecycle.Backend
	archives archive.Store
	// limiterErrors counts rate-limit checks answered without Redis.
	limiterErrors func(error)
	// serving is the server Server built, once built (the console checks
	// operators' tokens with it).
	serving atomic.Pointer[server.Server]
}

// Open opens the registry and the stores that cfg describes. It does not
// start anything; call Server for that.
func Open(ctx context.Context, cfg *config.Config, o *Options) (*App, error) {
	return open(ctx, cfg, o, true)
}

// OpenRegistry opens only the tenant registry (for commands that change
// records but not data).
func OpenRegistry(ctx context.Context, cfg *config.Config, o *Options) (*App, error) {
	return open(ctx, cfg, o, false)
}

func open(ctx context.Context, cfg *config.Config, o *Options, stores bool) (_ *App, err error) {
	a := &App{Config: cfg}
	if o != nil {
		a.opts = *o
	}
	a.log = a.opts.Logger
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	// Lines the registry, stores and verifier log with a request's
	// context carry its tenant_id and request_id, like the server's.
	a.log = slog.New(server.LogHandler(a.log.Handler()))
	if a.opts.Progress == nil {
		a.opts.Progress = io.Discard
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := a.openRegistry(ctx); err != nil {
		return nil, err
	}
	if err := a.openAudit(ctx); err != nil {
		return nil, err
	}
	if !stores {
		return a, nil
	}
	if err := a.openStores(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) onClose(f func() error) { a.closers = append(a.closers, f) }

// Close releases everything Open acquired, in reverse order.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

func (a *App) openRegistry(ctx context.Context) error {
	cfg := a.Config
	ropts := &registry.Options{
		TTL:         cfg.Registry.CacheTTL,
		NegativeTTL: cfg.Registry.NegativeCacheTTL,
		MaxEntries:  cfg.Registry.CacheSize,
		Logger:      a.log,
	}
	if cfg.UsesPostgres() {
		rs, err := a.openPostgresRegistry(ctx)
		if err != nil {
			return err
		}
		a.Registry = registry.New(rs, ropts)
		return nil
	}
	path := filepath.Join(cfg.Server.DataDir, registryFile)
	rs, err := sqlitestore.Open(path, &sqlitestore.Options{Logger: a.log})
	if err != nil {
		return fmt.Errorf("open tenant registry %s: %w", path, err)
	}
	a.onClose(rs.Close)
	a.Registry = registry.New(rs, ropts)
	return nil
}

func (a *App) openStores(ctx context.Context) error {
	cfg := a.Config
	set := &store.Set{}
	blobs, err := a.openBlobs(ctx)
	if err != nil {
		return err
	}
	set.Blobs = blobs
	if cfg.Storage.RedisURL != "" {
		kv, err := a.openKV(ctx)
		if err != nil {
			return err
		}
		set.KV = kv
	}
	iso := cfg.EffectiveIsolation()
	switch iso {
	case config.IsolationDatabase:
		dir := filepath.Join(cfg.Server.DataDir, "tenants")
		docs, err := tenantdb.Open(dir, &tenantdb.Options{Logger: a.log})
		if err != nil {
			return fmt.Errorf("open per-tenant databases in %s: %w", dir, err)
		}
		a.onClose(docs.Close)
		set.Docs, set.SQL = docs, docs
		a.provision = docs.Provision
	case config.IsolationPrefix:
		set.Docs = set.Blobs
		a.provision = func(context.Context, tenant.ID) error { return nil }
	case config.IsolationRLS, config.IsolationSchema:
		if err := a.openPostgresStores(ctx, set, iso); err != nil {
			return err
		}
	default:
		return fmt.Errorf("auth.multi_tenant.isolation: unknown strategy %q", iso)
	}
	a.Stores = set
	a.backends = a.lifecycleBackends(iso)
	return nil
}

func (a *App) openBlobs(ctx context.Context) (store.Backend, error) {
	cfg := a.Config
	if cfg.Storage.Blob == "s3" {
		return a.openS3(ctx)
	}
	dir := filepath.Join(cfg.Server.DataDir, "blobs")
	b, err := fsblob.Open(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", dir, err)
	}
	a.onClose(b.Close)
	return b, nil
}

// Provision creates what a new tenant needs in the stores (its SQLite
// file or PostgreSQL schema). It is idempotent.
func (a *App) Provision(ctx context.Context, id tenant.ID) error {
	if a.provision == nil {
		return nil
	}
	return a.provision(ctx, id)
}

// AddTenant registers a tenant and provisions its storage through the
// lifecycle (resumably: if provisioning stops halfway, adding the same
// tenant again finishes it). It is not audited; the admin operations
// (AdminService) are.
func (a *App) AddTenant(ctx context.Context, rec registry.Tenant) (*registry.Tenant, error) {
	m, err := a.Lifecycle(ctx, nil)
	if err != nil {
		return nil, err
	}
	return m.Provision(ctx, lifecycle.System, rec)
}

// EnsureTenant returns the tenant (issuer, externalID), adding and
// provisioning it with name if it does not exist.
func (a *App) EnsureTenant(ctx context.Context, issuer, externalID, name string) (*registry.Tenant, error) {
	rec, err := a.Registry.Lookup(ctx, issuer, externalID)
	if err == nil {
		return rec, nil
	}
	if !errors.Is(err, registry.ErrNotFound) {
		return nil, err
	}
	rec, err = a.AddTenant(ctx, registry.Tenant{Issuer: issuer, ExternalID: externalID, Name: name, Status: registry.StatusActive})
	if errors.Is(err, registry.ErrExists) { // another process added it meanwhile
		return a.Registry.Lookup(ctx, issuer, externalID)
	}
	return rec, err
}

// Issuer is the issuer tenants of this deployment are registered under.
func (a *App) Issuer() string {
	switch {
	case a.opts.Dev != nil:
		return a.opts.Dev.Issuer()
	case !a.Config.Auth.Enabled:
		return LocalIssuer
	}
	return a.Config.EffectiveIssuer()
}

// Timeout for start-up checks against external services.
const startupTimeout = 15 * time.Second
