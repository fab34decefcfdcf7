package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/store/postgres"
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
		tf            targetFlags
		adminDSN      string
		appPassword   string
		resetPassword bool
	)
	admin := func(cmd *cobra.Command, cfg *config.Config) (string, error) {
		if !cfg.UsesPostgres() {
			return "", fmt.Errorf("this deployment does not use PostgreSQL, so there is nothing to set up: it keeps its data under server.data_dir (%s), with isolation %s. "+
				"For PostgreSQL set database.dsn to the application role's postgres:// URL (%s init ... --isolation row_level_security --database postgres://HOST:5432/DBNAME writes it)",
				cfg.Server.DataDir, cfg.EffectiveIsolation(), e.command())
		}
		if adminDSN == "" {
			adminDSN = cfg.Database.AdminDSN
		}
		if adminDSN == "" {
			return "", usagef(cmd, "needs an administrator connection: pass --admin-dsn postgres://... or set database.admin_dsn")
		}
		return adminDSN, nil
	}
	setup := &cobra.Command{
		Use:   "setup --config deploy.toml [--admin-dsn DSN] [--app-password P [--reset-password]]",
		Short: "Create the owner and application roles, then migrate",
		Long: `Create the owner and application roles in the database database.dsn
names, grant them what they need, then migrate (as "db migrate" does).

Roles belong to the whole PostgreSQL cluster, not to one database, so they
are named after the deployment's database: database.owner_role defaults to
"<database>_owner" and database.app_role to "<database>_app" (for
postgres://…/tenantmcp: tenantmcp_owner and tenantmcp_app). A database name
that is not lowercase letters, digits and "_" is sanitized and given a short
hash, e.g. "my-db" gets my_db_<8 hex>_owner. Deployments that share a cluster
therefore never share roles; set both keys to choose other names (a
deployment set up by an older release, which used tenantmcp_owner and
tenantmcp_app for every database, sets them to those).

Passwords: --app-password (or TENANTMCP_APP_PASSWORD) is set on the
application role when db setup creates it. A role that already exists keeps
its password, since another deployment may log in with it: given a password
for it, db setup refuses unless --reset-password says to replace it.
Without --app-password no password is set or changed (use trust, peer or
certificate authentication, or set the password yourself).`,
		Example: `  tenantmcp db setup --config deploy.toml --admin-dsn postgres://postgres@db:5432/tenantmcp --app-password "$APP_PW"
  # rotate the application role's password
  tenantmcp db setup --config deploy.toml --app-password "$NEW_APP_PW" --reset-password`,
		Args: cobra.NoArgs,
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
			if resetPassword && appPassword == "" {
				return usagef(cmd, "--reset-password needs the new password: --app-password P (or TENANTMCP_APP_PASSWORD)")
			}
			err = app.SetupDatabase(cmd.Context(), t.cfg, dsn, &app.SetupOptions{
				AppPassword: appPassword, ResetPassword: resetPassword, Progress: e.stderr,
			})
			if errors.Is(err, postgres.ErrRoleExists) {
				_, role, _ := app.DatabaseRoles(t.cfg)
				return fmt.Errorf("the application role %s already exists, so db setup left its password alone (roles are shared by every database on the cluster; another deployment may use it): "+
					"to replace its password add --reset-password; to keep it, leave out --app-password and TENANTMCP_APP_PASSWORD; "+
					"if it is another deployment's role, set database.app_role (and database.owner_role) to names of your own", role)
			}
			return err
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
	setup.Flags().StringVar(&appPassword, "app-password", "", "password for the application role if db setup creates it (or TENANTMCP_APP_PASSWORD); empty sets none")
	setup.Flags().BoolVar(&resetPassword, "reset-password", false, "also set --app-password on an application role that already exists")
	cmd.AddCommand(setup, migrate)
	return cmd
}

// setupDevPostgres prepares PostgreSQL for "tenantmcp dev --database":
// the roles and every table, using adminDSN. It returns the application
// role's DSN. dev logs in as the application role with
// TENANTMCP_APP_PASSWORD, else the password an earlier run recorded in the
// data dir, else a fresh one. It sets that password only on a role it
// creates: an existing role keeps its own (it may be another
// deployment's), and if dev cannot log in as it, it says what to do.
func setupDevPostgres(ctx context.Context, e *env, adminDSN, isolation, data string) (string, error) {
	cfg, err := devConfig("127.0.0.1:8080", ".", adminDSN, "", isolation, e.environ)
	if err != nil {
		return "", err
	}
	_, role, err := app.DatabaseRoles(cfg)
	if err != nil {
		return "", fmt.Errorf("--database: %w", err)
	}
	password := e.getenv("TENANTMCP_APP_PASSWORD")
	if password == "" {
		password = previousDevPassword(data, adminDSN, role)
	}
	if password == "" {
		password = app.RandomPassword()
	}
	appDSN, err := app.AppDSN(adminDSN, role, password)
	if err != nil {
		return "", fmt.Errorf("--database: %w", err)
	}
	err = app.SetupDatabase(ctx, cfg, adminDSN, &app.SetupOptions{AppPassword: password, Progress: e.stderr})
	existed := errors.Is(err, postgres.ErrRoleExists)
	if existed {
		err = app.SetupDatabase(ctx, cfg, adminDSN, &app.SetupOptions{Progress: e.stderr})
	}
	if err != nil {
		return "", fmt.Errorf("prepare PostgreSQL: %w", err)
	}
	if existed {
		if err := app.CheckLogin(ctx, appDSN); err != nil {
			return "", fmt.Errorf("the application role %s already exists and dev cannot log in as it (%w). "+
				"dev never changes an existing role's password: another deployment on this PostgreSQL cluster may log in with it. "+
				"Give dev a role of its own (TENANTMCP_DATABASE_APP_ROLE=... TENANTMCP_DATABASE_OWNER_ROLE=...) or a database of its own in --database; "+
				"or, if the role is this deployment's, pass its password in TENANTMCP_APP_PASSWORD "+
				"(to replace a lost one: tenantmcp db setup --app-password P --reset-password, or ALTER ROLE)", role, err)
		}
	}
	return appDSN, nil
}

// previousDevPassword is the application role's password recorded in the
// dev data dir by an earlier run on the same database and role, or "".
func previousDevPassword(data, adminDSN, role string) string {
	raw, err := os.ReadFile(filepath.Join(data, devStateFile))
	if err != nil {
		return ""
	}
	var st devState
	if json.Unmarshal(raw, &st) != nil {
		return ""
	}
	prev, err1 := url.Parse(st.Database)
	admin, err2 := url.Parse(adminDSN)
	if err1 != nil || err2 != nil || prev.User == nil || prev.User.Username() != role || prev.Host != admin.Host || prev.Path != admin.Path {
		return ""
	}
	pw, _ := prev.User.Password()
	return pw
}

// advice is what to do about err, for errors whose remedy is another
// command; "" for others. cmd is the command that failed.
func advice(e *env, cmd *cobra.Command, err error) string {
	if !errors.Is(err, app.ErrNotSetUp) {
		return ""
	}
	target := ""
	if cmd != nil {
		if f := cmd.Flags().Lookup("config"); f != nil && f.Value.String() != "" {
			target = " --config " + shellQuote(f.Value.String())
		}
	}
	return fmt.Sprintf("run '%s db setup%s --admin-dsn postgres://ADMIN@HOST:5432/DBNAME' first (it creates the roles and tables)", e.command(), target)
}
