package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
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

A data directory belongs to the server that created it: its demo tenants are
registered under that server's issuer (http://ADDR/dev), and token and tenant
act on it. Later runs with the same --data serve on the same address; for a
second server, give it its own --data.

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
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on; a data directory keeps the address it was first served on")
	f.StringVar(&data, "data", defaultDataDir, "data directory (registry, tenant databases, dev issuer key)")
	f.StringVar(&database, "database", "", "PostgreSQL DSN with rights to create roles; runs the demo on PostgreSQL")
	f.StringVar(&isolation, "isolation", "", "isolation strategy: database_per_tenant (default), prefix, or with --database row_level_security (default) or schema_per_tenant")
	f.DurationVar(&tokenTTL, "token-ttl", 24*time.Hour, "lifetime of the printed demo tokens")
	return cmd
}

func runDev(ctx context.Context, cmd *cobra.Command, e *env, addr, data, database, isolation string, ttl time.Duration) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef(cmd, "--addr %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	// A data dir belongs to the dev server that created it: its tenants are
	// registered under that server's issuer, and token and tenant address
	// that server. Without --addr, dev restarts it; another --addr is
	// refused rather than silently re-homing the dir under a new issuer.
	prev, err := readDevState(data)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if prev != nil {
		if cmd.Flags().Changed("addr") && addr != prev.Addr {
			return fmt.Errorf("%s belongs to the dev server at http://%s (issuer %s); use --data DIR for a second server, or --addr %s",
				data, prev.Addr, prev.Issuer, prev.Addr)
		}
		addr = prev.Addr
	}
	host, _, _ := net.SplitHostPort(addr)
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
	st := devState{Addr: addr, Isolation: isolation}
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
	st.Issuer, st.Resource, st.Isolation = cfg.EffectiveIssuer(), cfg.ResourceURL(), cfg.EffectiveIsolation()
	if prev != nil && (st.Issuer != prev.Issuer || st.Resource != prev.Resource) {
		// Only a hand-edited dev.json gets here: its addr and issuer disagree.
		return fmt.Errorf("%s records issuer %s and resource %s, but a dev server at %s has issuer %s and resource %s: fix or remove %s",
			data, prev.Issuer, prev.Resource, addr, st.Issuer, st.Resource, filepath.Join(data, devStateFile))
	}
	iss, err := auth.NewDevIssuer(st.Issuer, key)
	if err != nil {
		return err
	}
	if err := writeDevState(data, &st); err != nil {
		return err
	}

	log := e.logger(cfg.Log.Level, cmp.Or(cfg.Log.Format, "text")) // for people
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
	tools := a.Tools()
	scopes := devScopes(tools)
	fmt.Fprintf(e.stdout, "%s dev: serving MCP at %s\n", e.name, st.Resource)
	fmt.Fprintf(e.stdout, "  isolation: %s    data: %s\n", st.Isolation, data)
	fmt.Fprintf(e.stdout, "  development issuer: %s (JWKS at %s/jwks.json); tokens below are valid for %s, scopes %s\n",
		st.Issuer, st.Issuer, ttl, strings.Join(scopes, " "))
	fmt.Fprintf(e.stdout, "  OAuth: an MCP client that supports OAuth (the MCP Inspector, the TypeScript SDK, ...) needs only the URL %s:\n", st.Resource)
	fmt.Fprintf(e.stdout, "  it registers itself and opens a sign-in page (%s/authorize) where you pick the tenant and user.\n\n", st.Issuer)
	for i, t := range demoTenants {
		tok, err := iss.Mint(auth.TokenRequest{
			Audience: st.Resource, TenantID: t.id, TenantName: t.name, UserID: t.user,
			Scopes: scopes, TTL: ttl,
		})
		if err != nil {
			return err
		}
		printTenant(e.stdout, st.Resource, tools, t.id, t.name, string(recs[i].ID), t.user, tok)
	}
	cli, dir := e.command(), shellQuote(data)
	if cfg.Admin.Enabled {
		tok, err := iss.Mint(auth.TokenRequest{Audience: st.Resource, UserID: "admin", Scopes: []string{cfg.Admin.Scope}, TTL: ttl})
		if err != nil {
			return err
		}
		printAdmin(e.stdout, st.Resource, tok)
		fmt.Fprintf(e.stdout, "Console: %s (sign in as the Administrator on the dev sign-in page)\n\n", consoleURL(st.Resource))
	}
	fmt.Fprintf(e.stdout, "More tokens:  %s token --data %s --tenant globex --user carol\n", cli, dir)
	fmt.Fprintf(e.stdout, "Admin token:  %s token --data %s --admin --user ops@example.com\n", cli, dir)
	fmt.Fprintf(e.stdout, "More tenants: %s tenant create --data %s --external-id initech --name Initech\n", cli, dir)
	fmt.Fprintf(e.stdout, "Tenant changes (tenant commands, the admin API and tools) reach this server within a second.\n")
	fmt.Fprintf(e.stdout, "Stop with Ctrl-C.\n\n")

	return srv.Serve(ctx, ln, cfg.Server.ShutdownTimeout)
}

// consoleURL is the operator console's address on the server of resource.
func consoleURL(resource string) string {
	u, err := neturl.Parse(resource)
	if err != nil {
		return "/console/"
	}
	u.Path, u.RawQuery = "/console/", ""
	return u.String()
}

// printAdmin prints the dev admin token and how to use it.
func printAdmin(w io.Writer, resource, token string) {
	api := resource // the admin API is at the server's root, whatever the MCP path
	if u, err := neturl.Parse(resource); err == nil {
		u.Path = server.AdminAPIPath
		api = u.String()
	}
	fmt.Fprintf(w, "Admin (user admin): the admin tools over MCP at %s, and the admin API at %s\n", resource, api)
	fmt.Fprintf(w, "  ADMIN_TOKEN=%s\n", token)
	fmt.Fprintf(w, "  curl -H \"Authorization: Bearer $ADMIN_TOKEN\" %stenants\n\n", api)
}

// inspectorVersion is the MCP Inspector release the printed commands
// name: the one tools/inspector pins for the end-to-end tests
// (TestInspectorPinned keeps the two equal). Unpinned, npx may run an old
// cached release that cannot talk to this server.
const inspectorVersion = "2.12.0"

// inspector runs the pinned MCP Inspector CLI.
const inspector = "npx -y @modelcontextprotocol/inspector@" + inspectorVersion

// devScopes are the default scopes of dev tokens (app.DevScopes).
func devScopes(tools []server.Tool) []string { return app.DevScopes(tools) }

func printTenant(w io.Writer, resource string, tools []server.Tool, id, name, internal, user, token string) {
	fmt.Fprintf(w, "Tenant %q (%s), internal id %s, user %s\n", id, name, internal, user)
	fmt.Fprintf(w, "  token: %s\n", token)
	base := inspector + " --cli " + resource + " --transport http"
	bearer := fmt.Sprintf(`--header "Authorization: Bearer %s"`, token)
	fmt.Fprintf(w, "  list tools:\n    %s --method tools/list %s\n", base, bearer)
	if tool, args, ok := exampleCall(tools, id); ok {
		fmt.Fprintf(w, "  call %s:\n    %s --method tools/call --tool-name %s%s %s\n", tool, base, shellQuote(tool), args, bearer)
	}
	fmt.Fprintln(w)
}

// exampleCall picks the tool dev shows a call of: the first served tool
// that changes something (so a second tenant can check it does not see
// the change), is not behind a feature flag, and takes only string
// arguments. It returns the tool's name and its --tool-arg flags: the
// first required argument is "hello", the others "hello from <tenant>".
func exampleCall(tools []server.Tool, tenantID string) (name, args string, ok bool) {
	for _, t := range tools {
		if t.ReadOnly || t.Flag != "" {
			continue
		}
		var schema struct {
			Properties map[string]struct {
				Type any `json:"type"`
			} `json:"properties"`
			Required []string `json:"required"`
		}
		if len(t.InputSchema) > 0 && json.Unmarshal(t.InputSchema, &schema) != nil {
			continue
		}
		var b strings.Builder
		for i, arg := range schema.Required {
			if typ, _ := schema.Properties[arg].Type.(string); typ != "string" {
				b.Reset()
				break
			}
			v := "hello"
			if i > 0 {
				v = "hello from " + tenantID
			}
			b.WriteString(" --tool-arg " + shellQuote(arg+"="+v))
		}
		if b.Len() > 0 || len(schema.Required) == 0 {
			return t.Name, b.String(), true
		}
	}
	return "", "", false
}

// command is how the user runs this binary, for the commands the CLI
// prints: "go run ./<main package>" when go run started it, its name when
// that is what PATH finds, else its absolute path.
func (e *env) command() string {
	exe, err := os.Executable()
	if err != nil {
		return e.name
	}
	bi, _ := debug.ReadBuildInfo()
	return commandFor(e.name, exe, bi, e.getenv("GOCACHE"), exec.LookPath)
}

// commandFor is command with its surroundings as arguments: the binary's
// name, executable path and build information, the GOCACHE variable and
// exec.LookPath.
func commandFor(name, exe string, bi *debug.BuildInfo, gocache string, lookPath func(string) (string, error)) string {
	if bi != nil && builtByGoRun(exe, gocache) && !strings.HasSuffix(bi.Path, ".test") {
		switch {
		case bi.Main.Sum != "": // go run example.com/cmd@version
			return "go run " + bi.Path + "@" + bi.Main.Version
		case bi.Path == bi.Main.Path:
			return "go run ."
		case strings.HasPrefix(bi.Path, bi.Main.Path+"/"):
			return "go run ." + strings.TrimPrefix(bi.Path, bi.Main.Path)
		}
	}
	if p, err := lookPath(name); err == nil && sameFile(p, exe) {
		return name
	}
	return shellQuote(exe)
}

// builtByGoRun reports whether exe is where go run puts the binaries it
// builds: a go-build temporary directory, or the build cache.
func builtByGoRun(exe, gocache string) bool {
	if gocache != "" && strings.HasPrefix(exe, filepath.Clean(gocache)+string(filepath.Separator)) {
		return true
	}
	for _, dir := range strings.Split(filepath.ToSlash(filepath.Dir(exe)), "/") {
		if strings.HasPrefix(dir, "go-build") {
			return true
		}
	}
	return false
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
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

// readDevState reads the state a dev server recorded in dir; the error
// wraps os.ErrNotExist if there is none.
func readDevState(dir string) (*devState, error) {
	path := filepath.Join(dir, devStateFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st devState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
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
