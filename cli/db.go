package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/app"
)

func newDBCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Set up and migrate PostgreSQL (roles, registry, isolation tables, tenant schemas)",
		Long: `Prepare PostgreSQL for a deployment that sets database.dsn.

"db setup" creates two roles and then migrates: an owner role that owns the
tables (NOLOGIN) and the application role the server connects as (LOGIN, not
superuser, not owner, no BYPASSRLS), so row-level security and per-tenant
schemas hold. "db migrate" applies pending migrations to the registry, the
shared tables and (schema_per_tenant) every tenant schema, idempotently.

Both run as an administrator: --admin-dsn, or database.admin_dsn.
See docs/isolation-postgres.md.`,
	}
	var (
		tf          targetFlags
		adminDSN    string
		appPassword string
	)
	admin := func(cmd *cobra.Command, cfg *config.Config) (string, error) {
		if adminDSN == "" {
			adminDSN = cfg.Database.AdminDSN
		}
		if adminDSN == "" {
			return "", usagef(cmd, "needs an administrator connection: pass --admin-dsn postgres://... or set database.admin_dsn")
		}
		if !cfg.UsesPostgres() {
			return "", fmt.Errorf("this deployment does not use PostgreSQL: set database.dsn to a postgres:// URL for the application role")
		}
		return adminDSN, nil
	}
	setup := &cobra.Command{
		Use:     "setup --config deploy.toml [--admin-dsn DSN] [--app-password P]",
		Short:   "Create the owner and application roles, then migrate",
		Example: `  tenantmcp db setup --config deploy.toml --admin-dsn postgres://postgres@db:5432/tenantmcp --app-password "$APP_PW"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			dsn, err := admin(cmd, t.cfg)
			if err != nil {
				return err
			}
			if appPassword == "" {
				appPassword = e.getenv("TENANTMCP_APP_PASSWORD")
			}
			return app.SetupDatabase(cmd.Context(), t.cfg, dsn, appPassword, e.stderr)
		},
	}
	migrate := &cobra.Command{
		Use:   "migrate --config deploy.toml [--admin-dsn DSN]",
		Short: "Apply pending migrations (registry, shared tables, every tenant schema)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			dsn, err := admin(cmd, t.cfg)
			if err != nil {
				return err
			}
			return app.MigrateDatabase(cmd.Context(), t.cfg, dsn, e.stderr)
		},
	}
	for _, c := range []*cobra.Command{setup, migrate} {
		tf.add(c)
		c.Flags().StringVar(&adminDSN, "admin-dsn", "", "PostgreSQL URL of a role that may create roles and schemas (default database.admin_dsn)")
	}
	setup.Flags().StringVar(&appPassword, "app-password", "", "password to set for the application role (or TENANTMCP_APP_PASSWORD); empty leaves it unchanged")
	cmd.AddCommand(setup, migrate)
	return cmd
}

// setupDevPostgres prepares PostgreSQL for "tenantmcp dev --database":
// the roles (with a fresh password for the application role) and every
// table, using adminDSN. It returns the application role's DSN.
func setupDevPostgres(ctx context.Context, e *env, adminDSN, isolation string) (string, error) {
	cfg, err := devConfig("127.0.0.1:8080", ".", adminDSN, "", isolation, e.environ)
	if err != nil {
		return "", err
	}
	password := app.RandomPassword()
	appDSN, err := app.AppDSN(adminDSN, cfg.Database.AppRole, password)
	if err != nil {
		return "", fmt.Errorf("--database: %w", err)
	}
	if err := app.SetupDatabase(ctx, cfg, adminDSN, password, e.stderr); err != nil {
		return "", fmt.Errorf("prepare PostgreSQL: %w", err)
	}
	return appDSN, nil
}
