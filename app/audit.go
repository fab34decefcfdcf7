package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/pgaudit"
	"github.com/tenantmcp/tenantmcp/audit/sqliteaudit"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/server"
)

// AuditFile is the SQLite audit store under server.data_dir (deployments
// without database.dsn).
const AuditFile = "audit.db"

// openAudit opens the audit store when audit.enabled: in PostgreSQL beside
// the registry when database.dsn is set (its tables made by db setup),
// else the SQLite file AuditFile.
func (a *App) openAudit(ctx context.Context) error {
	cfg := a.Config
	if !cfg.Audit.Enabled {
		return nil
	}
	if cfg.UsesPostgres() {
		pool, err := a.pool(ctx)
		if err != nil {
			return err
		}
		owner, _, err := DatabaseRoles(cfg)
		if err != nil {
			return err
		}
		a.audit = pgaudit.New(pool, &pgaudit.Options{RetentionRole: owner})
		return nil
	}
	path := filepath.Join(cfg.Server.DataDir, AuditFile)
	s, err := sqliteaudit.Open(path, &sqliteaudit.Options{Logger: a.log})
	if err != nil {
		return fmt.Errorf("open audit store %s: %w", path, err)
	}
	a.onClose(s.Close)
	a.audit = s
	return nil
}

// Audit is the deployment's audit store; nil when audit.enabled = false.
func (a *App) Audit() audit.Store { return a.audit }

// auditWriter starts the writer that server requests record into, and
// the retention job. The returned stop drains the queue and writes final
// checkpoints; call it after the server has stopped serving.
func (a *App) auditWriter(ctx context.Context) (*audit.Writer, ed25519.PublicKey, func(), error) {
	cfg := a.Config.Audit
	key, err := AuditKey(a.Config)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit signing key: %w", err)
	}
	w, err := audit.NewWriter(a.audit, key, &audit.WriterOptions{
		QueueSize:          cfg.QueueSize,
		BatchSize:          cfg.BatchSize,
		FlushInterval:      cfg.FlushInterval,
		MaxWait:            cfg.MaxWait,
		CheckpointInterval: cfg.CheckpointInterval,
		StoreTimeout:       cfg.StoreTimeout,
		Logger:             a.log,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.retention(rctx)
	}()
	return w, key.Public().(ed25519.PublicKey), func() {
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), a.Config.Server.ShutdownTimeout)
		defer ccancel()
		if err := w.Close(cctx); err != nil {
			a.log.Error("audit: could not write every queued event before shutdown", "err", err)
		}
	}, nil
}

// retentionEvery is how often the retention job runs.
const retentionEvery = time.Hour

// retention removes events older than audit.retention, hourly. On
// PostgreSQL only the owner role may delete audit rows, which the server's
// application role is not: there the job is "tenantmcp audit prune" as an
// administrator, and this loop does nothing.
func (a *App) retention(ctx context.Context) {
	if a.Config.UsesPostgres() {
		return
	}
	t := time.NewTicker(retentionEvery)
	defer t.Stop()
	for {
		if n, err := a.audit.DeleteBefore(ctx, time.Now().Add(-a.Config.Audit.Retention)); err != nil && ctx.Err() == nil {
			a.log.Error("audit retention failed", "err", err)
		} else if n > 0 {
			a.log.Info("audit retention: removed old events", "events", n, "retention", a.Config.Audit.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// AuditKeyURLPath is where the server publishes the public key that verifies
// its audit checkpoints (in audit.FormatPublicKey form).
const AuditKeyURLPath = "/.well-known/tenantmcp-audit-key"

// auditOptions fills the server's audit options and publishes the
// checkpoints' public key.
func (a *App) auditOptions(opts *server.Options, w *audit.Writer, pub ed25519.PublicKey) {
	cfg := a.Config.Audit
	opts.Audit = w
	opts.AuditArguments = cfg.StoreArguments
	opts.AuditLogTool = cfg.LogTool
	opts.AuditLogScope = cfg.LogToolScope
	if opts.Routes == nil {
		opts.Routes = map[string]http.Handler{}
	}
	text := []byte(audit.FormatPublicKey(pub) + "\n")
	opts.Routes["GET "+AuditKeyURLPath] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(text)
	})
}

// PruneAudit removes audit events older than audit.retention. On
// PostgreSQL it connects as the administrator adminDSN names (default
// database.admin_dsn) and deletes as the owner role: the application role
// may not. It returns how many events were removed.
func PruneAudit(ctx context.Context, cfg *config.Config, adminDSN string) (int64, error) {
	if !cfg.Audit.Enabled {
		return 0, errors.New("audit.enabled = false: there is no audit trail to prune")
	}
	cut := time.Now().Add(-cfg.Audit.Retention)
	if !cfg.UsesPostgres() {
		path := filepath.Join(cfg.Server.DataDir, AuditFile)
		s, err := sqliteaudit.Open(path, nil)
		if err != nil {
			return 0, fmt.Errorf("open audit store %s: %w", path, err)
		}
		defer s.Close()
		return s.DeleteBefore(ctx, cut)
	}
	if adminDSN == "" {
		adminDSN = cfg.Database.AdminDSN
	}
	if adminDSN == "" {
		return 0, errors.New("pruning the PostgreSQL audit trail needs an administrator: give --admin-dsn or set database.admin_dsn")
	}
	owner, _, err := DatabaseRoles(cfg)
	if err != nil {
		return 0, err
	}
	pool, err := openPool(ctx, adminDSN, 2)
	if err != nil {
		return 0, fmt.Errorf("admin database: %w", err)
	}
	defer pool.Close()
	return pgaudit.New(pool, &pgaudit.Options{RetentionRole: owner}).DeleteBefore(ctx, cut)
}
