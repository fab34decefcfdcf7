package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	src := `listen = "127.0.0.1:8080"

[sever]
listen = "127.0.0.1:8080"

[server]
listen = "127.0.0.1:8080"
Listen = "x"
lisen = "y"

[auth]
domain = "example.auth0.com"
domian = "typo"
zzzzzzzz = 1
"multi_tenant.enabled" = true

[auth.multi_tenant]
isolaton = "prefix"

[auth.multitenant]
enabled = true

[auth.multi_tenant.extra]
x = 1

[logging]
level = "debug"
`
	_, err := Parse([]byte(src), nil)
	es := errorsOf(t, err)
	type row struct {
		Key, Msg string
		Line     int
	}
	var got []row
	for _, e := range es {
		got = append(got, row{e.Key, e.Msg, e.Line})
	}
	want := []row{
		{"listen", "unknown key or section; did you mean server.listen?", 1},
		{"sever", "unknown key or section; did you mean server?", 3},
		{"server.Listen", "unknown key; did you mean server.listen?", 8},
		{"server.lisen", "unknown key; did you mean server.listen?", 9},
		{"auth.domian", "unknown key; did you mean auth.domain?", 13},
		{"auth.zzzzzzzz", "unknown key (see docs/configuration.md for the list of keys)", 14},
		{`auth."multi_tenant.enabled"`, "unknown key; did you mean auth.multi_tenant.enabled?", 15},
		{"auth.multi_tenant.isolaton", "unknown key; did you mean auth.multi_tenant.isolation?", 18},
		{"auth.multitenant", "unknown key; did you mean auth.multi_tenant?", 20},
		{"auth.multi_tenant.extra", "unknown key (see docs/configuration.md for the list of keys)", 23},
		{"logging", "unknown key or section; did you mean log?", 26},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unknown keys (-want +got):\n%s\nfull:\n%v", diff, err)
	}
}

func TestBadTypesInFile(t *testing.T) {
	t.Parallel()
	src := `[server]
listen = 8080
stateful_sessions = "yes"
max_body_bytes = 1.5
shutdown_timeout = 15

[auth]
domain = "example.auth0.com"
algorithms = "RS256"
scopes_supported = ["read", 2]
token_cache_size = 99999999999

[database]
dsn = 5

[log]
level = { value = "info" }
`
	_, err := Parse([]byte(src), nil)
	es := errorsOf(t, err)
	want := []string{
		`server.listen: must be a string, not an integer (8080) (line 2)`,
		`server.stateful_sessions: must be true or false, not a string ("yes") (line 3)`,
		`server.max_body_bytes: must be an integer, not a float (1.5) (line 4)`,
		`server.shutdown_timeout: must be a duration string such as "30s", "5m" or "1h", not an integer (15) (line 5)`,
		`auth.algorithms: must be an array of strings such as ["a", "b"], not a string ("RS256") (line 9)`,
		`auth.scopes_supported: element 2 must be a string, not an integer (line 10)`,
		`auth.token_cache_size: 99999999999 is out of range (line 11)`,
		`database.dsn: must be a string, not an integer (line 14)`,
		`log.level: must be a string, not a table (line 17)`,
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSectionsMustBeTables(t *testing.T) {
	t.Parallel()
	src := `server = "127.0.0.1:8080"
[auth]
domain = "example.auth0.com"
multi_tenant = true

[[log]]
level = "info"
[[log]]
level = "debug"
`
	_, err := Parse([]byte(src), nil)
	es := errorsOf(t, err)
	want := []string{
		`server: must be a table ([server]), not a string (line 1)`,
		`auth.multi_tenant: must be a table ([auth.multi_tenant]), not a boolean (line 4)`,
		// reported once; toml keeps the position of the last [[log]]
		`log: must be a table ([log]), not an array of tables (line 8)`,
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestInlineAndDottedTables(t *testing.T) {
	t.Parallel()
	src := `server = { listen = "127.0.0.1:9000", max_body_bytes = 2048 }
auth.domain = "example.auth0.com"
auth.multi_tenant.isolation = "prefix"
log = { level = "debug", colour = true }
`
	_, err := Parse([]byte(src), nil)
	es := errorsOf(t, err)
	if got := keysOf(es); !cmp.Equal(got, []string{"log.colour"}) || es[0].Line != 4 {
		t.Fatalf("want only log.colour at line 4, got %v", err)
	}
	cfg, err := Parse([]byte(strings.Replace(src, ", colour = true", "", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:9000" || cfg.Server.MaxBodyBytes != 2048 || cfg.Auth.Domain != "example.auth0.com" ||
		cfg.EffectiveIsolation() != IsolationPrefix || cfg.Log.Level != "debug" {
		t.Errorf("values not loaded: %+v", cfg)
	}
}

func TestSyntaxError(t *testing.T) {
	t.Parallel()
	src := "[server]\nlisten = \"127.0.0.1:8080\"\nshutdown_timeout = 15s\n"
	_, err := Parse([]byte(src), []string{"TENANTMCP_NOPE=1"})
	es := errorsOf(t, err)
	if len(es) != 2 {
		t.Fatalf("want the syntax error and the env error, got:\n%v", err)
	}
	if es[0].Key != "" || es[0].Line != 3 || !strings.HasPrefix(es[0].Msg, "TOML syntax error: ") {
		t.Errorf("syntax error = %+v", es[0])
	}
	if es[1].Key != "TENANTMCP_NOPE" {
		t.Errorf("env error = %+v", es[1])
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "deploy.toml")
	if err := os.WriteFile(path, []byte("[auth]\ndomain = \"example.auth0.com\"\nprovider = \"okta\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	es := errorsOf(t, err)
	if len(es) != 1 || es[0].File != path || es[0].Line != 3 {
		t.Fatalf("got %+v", err)
	}
	if want := `auth.provider: "okta" is not one of auth0, cognito, entra, generic (` + path + ` line 3)`; es[0].Error() != want {
		t.Errorf("Error() = %q, want %q", es[0].Error(), want)
	}

	if _, err := Load(filepath.Join(dir, "missing.toml"), nil); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}

	// path "" = defaults + environment.
	cfg, err := Load("", []string{"TENANTMCP_AUTH_DOMAIN=example.auth0.com", "HOME=/root"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Domain != "example.auth0.com" || cfg.Server.Listen != "127.0.0.1:8080" {
		t.Errorf("got %+v", cfg.Server)
	}
	if _, err := Load("", nil); err == nil {
		t.Error("defaults alone have no domain and must not validate")
	}
}

func TestDerivedDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("[auth]\ndomain = \"example.auth0.com\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"public_url":    cfg.Server.PublicURL,
		"resource":      cfg.ResourceURL(),
		"audience":      cfg.Auth.Audience,
		"tenant_claim":  cfg.Auth.MultiTenant.TenantClaim,
		"isolation":     cfg.Auth.MultiTenant.Isolation,
		"rate":          cfg.Auth.MultiTenant.DefaultRateLimit,
		"burst":         cfg.Auth.MultiTenant.RateLimitBurst, // 0: the limiter's default
		"issuer":        cfg.EffectiveIssuer(),
		"jwks":          cfg.EffectiveJWKSURL(),
		"as":            cfg.EffectiveAuthorizationServers(),
		"user":          cfg.EffectiveUserClaim(),
		"scopes":        cfg.EffectiveScopeClaims(),
		"aud_claim":     cfg.EffectiveAudienceClaim(),
		"tenant_name":   cfg.EffectiveTenantNameClaim(),
		"shutdown":      cfg.Server.ShutdownTimeout,
		"uses_postgres": cfg.UsesPostgres(),
	}
	want := map[string]any{
		"public_url":    "http://127.0.0.1:8080",
		"resource":      "http://127.0.0.1:8080/mcp",
		"audience":      "http://127.0.0.1:8080/mcp",
		"tenant_claim":  "org_id",
		"isolation":     IsolationDatabase,
		"rate":          100,
		"burst":         0,
		"issuer":        "https://example.auth0.com/",
		"jwks":          "https://example.auth0.com/.well-known/jwks.json",
		"as":            []string{"https://example.auth0.com/"},
		"user":          "sub",
		"scopes":        []string{"permissions", "scope"},
		"aud_claim":     "aud",
		"tenant_name":   "org_name",
		"shutdown":      15 * time.Second,
		"uses_postgres": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("derived config does not validate: %v", err)
	}
}

func TestEffectiveByProvider(t *testing.T) {
	t.Parallel()
	type eff struct {
		Issuer, JWKS, Audience, AudClaim, Tenant, TenantName, User string
		Scopes, AS                                                 []string
	}
	tests := []struct {
		name string
		edit func(*Config)
		want eff
	}{
		{"auth0", func(c *Config) { c.Auth.Domain = "acme.eu.auth0.com" }, eff{
			Issuer: "https://acme.eu.auth0.com/", JWKS: "https://acme.eu.auth0.com/.well-known/jwks.json",
			Audience: "https://mcp.example.com/mcp", AudClaim: "aud", Tenant: "org_id", TenantName: "org_name", User: "sub",
			Scopes: []string{"permissions", "scope"}, AS: []string{"https://acme.eu.auth0.com/"}}},
		{"auth0 domain written as a URL", func(c *Config) { c.Auth.Domain = " https://acme.eu.auth0.com/ " }, eff{
			Issuer: "https://acme.eu.auth0.com/", JWKS: "https://acme.eu.auth0.com/.well-known/jwks.json",
			Audience: "https://mcp.example.com/mcp", AudClaim: "aud", Tenant: "org_id", TenantName: "org_name", User: "sub",
			Scopes: []string{"permissions", "scope"}, AS: []string{"https://acme.eu.auth0.com/"}}},
		{"cognito", func(c *Config) {
			c.Auth.Provider, c.Auth.Domain, c.Auth.Audience = "cognito", "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC", "client123"
		}, eff{
			Issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC", JWKS: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json",
			Audience: "client123", AudClaim: "client_id", Tenant: "custom:tenant_id", TenantName: "custom:tenant_name", User: "sub",
			Scopes: []string{"scope"}, AS: []string{"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"}}},
		{"entra single directory", func(c *Config) {
			c.Auth.Provider, c.Auth.Domain = "entra", "72f988bf-86f1-41af-91ab-2d7cd011db47"
		}, eff{
			Issuer: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", JWKS: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys",
			Audience: "https://mcp.example.com/mcp", AudClaim: "aud", Tenant: "tid", TenantName: "", User: "oid",
			Scopes: []string{"roles", "scp"}, AS: []string{"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"}}},
		{"entra organizations", func(c *Config) { c.Auth.Provider, c.Auth.Domain = "entra", "organizations" }, eff{
			Issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", JWKS: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
			Audience: "https://mcp.example.com/mcp", AudClaim: "aud", Tenant: "tid", TenantName: "", User: "oid",
			Scopes: []string{"roles", "scp"}, AS: []string{"https://login.microsoftonline.com/organizations/v2.0"}}},
		{"generic with domain", func(c *Config) {
			c.Auth.Provider, c.Auth.Domain, c.Auth.MultiTenant.TenantClaim = "generic", "idp.example.com", "organization.id"
		}, eff{
			Issuer: "https://idp.example.com/", JWKS: "https://idp.example.com/.well-known/jwks.json",
			Audience: "https://mcp.example.com/mcp", AudClaim: "aud", Tenant: "organization.id", User: "sub",
			Scopes: []string{"scope"}, AS: []string{"https://idp.example.com/"}}},
		{"overrides win", func(c *Config) {
			a := &c.Auth
			a.Provider, a.Domain, a.Issuer, a.JWKSURL, a.Audience = "entra", "organizations", "https://sts.windows.net/x/", "https://keys.example.com/jwks", "api://mcp"
			a.UserClaim, a.TenantNameClaim, a.ScopeClaims, a.AuthorizationServers = "upn", "tenant_display", []string{"scp", "roles"}, []string{"https://as.example.com"}
			a.MultiTenant.TenantClaim = "tenant.id"
		}, eff{
			Issuer: "https://sts.windows.net/x/", JWKS: "https://keys.example.com/jwks",
			Audience: "api://mcp", AudClaim: "aud", Tenant: "tenant.id", TenantName: "tenant_display", User: "upn",
			Scopes: []string{"scp", "roles"}, AS: []string{"https://as.example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.Server.PublicURL = "https://mcp.example.com/"
			tt.edit(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("invalid: %v", err)
			}
			got := eff{c.EffectiveIssuer(), c.EffectiveJWKSURL(), c.EffectiveAudience(), c.EffectiveAudienceClaim(),
				c.EffectiveTenantClaim(), c.EffectiveTenantNameClaim(), c.EffectiveUserClaim(), c.EffectiveScopeClaims(), c.EffectiveAuthorizationServers()}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEffectiveRequiredClaims(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		provider string
		entries  []string
		want     map[string]string
	}{
		{"auth0 none", ProviderAuth0, nil, nil},
		{"cognito preset", ProviderCognito, nil, map[string]string{"token_use": "access"}},
		{"entra pinned", ProviderEntra, []string{"idtyp=user", "ver=2.0"}, map[string]string{"idtyp": "user", "ver": "2.0"}},
		{"value with =", ProviderGeneric, []string{"x=a=b"}, map[string]string{"x": "a=b"}},
		{"preset wins, bad entries skipped", ProviderCognito, []string{"token_use=id", "bad", "idtyp=user"},
			map[string]string{"token_use": "access", "idtyp": "user"}},
	}
	for _, tt := range tests {
		c := Default()
		c.Auth.Provider = tt.provider
		c.Auth.RequiredClaims = tt.entries
		if diff := cmp.Diff(tt.want, c.EffectiveRequiredClaims()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	// The preset's map is not shared with callers.
	c := Default()
	c.Auth.Provider = ProviderCognito
	c.EffectiveRequiredClaims()["token_use"] = "id"
	if got := c.EffectiveRequiredClaims()["token_use"]; got != "access" {
		t.Errorf("changing the returned map changed the preset: token_use = %q", got)
	}
}

func TestEffectiveIsolation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dsn, isolation string
		wantIso        string
	}{
		{"", "", IsolationDatabase},
		{"postgres://h/db", "", IsolationRLS},
		{"postgres://h/db", IsolationSchema, IsolationSchema},
		{"", IsolationPrefix, IsolationPrefix},
	}
	for _, tt := range tests {
		c := Default()
		c.Database.DSN, c.Auth.MultiTenant.Isolation = tt.dsn, tt.isolation
		if got := c.EffectiveIsolation(); got != tt.wantIso {
			t.Errorf("%+v: isolation %q, want %q", tt, got, tt.wantIso)
		}
	}
}

// TestRateLimitDefaults: the burst is left to the rate limiter (0 = one
// minute's worth of the tenant's rate) rather than computed here, and a
// server without auth has no rate limit unless one is configured.
func TestRateLimitDefaults(t *testing.T) {
	t.Parallel()
	const authOn = "[auth]\ndomain = \"example.auth0.com\"\n"
	const authOff = "[auth]\nenabled = false\n"
	tests := []struct {
		name      string
		file      string
		env       []string
		wantRate  int
		wantBurst int
	}{
		{"auth on: 100/min, limiter's burst", authOn, nil, 100, 0},
		{"auth on, burst set", authOn + "[auth.multi_tenant]\nrate_limit_burst = 7\n", nil, 100, 7},
		{"auth on, limit off", authOn + "[auth.multi_tenant]\ndefault_rate_limit = 0\n", nil, 0, 0},
		{"auth off: no limit", authOff, nil, 0, 0},
		{"auth off, rate set", authOff + "[auth.multi_tenant]\ndefault_rate_limit = 30\n", nil, 30, 0},
		{"auth off, rate set to 100", authOff + "[auth.multi_tenant]\ndefault_rate_limit = 100\n", nil, 100, 0},
		{"auth off, burst set: default rate", authOff + "[auth.multi_tenant]\nrate_limit_burst = 5\n", nil, 100, 5},
		{"auth off, rate from environment", authOff, []string{"TENANTMCP_AUTH_MULTI_TENANT_DEFAULT_RATE_LIMIT=60"}, 60, 0},
		{"auth off from environment: no limit", authOn, []string{"TENANTMCP_AUTH_ENABLED=false"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse([]byte(tt.file), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			mt := cfg.Auth.MultiTenant
			if mt.DefaultRateLimit != tt.wantRate || mt.RateLimitBurst != tt.wantBurst {
				t.Fatalf("default_rate_limit %d, rate_limit_burst %d; want %d, %d", mt.DefaultRateLimit, mt.RateLimitBurst, tt.wantRate, tt.wantBurst)
			}
		})
	}
}

func TestPublicURLPath(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("[server]\nlisten = \"0.0.0.0:8080\"\npublic_url = \"https://example.com/tools/\"\n[auth]\ndomain = \"example.auth0.com\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.ResourceURL(), "https://example.com/tools/mcp"; got != want {
		t.Errorf("ResourceURL = %q, want %q", got, want)
	}
	if got, want := cfg.Auth.Audience, "https://example.com/tools/mcp"; got != want {
		t.Errorf("audience = %q, want %q", got, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	src := `[server]
listen = "0.0.0.0:9090"
public_url = "https://mcp.example.com"
stateful_sessions = true
shutdown_timeout = "1m30s"
[auth]
provider = "entra"
domain = "organizations"
algorithms = ["RS256", "PS512"]
scope_claims = ["roles", "scp"]
leeway = "0s"
scopes_supported = ["tools:read", "quote\"d"]
[auth.multi_tenant]
isolation = "schema_per_tenant"
rate_limit_burst = 3
[database]
dsn = "postgres://app:s3cret@db:5432/app"
max_conns = 8
[ratelimit]
backend = "redis"
redis_url = "redis://cache:6379/1"
[storage]
blob = "s3"
s3_bucket = "tenant-blobs"
[tracing]
enabled = true
endpoint = "http://127.0.0.1:4318"
sample_ratio = 0.25
headers = ["Authorization=Bearer s3cret"]
[log]
format = "json"
`
	cfg, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(cfg.Encode(false), nil)
	if err != nil {
		t.Fatalf("Encode output does not load: %v\n%s", err, cfg.Encode(false))
	}
	if diff := cmp.Diff(cfg, again); diff != "" {
		t.Errorf("round trip (-first +second):\n%s", diff)
	}
	red := string(cfg.Encode(true))
	if strings.Contains(red, "s3cret") || !strings.Contains(red, `dsn = "postgres://app:REDACTED@db:5432/app"`) ||
		!strings.Contains(red, `headers = ["Authorization=REDACTED"]`) || !strings.Contains(red, "sample_ratio = 0.25\n") {
		t.Errorf("redacted output:\n%s", red)
	}
	if got := redactURL("postgres://%zz:pw@h"); got != "REDACTED" {
		t.Errorf("unparsable secret = %q", got)
	}
}

func TestKeysTable(t *testing.T) {
	t.Parallel()
	keys := Keys()
	if len(keys) != len(keyTable) {
		t.Fatal("length")
	}
	seenEnv := map[string]bool{}
	for _, k := range keys {
		if want := "TENANTMCP_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_")); k.Env != want {
			t.Errorf("%s: env %s, want %s", k.Name, k.Env, want)
		}
		if seenEnv[k.Env] {
			t.Errorf("duplicate env %s", k.Env)
		}
		seenEnv[k.Env] = true
		if k.Doc == "" || k.Type == "" || k.Default == "" {
			t.Errorf("%s: incomplete %+v", k.Name, k)
		}
		if !sections[keyByPath[k.Name].section()] {
			t.Errorf("%s: section not documented", k.Name)
		}
	}
	// Every key of the brief's list, with its default.
	want := map[string]string{
		"server.listen": `"127.0.0.1:8080"`, "server.public_url": `""`, "server.data_dir": `"./tenantmcp-data"`,
		"server.stateful_sessions": "false", "server.shutdown_timeout": `"15s"`, "server.max_body_bytes": "1048576",
		"server.read_header_timeout": `"10s"`, "server.read_timeout": `"30s"`, "server.write_timeout": `"30s"`,
		"server.idle_timeout": `"2m"`, "server.max_body_reads_per_tenant": "32",
		"server.max_header_bytes": "65536", "server.max_json_depth": "64", "server.max_argument_bytes": "262144",
		"server.max_concurrent_admin_requests": "16",
		"server.max_concurrent_requests":       "512", "server.max_conns_per_client": "256",
		"server.allowed_origins": "[]", "server.metrics_listen": `""`,
		"auth.enabled": "true", "auth.provider": `"auth0"`, "auth.domain": `""`, "auth.issuer": `""`, "auth.audience": `""`,
		"auth.jwks_url": `""`, "auth.algorithms": `["RS256", "ES256"]`, "auth.leeway": `"30s"`, "auth.authorization_servers": "[]",
		"auth.scopes_supported": "[]", "auth.user_claim": `""`, "auth.tenant_name_claim": `""`, "auth.scope_claims": "[]",
		"auth.token_type": `""`, "auth.required_claims": "[]",
		"auth.token_cache_size": "10000", "auth.token_cache_ttl": `"1m"`, "auth.scope_hierarchy": "[]",
		"auth.multi_tenant.enabled": "true", "auth.multi_tenant.tenant_claim": `""`, "auth.multi_tenant.isolation": `""`,
		"auth.multi_tenant.default_rate_limit": "100", "auth.multi_tenant.rate_limit_burst": "0",
		"database.dsn": `""`, "database.max_conns": "0", "database.admin_dsn": `""`,
		"database.owner_role": `""`, "database.app_role": `""`,
		"database.acquire_timeout": `"1s"`, "database.statement_timeout": `"10s"`, "database.startup_wait": `"30s"`,
		"registry.cache_ttl": `"30s"`, "registry.negative_cache_ttl": `"5s"`, "registry.cache_size": "10000",
		"ratelimit.backend": `"memory"`, "ratelimit.redis_url": `""`, "ratelimit.on_redis_error": `"open"`,
		"ratelimit.per_user_rate_limit": "0", "ratelimit.max_concurrent_per_tenant": "64",
		"storage.blob": `"fs"`, "storage.s3_bucket": `""`, "storage.s3_endpoint": `""`, "storage.s3_region": `"us-east-1"`,
		"storage.s3_path_style": "false", "storage.redis_url": `""`,
		"log.level": `"info"`, "log.format": `""`, "server.metrics_top_tenants": "20", "server.history_tenants": "1000",
		"audit.enabled": "true", "audit.signing_key_file": `""`, "audit.retention": `"9600h"`, "audit.store_arguments": "false",
		"audit.log_tool": "false", "audit.log_tool_scope": `"audit:read"`, "audit.queue_size": "65536", "audit.batch_size": "256",
		"audit.flush_interval": `"100ms"`, "audit.max_wait": `"100ms"`, "audit.checkpoint_interval": `"1m"`, "audit.store_timeout": `"10s"`,
		"admin.enabled": "true", "admin.issuer": `""`, "admin.audience": `""`, "admin.jwks_url": `""`,
		"admin.scope": `"admin:global"`, "admin.impersonation_ttl": `"30m"`, "admin.max_impersonation_ttl": `"8h"`,
		"console.enabled": "false", "console.client_id": `""`, "console.client_secret": `""`, "console.redirect_url": `""`, "console.session_ttl": `"8h"`,
		"lifecycle.archives": `"fs"`, "lifecycle.archive_dir": `""`, "lifecycle.archive_s3_prefix": `"archives/"`,
		"lifecycle.retention": `"720h"`, "lifecycle.reconcile_interval": `"1m"`,
		"tracing.enabled": "false", "tracing.endpoint": `""`, "tracing.sample_ratio": "1.0", "tracing.service_name": `"tenantmcp"`,
		"tracing.headers": "[]",
	}
	got := map[string]string{}
	for _, k := range keys {
		got[k.Name] = k.Default
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys/defaults (-want +got):\n%s", diff)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		15 * time.Second: "15s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h",
		time.Hour + time.Second: "1h0m1s", 1500 * time.Millisecond: "1.5s", 0: "0s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("%v does not round trip: %v %v", d, back, err)
		}
	}
}
