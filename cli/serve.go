package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/server"
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
			stopMetrics, err := serveMetrics(ctx, cfg.Server.MetricsListen, srv, log)
			if err != nil {
				ln.Close()
				return err
			}
			defer stopMetrics()
			reloadOnSIGHUP(ctx, a.Registry, log)
			log.Info("serving MCP", "url", cfg.ResourceURL(), "listen", ln.Addr().String(),
				"issuer", a.Issuer(), "isolation", cfg.EffectiveIsolation(), "multi_tenant", cfg.Auth.MultiTenant.Enabled)
			return srv.Serve(ctx, ln, cfg.Server.ShutdownTimeout)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "deployment configuration file (or TENANTMCP_CONFIG)")
	return cmd
}

// serveMetrics serves the server's Prometheus metrics at /metrics on a
// listener of their own (server.metrics_listen), never on the public one:
// they count every tenant's activity. addr "" serves none.
func serveMetrics(ctx context.Context, addr string, srv *server.Server, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s (server.metrics_listen): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", srv.MetricsHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		<-done
	}, nil
}
