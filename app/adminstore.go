package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/admin/pgadmin"
	"github.com/tenantmcp/tenantmcp/admin/sqliteadmin"
)

// registryFile is the SQLite file under server.data_dir that holds the
// tenant registry and, beside it, the admin store (deployments without
// database.dsn).
const registryFile = "registry.db"

// openAdminStore opens the admin store (impersonation grants, idempotency
// keys) beside the registry: with database.dsn in PostgreSQL through the
// server's pool, whose role does not migrate (db setup and db migrate
// make the tables, see migrateAdminStore); else in the registry's SQLite
// file, migrating its admin tables. The caller closes the store.
func (a *App) openAdminStore(ctx context.Context) (admin.Store, error) {
	if a.Config.UsesPostgres() {
		p, err := a.pool(ctx)
		if err != nil {
			return nil, err
		}
		st, err := pgadmin.Open(ctx, p, &pgadmin.Options{SkipMigrate: true, Logger: a.log})
		if errors.Is(err, pgadmin.ErrNotMigrated) {
			return nil, a.notMigrated(err)
		}
		if err != nil {
			return nil, fmt.Errorf("database.dsn: %w", err)
		}
		return st, nil
	}
	path := filepath.Join(a.Config.Server.DataDir, registryFile)
	st, err := sqliteadmin.Open(path, &sqliteadmin.Options{Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("open admin store %s: %w", path, err)
	}
	return st, nil
}

// migrateAdminStore creates or upgrades the PostgreSQL admin tables, for
// MigrateDatabase: as the owner role (pool is the administrator's, a
// member of it), granting the application role app what the server needs
// and nothing more (see pgadmin.Options.GrantTo). It is idempotent.
func migrateAdminStore(ctx context.Context, pool *pgxpool.Pool, owner, app string) error {
	st, err := pgadmin.Open(ctx, pool, &pgadmin.Options{OwnerRole: owner, GrantTo: app})
	if err != nil {
		return fmt.Errorf("admin tables: %w", err)
	}
	return st.Close()
}
