package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/config"
)

func newInitCmd(e *env) *cobra.Command {
	var (
		o      config.InitOptions
		output string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "init --oauth auth0|cognito|entra|generic [--multi-tenant] [--isolation STRATEGY] [--domain DOMAIN]",
		Short: "Write a commented starter deploy.toml",
		Long: `Write a commented starter configuration for your identity provider.

The file accepts the same keys as the chapter's .pmcp/deploy.toml ([auth] and
[auth.multi_tenant]) plus tenantmcp's own sections. Fill in the placeholders,
then run: tenantmcp serve --config deploy.toml`,
		Example: `  tenantmcp init --oauth auth0 --multi-tenant --domain acme.eu.auth0.com
  tenantmcp init --oauth entra --multi-tenant --isolation schema_per_tenant -o deploy.toml
  tenantmcp init --oauth cognito --multi-tenant --domain cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Provider == "" {
				return usagef(cmd, "--oauth is required: one of auth0, cognito, entra, generic")
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
			fmt.Fprintf(e.stderr, "wrote %s; edit it, then run: tenantmcp serve --config %s\n", output, output)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Provider, "oauth", "", "identity provider preset: auth0, cognito, entra or generic")
	f.BoolVar(&o.MultiTenant, "multi-tenant", false, "serve many organisations, taking the tenant from a token claim")
	f.StringVar(&o.Isolation, "isolation", "", "data isolation: row_level_security, schema_per_tenant, database_per_tenant or prefix")
	f.StringVar(&o.Domain, "domain", "", "the provider's domain (e.g. your-tenant.auth0.com)")
	f.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	f.BoolVar(&force, "force", false, "overwrite an existing --output file")
	return cmd
}
