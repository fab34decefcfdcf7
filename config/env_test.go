package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	file := `[server]
listen = "127.0.0.1:7000"
[auth]
domain = "file.auth0.com"
`
	env := []string{
		"PATH=/usr/bin",
		"TENANTMCP_SERVER_LISTEN=127.0.0.1:9000", // overrides the file
		"TENANTMCP_SERVER_STATEFUL_SESSIONS=true",
		"TENANTMCP_SERVER_SHUTDOWN_TIMEOUT=2m",
		"TENANTMCP_SERVER_MAX_BODY_BYTES=4096",
		"TENANTMCP_AUTH_DOMAIN=env.auth0.com",
		"TENANTMCP_AUTH_ALGORITHMS= RS256 , ,PS256,",
		"TENANTMCP_AUTH_SCOPES_SUPPORTED=",
		"TENANTMCP_AUTH_TOKEN_CACHE_SIZE=5",
		"TENANTMCP_AUTH_MULTI_TENANT_TENANT_CLAIM=org.id",
		"TENANTMCP_AUTH_MULTI_TENANT_ENABLED=1",
		"TENANTMCP_DATABASE_DSN=postgres://app:pw@db/app",
		"TENANTMCP_LOG_LEVEL=debug",
		"TENANTMCP_LOG_LEVEL=warn", // later wins, as in a shell
		"TENANTMCP_TEST_POSTGRES=whatever",
		"TENANTMCP_CONFIG=/etc/tenantmcp/deploy.toml",
		"NOT_AN_ASSIGNMENT",
	}
	cfg, err := Parse([]byte(file), env)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{cfg.Server.Listen, cfg.Server.StatefulSessions, cfg.Server.ShutdownTimeout, cfg.Server.MaxBodyBytes,
		cfg.Auth.Domain, cfg.Auth.Algorithms, cfg.Auth.ScopesSupported, cfg.Auth.TokenCacheSize,
		cfg.Auth.MultiTenant.TenantClaim, cfg.Auth.MultiTenant.Enabled, cfg.Database.DSN, cfg.EffectiveIsolation(), cfg.Log.Level}
	want := []any{"127.0.0.1:9000", true, 2 * time.Minute, int64(4096),
		"env.auth0.com", []string{"RS256", "PS256"}, []string{}, 5,
		"org.id", true, "postgres://app:pw@db/app", IsolationRLS, "warn"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestEveryKeyHasAnEnvOverride sets each key through its variable.
func TestEveryKeyHasAnEnvOverride(t *testing.T) {
	t.Parallel()
	for i := range keyTable {
		k := &keyTable[i]
		c := Default()
		var value string
		var check func() bool
		switch p := k.field(c).(type) {
		case *string:
			value, check = "x-"+k.path, func() bool { return *p == "x-"+k.path }
		case *bool:
			orig := *p
			value, check = map[bool]string{true: "false", false: "true"}[orig], func() bool { return *p != orig }
		case *int:
			value, check = "4242", func() bool { return *p == 4242 }
		case *int64:
			value, check = "4242", func() bool { return *p == 4242 }
		case *float64:
			value, check = "0.25", func() bool { return *p == 0.25 }
		case *time.Duration:
			value, check = "42s", func() bool { return *p == 42*time.Second }
		case *[]string:
			value, check = "a,b", func() bool { return cmp.Equal(*p, []string{"a", "b"}) }
		}
		l := &loader{cfg: c, sources: map[string]source{}, bad: map[string]bool{}}
		l.applyEnv([]string{k.env() + "=" + value})
		if len(l.errs) != 0 || !check() {
			t.Errorf("%s=%s did not set %s (errors: %v)", k.env(), value, k.path, l.errs)
		}
		if l.sources[k.path].env != k.env() {
			t.Errorf("%s: source not recorded", k.path)
		}
	}
}

func TestEnvBadValues(t *testing.T) {
	t.Parallel()
	env := []string{
		"TENANTMCP_AUTH_DOMAIN=example.auth0.com",
		"TENANTMCP_SERVER_STATEFUL_SESSIONS=maybe",
		"TENANTMCP_SERVER_MAX_BODY_BYTES=1MB",
		"TENANTMCP_AUTH_TOKEN_CACHE_SIZE=99999999999",
		"TENANTMCP_AUTH_LEEWAY=30",
		"TENANTMCP_AUTH_DOMIAN=typo.auth0.com",
		"TENANTMCP_REGISTRY_CACHETTL=1s",
		"TENANTMCP_SOMETHING_ELSE_ENTIRELY=1",
		"TENANTMCP_LOG_LEVEL=verbose",
		"TENANTMCP_DATABASE_DSN=mysql://root:hunter2@db/app",
		"TENANTMCP_SERVER_SHUTDOWN_TIMEOUT=",
	}
	_, err := Parse(nil, env)
	es := errorsOf(t, err)
	want := []string{
		`server.stateful_sessions: "maybe" is not a boolean: use true or false (from TENANTMCP_SERVER_STATEFUL_SESSIONS)`,
		`server.max_body_bytes: "1MB" is not an integer (from TENANTMCP_SERVER_MAX_BODY_BYTES)`,
		`auth.token_cache_size: "99999999999" is not an integer (from TENANTMCP_AUTH_TOKEN_CACHE_SIZE)`,
		`auth.leeway: "30" is not a duration: use a number with a unit, such as "30s", "5m" or "1h" (from TENANTMCP_AUTH_LEEWAY)`,
		`TENANTMCP_AUTH_DOMIAN: unknown environment variable; did you mean TENANTMCP_AUTH_DOMAIN?`,
		`TENANTMCP_REGISTRY_CACHETTL: unknown environment variable; did you mean TENANTMCP_REGISTRY_CACHE_TTL?`,
		`TENANTMCP_SOMETHING_ELSE_ENTIRELY: unknown environment variable (no configuration key has this name)`,
		`server.shutdown_timeout: "" is not a duration: use a number with a unit, such as "30s", "5m" or "1h" (from TENANTMCP_SERVER_SHUTDOWN_TIMEOUT)`,
		// validation of env-set values names the variable too
		`database.dsn: must be a postgres:// or postgresql:// URL (leave it empty for embedded SQLite) (from TENANTMCP_DATABASE_DSN)`,
		`log.level: "verbose" is not one of debug, info, warn, error (from TENANTMCP_LOG_LEVEL)`,
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Error("DSN password echoed")
	}
}

func TestEnvSecretBadValueNotEchoed(t *testing.T) {
	t.Parallel()
	// A secret key's raw value is never shown, even when it fails to parse.
	_, err := Parse([]byte("[auth]\ndomain = \"example.auth0.com\"\n[ratelimit]\nbackend = \"redis\"\n"),
		[]string{"TENANTMCP_RATELIMIT_REDIS_URL=cache:6379?password=hunter2"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "ratelimit.redis_url: must be a redis://") {
		t.Errorf("got %v", err)
	}
}

func TestEnvOverridesBadFileValue(t *testing.T) {
	t.Parallel()
	// A badly typed file value is reported even when the environment
	// overrides it: the file itself is wrong and would break without it.
	cfg, err := Parse([]byte("[server]\nmax_body_bytes = \"1MB\"\n[auth]\ndomain = \"example.auth0.com\"\n"),
		[]string{"TENANTMCP_SERVER_MAX_BODY_BYTES=2048"})
	if err == nil {
		t.Fatalf("the file's type error must still be reported")
	}
	if cfg != nil {
		t.Fatal("config with errors")
	}
	es := errorsOf(t, err)
	if got := keysOf(es); !cmp.Equal(got, []string{"server.max_body_bytes"}) || es[0].Line != 2 {
		t.Errorf("got %v", err)
	}
}

// TestEnvNonKeysIgnored: the variables the CLI reads that are not keys
// (the config file path, the app role's password for db setup and dev,
// test-suite settings) are not refused as unknown keys.
func TestEnvNonKeysIgnored(t *testing.T) {
	env := []string{EnvConfigFile + "=deploy.toml", EnvAppPassword + "=s3cret", "TENANTMCP_TEST_POSTGRES=postgres://x"}
	if _, err := Parse([]byte(base), env); err != nil {
		t.Fatalf("Parse with %v: %v", env, err)
	}
	if _, err := Parse([]byte(base), []string{"TENANTMCP_APP_PASSWD=x"}); err == nil {
		t.Fatal("a misspelt variable is not reported")
	}
}
