package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
)

func newTokenCmd(e *env) *cobra.Command {
	var (
		tf           targetFlags
		tenantID     string
		user, name   string
		scopes       []string
		ttl          time.Duration
		audience     string
		allowUnknown bool
		asAdmin      bool
	)
	cmd := &cobra.Command{
		Use:   "token --data DIR (--tenant ID | --admin) [--user U] [--scope S]... [--ttl D]",
		Short: "Mint a development token (prints only the token)",
		Long: `Mint a token from the development issuer of a "tenantmcp dev" data directory.
Only the token is printed on standard output, so scripts can capture it:

  TOKEN=$(tenantmcp token --data ./tenantmcp-data --tenant acme --user alice)

--tenant is the tenant's identifier as the identity provider would send it
(the org_id claim), e.g. "acme". --admin mints an admin token instead: no
tenant claim and the admin scope (admin.scope, "admin:global" by default), for
the admin tools and the admin API (/admin/v1/). Tokens for deployments made
with --config come from your identity provider, not from here.

  ADMIN=$(tenantmcp token --data ./tenantmcp-data --admin --user ops@example.com)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tf.config != "" {
				return usagef(cmd, "tokens for a --config deployment come from its identity provider; token works with a dev data directory (--data DIR)")
			}
			switch {
			case asAdmin && tenantID != "":
				return usagef(cmd, "give --tenant or --admin, not both: an admin token carries no tenant")
			case !asAdmin && tenantID == "":
				return usagef(cmd, "--tenant is required (e.g. --tenant acme), or --admin for an admin token")
			}
			if ttl <= 0 {
				return usagef(cmd, "--ttl must be positive, e.g. 1h")
			}
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			if t.dev == nil { // TENANTMCP_CONFIG named a deployment
				return usagef(cmd, "%s names a deployment (%s), whose tokens come from its identity provider; token works with a dev data directory (--data DIR)", config.EnvConfigFile, t.path)
			}
			a, err := app.OpenRegistry(cmd.Context(), t.cfg, &app.Options{Dev: t.dev, Tools: e.tools})
			if err != nil {
				return err
			}
			defer a.Close()
			if audience == "" {
				audience = t.state.Resource
			}
			if asAdmin {
				if !cmd.Flags().Changed("scope") {
					scopes = []string{t.cfg.Admin.Scope}
				}
				if user == "" {
					user = "admin"
				}
			} else {
				if !allowUnknown {
					if err := checkTenantKnown(cmd, e, a, t, tenantID); err != nil {
						return err
					}
				}
				if !cmd.Flags().Changed("scope") {
					scopes = devScopes(a.Tools())
				}
				if user == "" {
					user = "user@" + tenantID
				}
			}
			tok, err := t.dev.Mint(auth.TokenRequest{
				Audience: audience, TenantID: tenantID, TenantName: name, UserID: user, Scopes: scopes, TTL: ttl,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, tok)
			return nil
		},
	}
	tf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&tenantID, "tenant", "", "tenant identifier put in the org_id claim (e.g. acme)")
	f.StringVar(&name, "tenant-name", "", "tenant display name put in the org_name claim")
	f.StringVar(&user, "user", "", "user id put in the sub claim (default user@<tenant>)")
	f.StringArrayVar(&scopes, "scope", nil, "scope to grant; repeat for several (default: read:tools, execute:tools and every scope a served tool requires)")
	f.DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	f.StringVar(&audience, "audience", "", "audience (default: the dev server's MCP URL)")
	f.BoolVar(&allowUnknown, "allow-unknown", false, "mint even if the tenant is not registered (to test refusals)")
	f.BoolVar(&asAdmin, "admin", false, "mint an admin token (no tenant, the admin scope; default user \"admin\")")
	return cmd
}

// checkTenantKnown refuses to mint for a tenant the registry does not know,
// since the server would refuse the token anyway.
func checkTenantKnown(cmd *cobra.Command, e *env, a *app.App, t *target, externalID string) error {
	_, err := a.Registry.Lookup(cmd.Context(), t.dev.Issuer(), externalID)
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("tenant %q is not registered, so the server would refuse this token: add it with '%s tenant create --data %s --external-id %s', or pass --allow-unknown",
			externalID, e.command(), shellQuote(t.dataDir), shellQuote(externalID))
	}
	return err
}
