package cli

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/internal/app"
)

func newServeCmd(e *env) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve --config deploy.toml",
		Short: "Serve MCP for a deployment",
		Long: `Serve MCP at <public_url>/mcp for the deployment described by --config,
with TENANTMCP_* environment variables overriding file keys (see
docs/configuration.md). Tokens come from the configured identity provider;
the development issuer of "tenantmcp dev" is never enabled here.

On SIGINT or SIGTERM the server stops accepting connections and drains
requests in flight for up to server.shutdown_timeout.`,
		Example: `  tenantmcp serve --config deploy.toml
  TENANTMCP_DATABASE_DSN=postgres://tenantmcp_app@db/tenantmcp tenantmcp serve --config deploy.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configPath == "" {
				configPath = e.getenv("TENANTMCP_CONFIG")
			}
			if configPath == "" {
				return usagef(cmd, "--config is required (write one with 'tenantmcp init --oauth auth0 --multi-tenant -o deploy.toml'; for a local demo run 'tenantmcp dev')")
			}
			tf := targetFlags{config: configPath}
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			cfg := t.cfg
			log := e.logger(cfg.Log.Level, cfg.Log.Format)
			ctx := cmd.Context()
			a, err := app.Open(ctx, cfg, e.appOptions(nil, log))
			if err != nil {
				return err
			}
			defer a.Close()
			srv, stop, err := a.Server(ctx)
			if err != nil {
				return err
			}
			defer stop()
			ln, err := net.Listen("tcp", cfg.Server.Listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Server.Listen, err)
			}
			reloadOnSIGHUP(ctx, a.Registry, log)
			log.Info("serving MCP", "url", cfg.ResourceURL(), "listen", ln.Addr().String(),
				"issuer", a.Issuer(), "isolation", cfg.EffectiveIsolation(), "multi_tenant", cfg.Auth.MultiTenant.Enabled)
			return srv.Serve(ctx, ln, cfg.Server.ShutdownTimeout)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "deployment configuration file (or TENANTMCP_CONFIG)")
	return cmd
}
