package cli

import (
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
)

func newInitCmd(e *env) *cobra.Command {
	var (
		o        config.InitOptions
		database string
		output   string
		force    bool
	)
	cmd := &cobra.Command{
		Use:   "init --oauth auth0|cognito|entra|generic [--multi-tenant] [--isolation STRATEGY] [--database URL] [--domain DOMAIN]",
		Short: "Write a commented starter deploy.toml",
		Long: `Write a commented starter configuration for your identity provider.

The file accepts the same keys as the chapter's .pmcp/deploy.toml ([auth] and
[auth.multi_tenant]) plus tenantmcp's own sections. Fill in the placeholders
(marked TODO), then run, in this order:

  tenantmcp db setup --config deploy.toml --admin-dsn postgres://ADMIN@HOST:5432/DBNAME   (PostgreSQL only)
  tenantmcp tenant create --config deploy.toml --external-id TENANT_ID --name NAME
  tenantmcp serve --config deploy.toml

--isolation row_level_security or schema_per_tenant keeps tenant data in
PostgreSQL: give the database with --database postgres://HOST:5432/DBNAME.
The file's database.dsn then logs in as the application role that db setup
creates for that database, <DBNAME>_app (a user in the URL other than that
role is replaced: it belongs in db setup's --admin-dsn). Without --database a
placeholder is written. database_per_tenant (the default without a database)
and prefix need nothing more.`,
		Example: `  tenantmcp init --oauth auth0 --multi-tenant --domain acme.eu.auth0.com
  tenantmcp init --oauth auth0 --multi-tenant --domain acme.eu.auth0.com --isolation row_level_security --database postgres://db.internal:5432/tenantmcp -o deploy.toml
  tenantmcp init --oauth entra --multi-tenant --isolation schema_per_tenant --database postgres://db.internal:5432/tenantmcp -o deploy.toml
  tenantmcp init --oauth cognito --multi-tenant --domain cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Provider == "" {
				return usagef(cmd, "--oauth is required: one of auth0, cognito, entra, generic")
			}
			if database != "" {
				dsn, role, replaced, err := initDSN(database)
				if err != nil {
					return usagef(cmd, "--database: %v", err)
				}
				o.DatabaseDSN = dsn
				if replaced != "" {
					fmt.Fprintf(e.stderr, "database.dsn logs in as %s, the application role 'db setup' creates, not as %s: give %s's URL to db setup as --admin-dsn\n",
						role, replaced, replaced)
				}
			}
			data, err := config.InitTemplate(o)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			if output == "" || output == "-" {
				_, err := e.stdout.Write(data)
				return err
			}
			if fileExists(output) && !force {
				return fmt.Errorf("%s already exists; pass --force to overwrite it", output)
			}
			if err := os.WriteFile(output, data, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %s. Next, in this order:\n", output)
			for i, step := range config.NextSteps(o, e.command(), shellQuote(output)) {
				if step.Command != "" {
					fmt.Fprintf(e.stderr, "  %d. %s\n     %s\n", i+1, step.Command, step.Note)
				} else {
					fmt.Fprintf(e.stderr, "  %d. %s\n", i+1, step.Note)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Provider, "oauth", "", "identity provider preset: auth0, cognito, entra or generic")
	f.BoolVar(&o.MultiTenant, "multi-tenant", false, "serve many organisations, taking the tenant from a token claim")
	f.StringVar(&o.Isolation, "isolation", "", "data isolation: row_level_security, schema_per_tenant, database_per_tenant or prefix")
	f.StringVar(&database, "database", "", "PostgreSQL database, postgres://HOST:5432/DBNAME (RLS and schema isolation keep tenant data there; the registry too)")
	f.StringVar(&o.Domain, "domain", "", "the provider's domain (e.g. your-tenant.auth0.com)")
	f.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	f.BoolVar(&force, "force", false, "overwrite an existing --output file")
	return cmd
}

// initDSN is the database.dsn init writes for --database raw: raw with
// the application role db setup creates (app.DatabaseRoles, returned as
// role) as its user. A user in raw that is another role is replaced (and
// returned as replaced), its password dropped; the application role itself
// is kept with its password.
func initDSN(raw string) (dsn, role, replaced string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", "", fmt.Errorf("want a postgres://HOST:5432/DBNAME URL")
	}
	_, role, err = app.DatabaseRoles(&config.Config{Database: config.DatabaseConfig{DSN: raw}})
	if err != nil {
		return "", "", "", err
	}
	if u.User != nil && u.User.Username() != role {
		replaced = u.User.Username()
	}
	if u.User == nil || replaced != "" {
		u.User = url.User(role)
	}
	return u.String(), role, replaced, nil
}
