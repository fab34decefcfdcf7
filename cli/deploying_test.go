package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// The README's "Deploying" section, run as a user types it.

// withoutUser is dsn with no user or password: where the database is.
func withoutUser(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = nil
	return u.String()
}

// adminExec runs statements as the test superuser in the database of dsn.
func adminExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// waitFor polls url until it answers code, and returns the body.
func waitFor(t *testing.T, url string, code int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := get(t, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %d %q after 30s, want %d", url, got, body, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readmeDeploying returns the tenantmcp commands of the README's
// "Deploying" block, split into words as the shell would (double quotes,
// backslash-newline), without the leading "tenantmcp".
func readmeDeploying(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Deploying\n")
	_, block, ok2 := strings.Cut(section, "```sh\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no sh block under \"## Deploying\"")
	}
	var cmds [][]string
	for _, line := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		if words := shellWords(line); len(words) > 0 && words[0] == "tenantmcp" {
			cmds = append(cmds, words[1:])
		}
	}
	return cmds
}

// shellWords splits a command line as the shell does for the README's
// commands: words separated by blanks, double quotes grouping, "#" at the
// start of a word beginning a comment.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	quoted, inWord := false, false
	for _, r := range line + " " {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == '#' && !quoted && !inWord:
			return words
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	return words
}

// TestDeploying runs the commands of the README's Deploying section as
// written and in their order — init, db setup, tenant create, serve — against
// a PostgreSQL database of its own, for both PostgreSQL isolation
// strategies: only the database URLs, the password and the file's path are
// the test's own. The fake identity provider stands in for Auth0 through
// TENANTMCP_AUTH_ISSUER and TENANTMCP_AUTH_JWKS_URL; the file is used as
// init wrote it. Once serving, /healthz and /readyz answer, and /readyz
// turns 503 while the application role cannot reach the database, then
// 200 again.
func TestDeploying(t *testing.T) {
	readme := readmeDeploying(t)
	var order []string
	for _, c := range readme {
		order = append(order, strings.Join(c[:min(2, len(c))], " "))
	}
	if got := strings.Join(order, ", "); !strings.HasPrefix(got, "init --oauth, db setup, tenant create, serve --config") {
		t.Fatalf("README's Deploying commands are %s, want init, db setup, tenant create, serve", got)
	}
	for _, iso := range []string{config.IsolationRLS, config.IsolationSchema} {
		t.Run(iso, func(t *testing.T) {
			d := newPGDeployment(t)
			idp := idptest.New(t)
			addr := freeAddr(t)
			path := filepath.Join(t.TempDir(), "deploy.toml")
			env := []string{
				"TENANTMCP_AUTH_ISSUER=" + idp.Issuer(),
				"TENANTMCP_AUTH_JWKS_URL=" + idp.JWKSURL(),
				"TENANTMCP_SERVER_LISTEN=" + addr,
				"TENANTMCP_SERVER_DATA_DIR=" + t.TempDir(),
			}
			if iso == config.IsolationSchema {
				// tenant create creates the tenant's schema as the administrator.
				env = append(env, "TENANTMCP_DATABASE_ADMIN_DSN="+d.dsn)
			}
			ours := map[string]string{
				"postgres://db.internal:5432/tenantmcp":          withoutUser(t, d.dsn),
				"postgres://postgres@db.internal:5432/tenantmcp": d.dsn,
				"$PW":                "s3cret-app-pw",
				"deploy.toml":        path,
				"row_level_security": iso,
			}
			cmds := make([][]string, len(readme))
			for i, c := range readme {
				for _, w := range c {
					if v, ok := ours[w]; ok {
						w = v
					} else if strings.Contains(w, "db.internal") || strings.Contains(w, "$") {
						t.Fatalf("README command %v: the test has no stand-in for %q", c, w)
					}
					cmds[i] = append(cmds[i], w)
				}
			}

			code, _, errOut := run(t, env, cmds[0]...) // init
			if code != 0 {
				t.Fatalf("%v: exit %d\n%s", cmds[0], code, errOut)
			}
			for _, want := range []string{"db setup --config " + path, "tenant create --config " + path, "serve --config " + path} {
				if !strings.Contains(errOut, want) {
					t.Errorf("init does not say to run %q:\n%s", want, errOut)
				}
			}
			if i, j, k := strings.Index(errOut, "db setup"), strings.Index(errOut, "tenant create"), strings.Index(errOut, "serve --config"); !(i < j && j < k) {
				t.Errorf("init lists the next steps out of order:\n%s", errOut)
			}
			file, _ := os.ReadFile(path)
			if !strings.Contains(string(file), "dsn = \""+withUserOnly(t, withoutUser(t, d.dsn), d.app)+"\"") {
				t.Errorf("database.dsn does not log in as %s, the role db setup creates:\n%s", d.app, file)
			}
			for _, c := range cmds[1:3] { // db setup, tenant create
				if code, out, errOut := run(t, env, c...); code != 0 {
					t.Fatalf("%v: exit %d\n%s%s", c, code, out, errOut)
				}
			}
			srv := start(t, env, "serving MCP", cmds[3]...)

			url := "http://" + addr + "/mcp"
			acme := connect(t, url, idp.Sign(idp.Auth0Claims(url, "org_9fQ2xAcme", "Acme", "auth0|alice")))
			if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "plan.md", "content": "acme plan"}); isErr {
				t.Fatalf("acme put: %s", got)
			}
			if got, _ := callTool(t, acme, "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(got, "acme plan") {
				t.Fatalf("acme get: %s", got)
			}

			base := "http://" + addr
			if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
				t.Fatalf("/healthz: %d %q", code, body)
			}
			if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
				t.Fatalf("/readyz: %d %q", code, body)
			}
			// The database goes away for the application role: not ready,
			// saying why without naming roles, databases or tenants.
			adminExec(t, d.dsn, "ALTER ROLE "+d.app+" NOLOGIN",
				"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+d.app+"'")
			body := waitFor(t, base+"/readyz", 503)
			if body != "not ready: database unreachable\n" {
				t.Fatalf("/readyz with the database unreachable: %q", body)
			}
			if code, _ := get(t, base+"/healthz"); code != 200 {
				t.Fatalf("/healthz with the database unreachable: %d", code)
			}
			if !strings.Contains(srv.err.String(), "readiness check fails: database unreachable") {
				t.Errorf("the cause is not logged:\n%s", srv.err)
			}
			adminExec(t, d.dsn, "ALTER ROLE "+d.app+" LOGIN")
			waitFor(t, base+"/readyz", 200)
			if got, _ := callTool(t, acme, "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(got, "acme plan") {
				t.Fatalf("acme get after the database is back: %s", got)
			}
			if code := srv.stop(t); code != 0 {
				t.Fatalf("serve exit %d:\n%s", code, srv.err)
			}
		})
	}
}

// withUserOnly is dsn with user and no password.
func withUserOnly(t *testing.T, dsn, user string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	return u.String()
}

// TestBeforeDBSetup: serve and tenant create on a PostgreSQL deployment whose
// database has not been set up say to run db setup first — with the
// command to type — instead of a driver error: both when the application
// role does not exist yet and when it exists but the tables do not.
func TestBeforeDBSetup(t *testing.T) {
	d := newPGDeployment(t)
	path := filepath.Join(t.TempDir(), "deploy.toml")
	env := []string{"TENANTMCP_SERVER_DATA_DIR=" + t.TempDir()}
	if code, _, errOut := run(t, env, "init", "--oauth", "auth0", "--multi-tenant", "--domain", "your-tenant.eu.auth0.com",
		"--isolation", "row_level_security", "--database", withoutUser(t, d.dsn), "-o", path); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	setupFirst := " db setup --config " + path + " --admin-dsn postgres://ADMIN@HOST:5432/DBNAME' first"
	check := func(t *testing.T, want string, args ...string) {
		t.Helper()
		code, _, errOut := run(t, env, args...)
		if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, setupFirst) || strings.Contains(errOut, "42P01") {
			t.Errorf("%v before db setup: exit %d, want 1 saying %q and %q:\n%s", args, code, want, setupFirst, errOut)
		}
	}
	t.Run("no roles", func(t *testing.T) {
		want := fmt.Sprintf("PostgreSQL does not let the application role %q log in", d.app)
		check(t, want, "serve", "--config", path)
		check(t, want, "tenant", "add", "--config", path, "--external-id", "org_9fQ2xAcme")
	})
	t.Run("roles without tables", func(t *testing.T) {
		adminExec(t, d.dsn, "CREATE ROLE "+d.app+" LOGIN")
		want := fmt.Sprintf("the database %q has no tenantmcp tables", d.db)
		check(t, want, "serve", "--config", path)
		check(t, want, "tenant", "add", "--config", path, "--external-id", "org_9fQ2xAcme")
	})
	// db setup refuses an administrator URL for another database: it
	// would make the roles and tables where the server does not look.
	other := testenv.WithDatabase(t, d.dsn, "postgres")
	if code, _, errOut := run(t, env, "db", "setup", "--config", path, "--admin-dsn", other); code != 1 ||
		!strings.Contains(errOut, fmt.Sprintf(`names the database "postgres" but database.dsn names %q`, d.db)) {
		t.Errorf("db setup with another database's administrator URL: exit %d %s", code, errOut)
	}
	// Then the order of the README works.
	if code, _, errOut := run(t, env, "db", "setup", "--config", path, "--admin-dsn", d.dsn); code != 0 {
		t.Fatalf("db setup: %s", errOut)
	}
	if code, _, errOut := run(t, env, "tenant", "add", "--config", path, "--external-id", "org_9fQ2xAcme"); code != 0 {
		t.Fatalf("tenant create after db setup: %s", errOut)
	}
}

// TestInitDatabase: init --database writes a database.dsn that logs in as
// the application role db setup creates; the placeholder does too.
func TestInitDatabase(t *testing.T) {
	roleOf := func(t *testing.T, out string) (user, role string) {
		t.Helper()
		cfg, err := config.Parse([]byte(out), nil)
		if err != nil {
			t.Fatalf("init output does not load: %v\n%s", err, out)
		}
		_, role, err = app.DatabaseRoles(cfg)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(cfg.Database.DSN)
		if err != nil {
			t.Fatal(err)
		}
		return u.User.Username(), role
	}
	// The placeholder's user is the role db setup would create.
	code, out, errOut := run(t, nil, "init", "--oauth", "auth0", "--multi-tenant", "--isolation", "schema_per_tenant")
	if code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	if user, role := roleOf(t, out); user != role {
		t.Errorf("placeholder database.dsn logs in as %q; db setup creates %q", user, role)
	}
	// An administrator's URL is turned into the application role's, and
	// init says so.
	code, out, errOut = run(t, nil, "init", "--oauth", "auth0", "--multi-tenant", "--database", "postgres://postgres:admin-pw@db.internal:5432/acme_mcp?sslmode=require")
	if code != 0 {
		t.Fatalf("init --database: %s", errOut)
	}
	if user, role := roleOf(t, out); user != "acme_mcp_app" || role != "acme_mcp_app" {
		t.Errorf("database.dsn logs in as %q (db setup creates %q), want acme_mcp_app", user, role)
	}
	if strings.Contains(out, "admin-pw") || !strings.Contains(out, `dsn = "postgres://acme_mcp_app@db.internal:5432/acme_mcp?sslmode=require"`) {
		t.Errorf("database.dsn:\n%s", out)
	}
	if !strings.Contains(errOut, "not as postgres") {
		t.Errorf("init does not say it replaced the user: %s", errOut)
	}
	// The application role's own URL is kept, password and all.
	_, out, _ = run(t, nil, "init", "--oauth", "auth0", "--multi-tenant", "--database", "postgres://acme_mcp_app:pw@db.internal/acme_mcp")
	if !strings.Contains(out, `dsn = "postgres://acme_mcp_app:pw@db.internal/acme_mcp"`) {
		t.Errorf("application role's URL not kept:\n%s", out)
	}
	for _, bad := range []string{"mysql://db/x", "postgres://db.internal:5432/"} {
		if code, _, errOut := run(t, nil, "init", "--oauth", "auth0", "--database", bad); code != 2 || !strings.Contains(errOut, "--database") {
			t.Errorf("init --database %s: exit %d %s", bad, code, errOut)
		}
	}
	// db setup on a deployment without PostgreSQL says there is nothing
	// to set up, and how to use PostgreSQL.
	path := filepath.Join(t.TempDir(), "deploy.toml")
	run(t, nil, "init", "--oauth", "auth0", "--multi-tenant", "--domain", "acme.eu.auth0.com", "-o", path)
	if code, _, errOut := run(t, nil, "db", "setup", "--config", path); code != 1 || !strings.Contains(errOut, "does not use PostgreSQL") || !strings.Contains(errOut, "--database postgres://") {
		t.Errorf("db setup without PostgreSQL: exit %d %s", code, errOut)
	}
}

// TestServeFromEnvironment: serve with no file, configured by TENANTMCP_*
// variables alone, as in a container; and the errors when there is no
// configuration at all or not enough of it.
func TestServeFromEnvironment(t *testing.T) {
	idp := idptest.New(t)
	addr, data := freeAddr(t), t.TempDir()
	env := []string{
		"TENANTMCP_AUTH_PROVIDER=auth0",
		"TENANTMCP_AUTH_DOMAIN=acme.eu.auth0.com",
		// The fake IdP stands in for acme.eu.auth0.com.
		"TENANTMCP_AUTH_ISSUER=" + idp.Issuer(),
		"TENANTMCP_AUTH_JWKS_URL=" + idp.JWKSURL(),
		"TENANTMCP_SERVER_LISTEN=" + addr,
		"TENANTMCP_SERVER_DATA_DIR=" + data,
	}
	// tenant create still takes a file: an empty one, with the same
	// variables, names the same deployment.
	empty := writeConfig(t, "")
	if code, _, errOut := run(t, env, "tenant", "add", "--config", empty, "--external-id", "org_acme", "--name", "Acme"); code != 0 {
		t.Fatalf("tenant create: %s", errOut)
	}
	srv := start(t, env, "serving MCP", "serve")
	if !strings.Contains(srv.err.String(), `"config":"environment"`) { // JSON, serve's default format
		t.Errorf("serve does not log where its configuration came from:\n%s", srv.err)
	}
	url := "http://" + addr + "/mcp"
	acme := connect(t, url, idp.Sign(idp.Auth0Claims(url, "org_acme", "Acme", "auth0|alice")))
	if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "k", "content": "from env"}); isErr {
		t.Fatalf("put: %s", got)
	}
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	srv.stop(t)

	// Nothing at all: say the three ways to configure.
	code, _, errOut := run(t, []string{"TENANTMCP_APP_PASSWORD=x"}, "serve")
	if code != 2 {
		t.Fatalf("serve with no configuration: exit %d, want 2\n%s", code, errOut)
	}
	for _, want := range []string{"--config", "TENANTMCP_CONFIG", "TENANTMCP_AUTH_DOMAIN", "init --oauth", "dev"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("serve with no configuration does not mention %s:\n%s", want, errOut)
		}
	}
	// Not enough: every problem, and that the variables are the source.
	code, _, errOut = run(t, []string{"TENANTMCP_AUTH_PROVIDER=auth0"}, "serve")
	if code != 1 || !strings.Contains(errOut, "TENANTMCP_* variables alone") || !strings.Contains(errOut, "auth.domain: required") || !strings.Contains(errOut, "TENANTMCP_AUTH_DOMAIN") {
		t.Fatalf("serve with too little environment: exit %d\n%s", code, errOut)
	}
	// TENANTMCP_CONFIG still names a file.
	if code, _, errOut := run(t, []string{"TENANTMCP_CONFIG=" + filepath.Join(t.TempDir(), "missing.toml")}, "serve"); code != 1 || !strings.Contains(errOut, "missing.toml") {
		t.Fatalf("TENANTMCP_CONFIG: exit %d %s", code, errOut)
	}
}

// TestServeAddr: --addr overrides server.listen, and the URLs derived
// from it (the protected resource, the token audience) follow.
func TestServeAddr(t *testing.T) {
	idp := idptest.New(t)
	fileAddr, addr := freeAddr(t), freeAddr(t)
	path := writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
[auth]
provider = "generic"
issuer = %q
jwks_url = %q
[auth.multi_tenant]
enabled = false
`, fileAddr, t.TempDir(), idp.Issuer(), idp.JWKSURL()))
	start(t, nil, "serving MCP", "serve", "--config", path, "--addr", addr)
	url := "http://" + addr + "/mcp"
	if code, body := get(t, "http://"+addr+"/.well-known/oauth-protected-resource"); code != 200 || !strings.Contains(body, `"resource":"`+url+`"`) {
		t.Fatalf("metadata at --addr: %d %s", code, body)
	}
	c := connect(t, url, idp.Sign(idp.GenericClaims(url, "alice", nil, nil)))
	if got, isErr := callTool(t, c, "list_documents", nil); isErr {
		t.Fatalf("list at --addr: %s", got)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + fileAddr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("server.listen %s still served although --addr %s was given", fileAddr, addr)
	}
	if code, _, errOut := run(t, nil, "serve", "--config", path, "--addr", "8080"); code != 2 || !strings.Contains(errOut, "--addr") {
		t.Fatalf("--addr 8080: exit %d %s", code, errOut)
	}
}

// TestReadyzJWKSDown: with the identity provider's JWK Set unreachable at
// start, serve starts (the IdP may be briefly down) but /readyz answers
// 503 until the keys are loaded, which happens without any token arriving.
func TestReadyzJWKSDown(t *testing.T) {
	idp := idptest.New(t)
	idp.SetUnavailable(true)
	addr := freeAddr(t)
	path := writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
[auth]
provider = "generic"
issuer = %q
jwks_url = %q
[auth.multi_tenant]
tenant_claim = "org_id"
`, addr, t.TempDir(), idp.Issuer(), idp.JWKSURL()))
	srv := start(t, nil, "serving MCP", "serve", "--config", path)
	base := "http://" + addr
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	code, body := get(t, base+"/readyz")
	if code != 503 || body != "not ready: identity provider signing keys not loaded\n" {
		t.Fatalf("/readyz with the JWK Set down: %d %q", code, body)
	}
	if !strings.Contains(srv.err.String(), "readiness check fails: identity provider signing keys not loaded") {
		t.Errorf("the cause is not logged:\n%s", srv.err)
	}
	idp.SetUnavailable(false)
	if body := waitFor(t, base+"/readyz", 200); body != "ready\n" {
		t.Fatalf("/readyz once the keys load: %q", body)
	}
}
