package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/server"
)

func newServeCmd(e *env) *cobra.Command {
	var configPath, addr string
	cmd := &cobra.Command{
		Use:   "serve [--config deploy.toml] [--addr HOST:PORT]",
		Short: "Serve MCP for a deployment",
		Long: `Serve MCP at <public_url>/mcp for the deployment described by --config (or
the file TENANTMCP_CONFIG names), with TENANTMCP_* environment variables
overriding file keys (see docs/configuration.md). Without a file the
variables alone configure it, as in a container:

  TENANTMCP_AUTH_PROVIDER=auth0 TENANTMCP_AUTH_DOMAIN=acme.eu.auth0.com tenantmcp serve

--addr overrides server.listen. Tokens come from the configured identity
provider; the development issuer of "tenantmcp dev" is never enabled here.

GET /healthz answers 200 while the process runs; GET /readyz answers 200
once the database answers and the identity provider's signing keys are
loaded, and 503 with a short reason while not (and while shutting down):
point liveness and readiness probes at them.

On SIGINT or SIGTERM the server stops accepting connections and drains
requests in flight for up to server.shutdown_timeout.`,
		Example: `  tenantmcp serve --config deploy.toml
  tenantmcp serve --config deploy.toml --addr 0.0.0.0:8080
  TENANTMCP_DATABASE_DSN=postgres://tenantmcp_app@db/tenantmcp tenantmcp serve --config deploy.toml
  TENANTMCP_AUTH_PROVIDER=auth0 TENANTMCP_AUTH_DOMAIN=acme.eu.auth0.com tenantmcp serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, source, err := loadServeConfig(cmd, e, configPath, addr)
			if err != nil {
				return err
			}
			log := e.logger(cfg.Log.Level, cmp.Or(cfg.Log.Format, "json")) // for a log pipeline
			ctx := cmd.Context()
			a, err := app.OpenWaiting(ctx, cfg, e.appOptions(nil, log))
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
			log.Info("serving MCP", "url", cfg.ResourceURL(), "listen", ln.Addr().String(), "config", source,
				"issuer", a.Issuer(), "isolation", cfg.EffectiveIsolation(), "multi_tenant", cfg.Auth.MultiTenant.Enabled)
			return srv.Serve(ctx, ln, cfg.Server.ShutdownTimeout)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "deployment configuration file (or "+config.EnvConfigFile+"); without one, TENANTMCP_* variables alone configure the deployment")
	cmd.Flags().StringVar(&addr, "addr", "", "host:port to listen on, overriding server.listen (e.g. 0.0.0.0:8080; then set server.public_url too)")
	return cmd
}

// loadServeConfig loads serve's configuration: the file path names (else
// the file TENANTMCP_CONFIG names, else none), the TENANTMCP_* variables
// over it, and addr over server.listen. It returns where the configuration
// came from, for the log.
func loadServeConfig(cmd *cobra.Command, e *env, path, addr string) (*config.Config, string, error) {
	if path == "" {
		path = e.getenv(config.EnvConfigFile)
	}
	if path == "" && !config.EnvConfigures(e.environ) {
		return nil, "", usagef(cmd, "no configuration: give --config FILE (write one with '%[1]s init --oauth auth0 --multi-tenant -o deploy.toml'), "+
			"set %[2]s to its path, or configure the deployment with TENANTMCP_* variables alone, "+
			"such as TENANTMCP_AUTH_PROVIDER=auth0 TENANTMCP_AUTH_DOMAIN=your-tenant.auth0.com (each key's variable is in docs/configuration.md); "+
			"for a local demo run '%[1]s dev'", e.command(), config.EnvConfigFile)
	}
	environ := e.environ
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, "", usagef(cmd, "--addr %q is not host:port, such as 127.0.0.1:8080 or :8080", addr)
		}
		// As the last variable it wins over the file and the environment,
		// and the keys derived from server.listen (server.public_url, the
		// audience) follow it.
		environ = append(slices.Clip(environ), "TENANTMCP_SERVER_LISTEN="+addr)
	}
	cfg, err := config.Load(path, environ)
	switch {
	case err == nil && path == "":
		return cfg, "environment", nil
	case err == nil:
		return cfg, path, nil
	case path == "" && errors.Is(err, config.ErrInvalid):
		return nil, "", fmt.Errorf("no configuration file (--config or %s), so TENANTMCP_* variables alone configure the deployment, "+
			"and they leave these problems (a key's variable is TENANTMCP_ + its path in upper case with \".\" as \"_\", e.g. auth.domain is TENANTMCP_AUTH_DOMAIN):\n%w",
			config.EnvConfigFile, err)
	}
	return nil, "", err
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
