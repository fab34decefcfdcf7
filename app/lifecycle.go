package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive/s3archive"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/postgres"
	"github.com/tenantmcp/tenantmcp/store/s3blob"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Lifecycle returns the lifecycle manager over this deployment's
// registry, stores and archive store, recording into aud (nil = no audit
// trail). It needs the stores (Open, not OpenRegistry).
func (a *App) Lifecycle(ctx context.Context, aud lifecycle.Auditor) (*lifecycle.Manager, error) {
	if a.Stores == nil {
		return nil, errors.New("app: the lifecycle needs the stores: open the deployment with Open")
	}
	archives, err := a.archiveStore(ctx)
	if err != nil {
		return nil, err
	}
	return lifecycle.New(lifecycle.Options{
		Registry:      a.Registry,
		Backends:      a.backends,
		Archives:      archives,
		Audit:         aud,
		AuditStore:    a.audit,
		Strategy:      a.Config.EffectiveIsolation(),
		Retention:     a.Config.Lifecycle.Retention,
		ServerVersion: a.opts.Version,
		Logger:        a.log,
		BeforeStep:    a.opts.BeforeLifecycleStep,
	})
}

// archiveStore opens the archive store once.
func (a *App) archiveStore(ctx context.Context) (archive.Store, error) {
	if a.archives != nil {
		return a.archives, nil
	}
	cfg := a.Config
	switch cfg.Lifecycle.Archives {
	case "s3":
		b, ok := a.Stores.Blobs.(*s3blob.Store)
		if !ok {
			return nil, errors.New(`lifecycle.archives = "s3" needs storage.blob = "s3"`)
		}
		s, err := s3archive.New(b.Client(), &s3archive.Options{Bucket: cfg.Storage.S3Bucket, Prefix: cfg.Lifecycle.ArchiveS3Prefix})
		if err != nil {
			return nil, fmt.Errorf("lifecycle archives in S3: %w", err)
		}
		a.archives = s
	default:
		d, err := archive.OpenDir(cfg.EffectiveArchiveDir())
		if err != nil {
			return nil, fmt.Errorf("lifecycle.archive_dir %s: %w", cfg.EffectiveArchiveDir(), err)
		}
		a.onClose(d.Close)
		a.archives = d
	}
	return a.archives, nil
}

// lifecycleBackends lists where tenant data lives, in provisioning order:
// the documents/SQL store of the isolation strategy, the blobs, the
// key/value store.
func (a *App) lifecycleBackends(iso string) []lifecycle.Backend {
	set := a.Stores
	var out []lifecycle.Backend
	portable := func(b any) store.Portable {
		p, _ := b.(store.Portable)
		return p
	}
	switch iso {
	case config.IsolationDatabase:
		out = append(out, lifecycle.Backend{Name: "docs", Provision: a.provision, Data: portable(set.Docs)})
	case config.IsolationRLS:
		out = append(out, lifecycle.Backend{Name: "sql", Data: portable(set.Docs)})
	case config.IsolationSchema:
		out = append(out, lifecycle.Backend{Name: "sql", Provision: a.provision, Data: schemaData{a}})
	}
	out = append(out, lifecycle.Backend{Name: "blobs", Data: portable(set.Blobs)})
	if set.KV != nil {
		out = append(out, lifecycle.Backend{Name: "kv", Data: portable(set.KV)})
	}
	return out
}

// schemaData moves schema-per-tenant data through database.admin_dsn:
// making and dropping a tenant's schema and role needs an administrator,
// which a serving process holds no connection of (it connects for each
// operation, as schemaProvisioner does).
type schemaData struct{ a *App }

func (s schemaData) with(ctx context.Context, fn func(*postgres.Provisioner) error) error {
	cfg := s.a.Config
	if cfg.Database.AdminDSN == "" {
		return errors.New("schema_per_tenant: archiving, purging and restoring a tenant's schema need database.admin_dsn (or TENANTMCP_DATABASE_ADMIN_DSN)")
	}
	owner, app, err := DatabaseRoles(cfg)
	if err != nil {
		return err
	}
	admin, err := openPool(ctx, cfg.Database.AdminDSN, 1)
	if err != nil {
		return fmt.Errorf("database.admin_dsn: %w", err)
	}
	defer admin.Close()
	prov, err := postgres.NewProvisioner(admin, &postgres.ProvisionerOptions{OwnerRole: owner, AppRole: app, Logger: s.a.log})
	if err != nil {
		return err
	}
	return fn(prov)
}

func (s schemaData) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	return s.with(ctx, func(p *postgres.Provisioner) error { return p.Export(ctx, id, w) })
}

func (s schemaData) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	return s.with(ctx, func(p *postgres.Provisioner) error { return p.Import(ctx, id, r) })
}

func (s schemaData) Purge(ctx context.Context, id tenant.ID) error {
	return s.with(ctx, func(p *postgres.Provisioner) error { return p.Purge(ctx, id) })
}

// startLifecycleJobs starts runLifecycleJobs; the returned stop ends it
// and waits for a round in progress.
func (a *App) startLifecycleJobs(ctx context.Context, aud *audit.Writer) (func(), error) {
	var auditor lifecycle.Auditor
	if aud != nil {
		auditor = aud
	}
	m, err := a.Lifecycle(ctx, auditor)
	if err != nil {
		return nil, err
	}
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runLifecycleJobs(jctx, m)
	}()
	return func() { cancel(); <-done }, nil
}

// runLifecycleJobs finishes interrupted lifecycle operations and purges
// tenants whose retention has passed, every lifecycle.reconcile_interval,
// until ctx ends. On PostgreSQL one replica at a time runs it (an
// advisory lock); the others skip the round.
func (a *App) runLifecycleJobs(ctx context.Context, m *lifecycle.Manager) {
	t := time.NewTicker(a.Config.Lifecycle.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.lifecycleRound(ctx, m)
	}
}

// lifecycleIdle is how long an operation must have made no progress
// before the background job finishes it (it may still be running).
const lifecycleIdle = time.Minute

// lifecycleLockKey is the advisory lock of the lifecycle job ("tmlc").
const lifecycleLockKey int64 = 0x746d6c63

func (a *App) lifecycleRound(ctx context.Context, m *lifecycle.Manager) {
	if a.pgPool != nil {
		conn, err := a.pgPool.Acquire(ctx)
		if err != nil {
			a.log.Warn("lifecycle job: no database connection", "error", err)
			return
		}
		defer conn.Release()
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lifecycleLockKey).Scan(&got); err != nil || !got {
			return // another replica runs this round
		}
		defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lifecycleLockKey)
	}
	if n, err := m.Reconcile(ctx, lifecycle.System, lifecycleIdle); err != nil {
		a.log.Error("lifecycle job: could not finish interrupted operations", "finished", n, "error", err)
	} else if n > 0 {
		a.log.Info("lifecycle job: finished interrupted operations", "finished", n)
	}
	if n, err := m.PurgeDue(ctx, lifecycle.System); err != nil {
		a.log.Error("lifecycle job: purge failed", "purged", n, "error", err)
	} else if n > 0 {
		a.log.Info("lifecycle job: purged tenants whose retention ended", "purged", n)
	}
}
