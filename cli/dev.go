package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
)

// demoTenants are created by "tenantmcp dev".
var demoTenants = []struct{ id, name, user string }{
	{"acme", "Acme Corporation", "alice@acme.example"},
	{"globex", "Globex Inc.", "bob@globex.example"},
}

func newDevCmd(e *env) *cobra.Command {
	var (
		addr, data, database, isolation string
		tokenTTL                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local server with a built-in token issuer and demo tenants",
		Long: `Run tenantmcp locally with nothing to set up: a development token issuer
(its own key, JWKS served at /dev/jwks.json), demo tenants "acme" and "globex",
and the example document tools. It prints a ready token for each tenant and
the exact command to call the server with it.

By default everything lives in an embedded SQLite registry and one SQLite
database per tenant under --data. With --database it runs the same demo on
PostgreSQL, creating the roles and tables it needs (the DSN must be able to
create roles, e.g. the postgres superuser on a local test server). That DSN
only creates roles, tables and tenant schemas; the server's connections are
the application role's. The roles are named after the database, <database>_owner and
<database>_app (as "db setup" names them), so demos on different databases
of one cluster keep apart. dev sets a password only on a role it creates
(TENANTMCP_APP_PASSWORD, or a random one kept in --data); an existing role
keeps its own, which dev needs in TENANTMCP_APP_PASSWORD unless it recorded
it itself or the server trusts local connections.

The development issuer is for local use only: "tenantmcp serve" never enables it.`,
		Example: `  tenantmcp dev
  tenantmcp dev --addr 127.0.0.1:9090 --data /tmp/tmcp
  tenantmcp dev --database postgres://postgres@127.0.0.1:5432/test --isolation row_level_security`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDev(cmd.Context(), cmd, e, addr, data, database, isolation, tokenTTL)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&data, "data", defaultDataDir, "data directory (registry, tenant databases, dev issuer key)")
	f.StringVar(&database, "database", "", "PostgreSQL DSN with rights to create roles; runs the demo on PostgreSQL")
	f.StringVar(&isolation, "isolation", "", "isolation strategy: database_per_tenant (default), prefix, or with --database row_level_security (default) or schema_per_tenant")
	f.DurationVar(&tokenTTL, "token-ttl", 24*time.Hour, "lifetime of the printed demo tokens")
	return cmd
}

func runDev(ctx context.Context, cmd *cobra.Command, e *env, addr, data, database, isolation string, ttl time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef(cmd, "--addr %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(e.stderr, "warning: the dev server listens on %s, reachable from other machines; its issuer key is in %s\n", addr, data)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	key, err := loadOrCreateKey(filepath.Join(data, devKeyFile))
	if err != nil {
		return err
	}
	issuerURL := "http://" + addr + "/dev"
	iss, err := auth.NewDevIssuer(issuerURL, key)
	if err != nil {
		return err
	}
	st := devState{Addr: addr, Issuer: issuerURL, Resource: "http://" + addr + "/mcp", Isolation: isolation}
	if database != "" {
		if st.Isolation == "" {
			st.Isolation = config.IsolationRLS
		}
		appDSN, err := setupDevPostgres(ctx, e, database, st.Isolation, data)
		if err != nil {
			return err
		}
		st.Database, st.Admin = appDSN, database
	}
	cfg, err := devConfig(addr, data, st.Database, st.Admin, st.Isolation, e.environ)
	if err != nil {
		return err
	}
	st.Isolation = cfg.EffectiveIsolation()
	if err := writeDevState(data, &st); err != nil {
		return err
	}

	log := e.logger(cfg.Log.Level, cfg.Log.Format)
	a, err := app.Open(ctx, cfg, e.appOptions(iss, log))
	if err != nil {
		return err
	}
	defer a.Close()
	srv, stop, err := a.Server(ctx)
	if err != nil {
		return err
	}
	defer stop()

	var recs []*registry.Tenant
	for _, t := range demoTenants {
		rec, err := a.EnsureTenant(ctx, iss.Issuer(), t.id, t.name)
		if err != nil {
			return fmt.Errorf("create demo tenant %s: %w", t.id, err)
		}
		recs = append(recs, rec)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running? choose another --addr)", addr, err)
	}
	stopMetrics, err := serveMetrics(ctx, cfg.Server.MetricsListen, srv, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	reloadOnSIGHUP(ctx, a.Registry, log)
	fmt.Fprintf(e.stdout, "tenantmcp dev: serving MCP at %s\n", st.Resource)
	fmt.Fprintf(e.stdout, "  isolation: %s    data: %s\n", st.Isolation, data)
	fmt.Fprintf(e.stdout, "  development issuer: %s (JWKS at %s/jwks.json); tokens below are valid for %s\n\n", issuerURL, issuerURL, ttl)
	for i, t := range demoTenants {
		tok, err := iss.Mint(auth.TokenRequest{
			Audience: st.Resource, TenantID: t.id, TenantName: t.name, UserID: t.user,
			Scopes: []string{"read:tools", "execute:tools"}, TTL: ttl,
		})
		if err != nil {
			return err
		}
		printTenant(e.stdout, st.Resource, t.id, t.name, string(recs[i].ID), t.user, tok)
	}
	fmt.Fprintf(e.stdout, "More tokens:  tenantmcp token --data %s --tenant globex --user carol\n", data)
	fmt.Fprintf(e.stdout, "More tenants: tenantmcp tenant add --data %s --external-id initech --name Initech\n", data)
	fmt.Fprintf(e.stdout, "Tenant changes apply within registry.cache_ttl (30s), or at once on SIGHUP (kill -HUP %d).\n", os.Getpid())
	fmt.Fprintf(e.stdout, "Stop with Ctrl-C.\n\n")

	return srv.Serve(ctx, ln, cfg.Server.ShutdownTimeout)
}

func printTenant(w io.Writer, resource, id, name, internal, user, token string) {
	fmt.Fprintf(w, "Tenant %q (%s), internal id %s, user %s\n", id, name, internal, user)
	fmt.Fprintf(w, "  token: %s\n", token)
	fmt.Fprintf(w, "  list tools:\n    npx @modelcontextprotocol/inspector --cli %s --transport http --method tools/list --header \"Authorization: Bearer %s\"\n", resource, token)
	fmt.Fprintf(w, "  store a document:\n    npx @modelcontextprotocol/inspector --cli %s --transport http --method tools/call --tool-name put_document --tool-arg key=hello.txt --tool-arg \"content=hello from %s\" --header \"Authorization: Bearer %s\"\n\n", resource, id, token)
}

func loadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err = auth.GenerateDevKey()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

func writeDevState(dir string, st *devState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, devStateFile), append(b, '\n'), 0o600)
}

// writeFileAtomic writes via a temporary file and rename, so a reader
// never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
