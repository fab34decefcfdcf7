package config

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/auth"
)

// base is a minimal valid file; cases append to it.
const base = `
[auth]
domain = "example.auth0.com"
`

// chapterSnippet is the chapter's deploy.toml, verbatim.
const chapterSnippet = `# .pmcp/deploy.toml
[auth]
enabled = true
provider = "auth0"  # Or cognito, entra—any provider works
domain = "your-tenant.auth0.com"

[auth.multi_tenant]
enabled = true
# How to identify the tenant from the JWT
tenant_claim = "org_id"  # Auth0 Organizations
# Or: "tid" for Entra ID
# Or: "custom:tenant_id" for Cognito

# Tenant isolation strategy
isolation = "row_level_security"  # Or "schema_per_tenant", "prefix"

# Default rate limit per tenant (requests per minute)
default_rate_limit = 100
`

func errorsOf(t *testing.T, err error) Errors {
	t.Helper()
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, not config.Errors: %v", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	return es
}

func keysOf(es Errors) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

func TestChapterSnippet(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(chapterSnippet), nil)
	es := errorsOf(t, err)
	if len(es) != 1 {
		t.Fatalf("want exactly one error, got %d:\n%v", len(es), err)
	}
	const want = `auth.multi_tenant.isolation: "row_level_security" needs PostgreSQL: set database.dsn (or TENANTMCP_DATABASE_DSN) to a postgres:// URL`
	if got := es[0].Key + ": " + es[0].Msg; got != want {
		t.Errorf("error:\n got %s\nwant %s", got, want)
	}
	if es[0].Line != 15 {
		t.Errorf("line = %d, want 15 (the isolation line)", es[0].Line)
	}
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
	}

	// With a PostgreSQL DSN, the same snippet loads.
	cfg, err := Parse([]byte(chapterSnippet), []string{"TENANTMCP_DATABASE_DSN=postgres://app@db:5432/app"})
	if err != nil {
		t.Fatalf("with a DSN: %v", err)
	}
	if cfg.Auth.Provider != "auth0" || cfg.Auth.Domain != "your-tenant.auth0.com" || cfg.Auth.MultiTenant.TenantClaim != "org_id" ||
		cfg.EffectiveIsolation() != IsolationRLS || cfg.Auth.MultiTenant.DefaultRateLimit != 100 {
		t.Errorf("snippet values not loaded: %+v", cfg.Auth)
	}
}

func TestValidationRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		toml string   // appended after base unless noBase
		env  []string // environment
		// noBase starts from an empty file instead of base.
		noBase bool
		// want lists "key: message" (message may be a prefix) of every
		// expected error, in order; empty means valid.
		want []string
	}{
		{name: "base is valid"},
		{name: "provider unknown", toml: "provider = \"okta\"\n",
			want: []string{`auth.provider: "okta" is not one of auth0, cognito, entra, generic`}},
		{name: "provider empty when enabled", toml: "provider = \"\"\n",
			want: []string{`auth.provider: must be set to one of auth0, cognito, entra, generic`}},
		{name: "provider empty when disabled is fine", noBase: true, toml: "[auth]\nenabled = false\nprovider = \"\"\n"},
		{name: "provider checked even when disabled", noBase: true, toml: "[auth]\nenabled = false\nprovider = \"okta\"\n",
			want: []string{`auth.provider: "okta" is not one of`}},
		{name: "enabled needs domain or issuer", noBase: true, toml: "[auth]\nenabled = true\n",
			want: []string{`auth.domain: required when auth.enabled = true: set auth.domain (or auth.issuer)`}},
		{name: "issuer instead of domain", noBase: true, toml: "[auth]\nissuer = \"https://login.example.com/\"\n"},
		{name: "generic multi-tenant needs tenant_claim", noBase: true,
			toml: "[auth]\nprovider = \"generic\"\nissuer = \"https://idp.example.com\"\n",
			want: []string{`auth.multi_tenant.tenant_claim: required for provider "generic" with multi-tenancy`}},
		{name: "generic with tenant_claim", noBase: true,
			toml: "[auth]\nprovider = \"generic\"\nissuer = \"https://idp.example.com\"\n[auth.multi_tenant]\ntenant_claim = \"organization.id\"\n"},
		{name: "generic single-tenant needs no claim", noBase: true,
			toml: "[auth]\nprovider = \"generic\"\ndomain = \"idp.example.com\"\n[auth.multi_tenant]\nenabled = false\n"},
		{name: "scope hierarchy valid", toml: "scope_hierarchy = [\"admin > documents:write documents:read\"]\n"},
		{name: "scope hierarchy malformed", toml: "scope_hierarchy = [\"admin documents:write\", \"a b > c\"]\n",
			want: []string{`auth.scope_hierarchy: rule "admin documents:write": want`, `auth.scope_hierarchy: rule "a b > c": want`}},
		{name: "roles must differ and be plain names", toml: "[database]\nowner_role = \"Bad-Role\"\napp_role = \"Bad-Role\"\nadmin_dsn = \"mysql://x\"\n",
			want: []string{`database.admin_dsn: must be a postgres://`, `database.owner_role: "Bad-Role" is not a role name`, `database.app_role: "Bad-Role" is not a role name`, `database.app_role: must differ from database.owner_role`}},
		{name: "isolation unknown", toml: "[auth.multi_tenant]\nisolation = \"rls\"\n",
			want: []string{`auth.multi_tenant.isolation: "rls" is not one of row_level_security, schema_per_tenant, database_per_tenant, prefix`}},
		{name: "schema_per_tenant needs postgres", toml: "[auth.multi_tenant]\nisolation = \"schema_per_tenant\"\n",
			want: []string{`auth.multi_tenant.isolation: "schema_per_tenant" needs PostgreSQL: set database.dsn (or TENANTMCP_DATABASE_DSN) to a postgres:// URL`}},
		{name: "rls with postgres://", toml: "[auth.multi_tenant]\nisolation = \"row_level_security\"\n[database]\ndsn = \"postgres://u:p@h/db\"\n"},
		{name: "schema with postgresql://", toml: "[auth.multi_tenant]\nisolation = \"schema_per_tenant\"\n[database]\ndsn = \"postgresql://u:p@h/db\"\n"},
		{name: "database_per_tenant with a dsn is allowed", toml: "[auth.multi_tenant]\nisolation = \"database_per_tenant\"\n[database]\ndsn = \"postgres://h/db\"\n"},
		{name: "dsn must be postgres", toml: "[database]\ndsn = \"mysql://root:hunter2@h/db\"\n",
			want: []string{`database.dsn: must be a postgres:// or postgresql:// URL`}},
		{name: "rls with a non-postgres dsn", toml: "[auth.multi_tenant]\nisolation = \"row_level_security\"\n[database]\ndsn = \"sqlite://x\"\n",
			want: []string{`auth.multi_tenant.isolation: "row_level_security" needs PostgreSQL`, `database.dsn: must be a postgres://`}},
		{name: "prefix with fs", toml: "[auth.multi_tenant]\nisolation = \"prefix\"\n"},
		{name: "prefix with s3 needs a bucket", toml: "[auth.multi_tenant]\nisolation = \"prefix\"\n[storage]\nblob = \"s3\"\n",
			want: []string{`storage.s3_bucket: required when storage.blob = "s3"`}},
		{name: "s3 with bucket", toml: "[storage]\nblob = \"s3\"\ns3_bucket = \"b\"\ns3_endpoint = \"http://127.0.0.1:9000\"\ns3_path_style = true\n"},
		{name: "s3 needs a region", toml: "[storage]\nblob = \"s3\"\ns3_bucket = \"b\"\ns3_region = \"\"\n",
			want: []string{`storage.s3_region: required when storage.blob = "s3"`}},
		{name: "blob unknown", toml: "[storage]\nblob = \"gcs\"\n",
			want: []string{`storage.blob: "gcs" is not one of fs, s3`}},
		{name: "s3 endpoint not a URL", toml: "[storage]\ns3_endpoint = \"minio:9000\"\n",
			want: []string{`storage.s3_endpoint: "minio:9000" must be an absolute http:// or https:// URL`}},
		{name: "storage redis url bad", toml: "[storage]\nredis_url = \"localhost:6379\"\n",
			want: []string{`storage.redis_url: must be a redis://, rediss:// or unix:// URL`}},
		{name: "redis backend needs url", toml: "[ratelimit]\nbackend = \"redis\"\n",
			want: []string{`ratelimit.redis_url: required when ratelimit.backend = "redis"`}},
		{name: "redis backend with url", toml: "[ratelimit]\nbackend = \"redis\"\nredis_url = \"rediss://:pw@cache:6380/2\"\non_redis_error = \"closed\"\n"},
		{name: "redis url without host", toml: "[ratelimit]\nredis_url = \"redis:///0\"\n",
			want: []string{`ratelimit.redis_url: must name a host`}},
		{name: "backend unknown", toml: "[ratelimit]\nbackend = \"memcached\"\n",
			want: []string{`ratelimit.backend: "memcached" is not one of memory, redis`}},
		{name: "on_redis_error unknown", toml: "[ratelimit]\non_redis_error = \"ignore\"\n",
			want: []string{`ratelimit.on_redis_error: "ignore" is not one of open, closed`}},
		{name: "negative numbers", toml: "token_cache_size = -1\n[auth.multi_tenant]\ndefault_rate_limit = -5\nrate_limit_burst = -1\n" +
			"[database]\nmax_conns = -1\n[registry]\ncache_size = -1\n[ratelimit]\nper_user_rate_limit = -1\nmax_concurrent_per_tenant = -2\n",
			want: []string{
				`auth.token_cache_size: must be 0 or more, not -1`,
				`database.max_conns: must be 0 or more, not -1`,
				`registry.cache_size: must be more than 0, not -1`,
				`auth.multi_tenant.default_rate_limit: must be 0 or more, not -5`,
				`auth.multi_tenant.rate_limit_burst: must be 0 or more, not -1`,
				`ratelimit.per_user_rate_limit: must be 0 or more, not -1`,
				`ratelimit.max_concurrent_per_tenant: must be 0 or more, not -2`,
			}},
		{name: "zeros that mean off are fine", toml: "token_cache_size = 0\n[auth.multi_tenant]\ndefault_rate_limit = 0\n[database]\nacquire_timeout = \"0s\"\nstatement_timeout = \"0s\"\n"},
		{name: "database timeouts", toml: "[database]\nacquire_timeout = \"-1s\"\nstatement_timeout = \"500us\"\n",
			want: []string{
				`database.acquire_timeout: must be a positive duration such as "1s", or 0 for no limit, not "-1s"`,
				`database.statement_timeout: must be at least "1ms" (PostgreSQL counts milliseconds), or 0 for the server's setting, not "500µs"`,
			}},
		// The registry cannot run without its cache (status checks on every
		// request): 0 does not mean "off" there.
		{name: "audit limits", toml: "[audit]\nqueue_size = 0\nretention = \"0s\"\nlog_tool = true\nlog_tool_scope = \"\"\n",
			want: []string{
				`audit.retention: must be a positive duration such as "30s", not "0s"`,
				`audit.queue_size: must be more than 0, not 0`,
				`audit.log_tool_scope: must name a scope when audit.log_tool = true`,
			}},
		{name: "registry cache_size 0", toml: "[registry]\ncache_size = 0\n",
			want: []string{`registry.cache_size: must be more than 0, not 0`}},
		{name: "history_tenants must be positive", toml: "[server]\nhistory_tenants = 0\n",
			want: []string{`server.history_tenants: must be more than 0, not 0`}},
		{name: "max_body_bytes must be positive", toml: "[server]\nmax_body_bytes = 0\n",
			want: []string{`server.max_body_bytes: must be more than 0, not 0`}},
		{name: "slow-client bounds must be positive",
			toml: "[server]\nread_header_timeout = \"0s\"\nread_timeout = \"-1s\"\nwrite_timeout = \"0s\"\nidle_timeout = \"0s\"\nmax_body_reads_per_tenant = 0\n",
			want: []string{
				`server.read_header_timeout: must be a positive duration such as "30s", not "0s"`,
				`server.read_timeout: must be a positive duration such as "30s", not "-1s"`,
				`server.write_timeout: must be a positive duration such as "30s", not "0s"`,
				`server.idle_timeout: must be a positive duration such as "30s", not "0s"`,
				`server.max_body_reads_per_tenant: must be more than 0, not 0`,
			}},
		{name: "listen without port", toml: "[server]\nlisten = \"8080\"\n",
			want: []string{`server.listen: "8080" is not host:port`}},
		{name: "listen port out of range", toml: "[server]\nlisten = \"127.0.0.1:99999\"\n",
			want: []string{`server.listen: "127.0.0.1:99999" is not host:port`}},
		{name: "listen on every interface needs public_url", toml: "[server]\nlisten = \":8080\"\n",
			want: []string{`server.public_url: required when server.listen (":8080") binds every interface`}},
		{name: "listen on every interface with public_url", toml: "[server]\nlisten = \"0.0.0.0:8080\"\npublic_url = \"https://mcp.example.com\"\n"},
		{name: "public_url scheme", toml: "[server]\npublic_url = \"ftp://mcp.example.com\"\n",
			want: []string{`server.public_url: "ftp://mcp.example.com" must be an absolute http:// or https:// URL`}},
		{name: "public_url relative", toml: "[server]\npublic_url = \"/mcp\"\n",
			want: []string{`server.public_url: "/mcp" must be an absolute http:// or https:// URL`}},
		{name: "public_url query", toml: "[server]\npublic_url = \"https://mcp.example.com/?x=1\"\n",
			want: []string{`server.public_url: "https://mcp.example.com/?x=1" must not have a query string`}},
		{name: "public_url fragment", toml: "[server]\npublic_url = \"https://mcp.example.com/#top\"\n",
			want: []string{`server.public_url: "https://mcp.example.com/#top" must not have a fragment`}},
		{name: "public_url unspecified host", toml: "[server]\npublic_url = \"http://0.0.0.0:8080\"\n",
			want: []string{`server.public_url: "http://0.0.0.0:8080" is not an address clients can reach`}},
		{name: "data_dir empty", toml: "[server]\ndata_dir = \"\"\n",
			want: []string{`server.data_dir: must not be empty`}},
		{name: "durations must be positive", toml: "token_cache_ttl = \"-1s\"\n[server]\nshutdown_timeout = \"0s\"\n[registry]\ncache_ttl = \"0s\"\nnegative_cache_ttl = \"0s\"\n",
			want: []string{
				`server.shutdown_timeout: must be a positive duration such as "30s", not "0s"`,
				`auth.token_cache_ttl: must be a positive duration such as "30s", not "-1s"`,
				`registry.cache_ttl: must be a positive duration`,
				`registry.negative_cache_ttl: must be a positive duration`,
			}},
		{name: "leeway too large", toml: "leeway = \"10m\"\n",
			want: []string{`auth.leeway: must be between 0s and 5m, not "10m": a larger leeway accepts expired tokens`}},
		{name: "leeway zero is strict, allowed", toml: "leeway = \"0s\"\n"},
		{name: "algorithm none", toml: "algorithms = [\"none\"]\n",
			want: []string{`auth.algorithms: "none" is never accepted: it means an unsigned token that anyone can write`}},
		{name: "algorithm HS256", toml: "algorithms = [\"RS256\", \"HS256\"]\n",
			want: []string{`auth.algorithms: "HS256" is never accepted: HMAC keys are shared secrets`}},
		{name: "algorithm unknown", toml: "algorithms = [\"RS1\"]\n",
			want: []string{`auth.algorithms: "RS1" is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA`}},
		{name: "algorithms empty", toml: "algorithms = []\n",
			want: []string{`auth.algorithms: must name at least one of`}},
		{name: "all asymmetric algorithms", toml: "algorithms = [\"RS256\",\"RS384\",\"RS512\",\"ES256\",\"ES384\",\"ES512\",\"PS256\",\"PS384\",\"PS512\"]\n"},
		{name: "log level", toml: "[log]\nlevel = \"verbose\"\nformat = \"xml\"\n",
			want: []string{`log.level: "verbose" is not one of debug, info, warn, error`, `log.format: "xml" is not one of text, json`}},
		{name: "auth disabled on loopback", noBase: true, toml: "[auth]\nenabled = false\n"},
		{name: "auth disabled on ::1", noBase: true, toml: "[server]\nlisten = \"[::1]:9000\"\n[auth]\nenabled = false\n"},
		{name: "auth disabled on localhost", noBase: true, toml: "[server]\nlisten = \"localhost:9000\"\n[auth]\nenabled = false\n"},
		{name: "auth disabled on every interface", noBase: true, toml: "[server]\nlisten = \"0.0.0.0:8080\"\n[auth]\nenabled = false\n",
			want: []string{`auth.enabled: auth.enabled = false serves without tokens and is for local use only: listen on 127.0.0.1 or ::1, not 0.0.0.0:8080 (every interface)`}},
		{name: "auth disabled on a LAN address", noBase: true, toml: "[server]\nlisten = \"10.1.2.3:8080\"\n[auth]\nenabled = false\n",
			want: []string{`auth.enabled: auth.enabled = false serves without tokens and is for local use only: listen on 127.0.0.1 or ::1, not 10.1.2.3:8080`}},
		{name: "cognito needs audience", noBase: true, toml: "[auth]\nprovider = \"cognito\"\ndomain = \"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC\"\n",
			want: []string{`auth.audience: required for provider "cognito": set it to the app client id`}},
		{name: "cognito with audience", noBase: true, toml: "[auth]\nprovider = \"cognito\"\ndomain = \"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC\"\naudience = \"3n4b5urk1ft4fl3mg5e62d9ado\"\n"},
		{name: "cognito domain without pool", noBase: true, toml: "[auth]\nprovider = \"cognito\"\ndomain = \"cognito-idp.eu-west-1.amazonaws.com\"\naudience = \"x\"\n",
			want: []string{`auth.domain: cognito domain "cognito-idp.eu-west-1.amazonaws.com" must be "cognito-idp.{region}.amazonaws.com/{userPoolId}": use a domain such as`}},
		{name: "domain with https:// is accepted", noBase: true, toml: "[auth]\ndomain = \"https://example.auth0.com/\"\n"},
		{name: "domain with http://", noBase: true, toml: "[auth]\ndomain = \"http://example.auth0.com/\"\n",
			want: []string{`auth.domain: domain "http://example.auth0.com/": only https identity providers are supported; give the host name without a scheme: use a domain such as "your-tenant.auth0.com"`}},
		{name: "generic domain with path", noBase: true, toml: "[auth]\nprovider = \"generic\"\ndomain = \"sso.example.com/realms/x\"\n[auth.multi_tenant]\nenabled = false\n",
			want: []string{`auth.domain: generic domain "sso.example.com/realms/x" must be a host name without a path: use a domain such as "idp.example.com", or set auth.issuer to the full URL`}},
		{name: "auth0 domain with path", noBase: true, toml: "[auth]\ndomain = \"example.auth0.com/api\"\n",
			want: []string{`auth.domain: auth0 domain "example.auth0.com/api" must be a host name without a path`}},
		{name: "entra organizations multi-tenant", noBase: true, toml: "[auth]\nprovider = \"entra\"\ndomain = \"organizations\"\n"},
		{name: "entra organizations single-tenant", noBase: true, toml: "[auth]\nprovider = \"entra\"\ndomain = \"organizations\"\n[auth.multi_tenant]\nenabled = false\n",
			want: []string{`auth.domain: "organizations" accepts tokens from any Entra directory: enable auth.multi_tenant`}},
		{name: "entra directory single-tenant", noBase: true, toml: "[auth]\nprovider = \"entra\"\ndomain = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\n[auth.multi_tenant]\nenabled = false\n"},
		{name: "issuer over plain http", toml: "issuer = \"http://idp.example.com/\"\n",
			want: []string{`auth.issuer: "http://idp.example.com/" must use https://`}},
		{name: "issuer over http on loopback (dev issuer)", toml: "issuer = \"http://127.0.0.1:8080/dev\"\njwks_url = \"http://localhost:8080/dev/jwks.json\"\n"},
		{name: "jwks_url not a URL", toml: "jwks_url = \"keys.json\"\n",
			want: []string{`auth.jwks_url: "keys.json" must be an absolute http:// or https:// URL`}},
		{name: "authorization server not a URL", toml: "authorization_servers = [\"https://ok.example.com\", \"nope\"]\n",
			want: []string{`auth.authorization_servers: "nope" must be an absolute http:// or https:// URL`}},
		{name: "claims with empty segments", toml: "user_claim = \"a..b\"\nscope_claims = [\"\"]\n[auth.multi_tenant]\ntenant_claim = \"organization.\"\n",
			want: []string{
				`auth.user_claim: "a..b" is not a claim name or dotted path`,
				`auth.scope_claims: must not contain an empty claim name`,
				`auth.multi_tenant.tenant_claim: "organization." is not a claim name or dotted path`,
			}},
		{name: "dotted tenant claim", toml: "[auth.multi_tenant]\ntenant_claim = \"https://example.com/claims.org\"\n"},
		{name: "token type and required claims", toml: "token_type = \"at+jwt\"\nrequired_claims = [\"idtyp=user\", \"client.kind=a=b\"]\n"},
		{name: "required claims from the environment", env: []string{"TENANTMCP_AUTH_REQUIRED_CLAIMS=idtyp=user, ver=2.0"}},
		{name: "token type of ID tokens", toml: "token_type = \"application/id+jwt\"\n",
			want: []string{`auth.token_type: "application/id+jwt" is the type of ID tokens, which are never accepted`}},
		{name: "token type with a space", toml: "token_type = \"at jwt\"\n",
			want: []string{`auth.token_type: "at jwt" is not a media type such as "at+jwt"`}},
		{name: "required claims malformed", toml: "required_claims = [\"idtyp\", \"=user\", \"ver=\", \"a..b=c\", \"ver=2.0\", \"ver=2.0\"]\n",
			want: []string{
				`auth.required_claims: "idtyp" is not "claim=value", such as "idtyp=user"`,
				`auth.required_claims: "=user" is not "claim=value"`,
				`auth.required_claims: "ver=" is not "claim=value"`,
				`auth.required_claims: "a..b" is not a claim name or dotted path`,
				`auth.required_claims: claim "ver" is listed twice`,
			}},
		{name: "cognito token_use cannot be relaxed", noBase: true,
			toml: "[auth]\nprovider = \"cognito\"\ndomain = \"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC\"\naudience = \"x\"\nrequired_claims = [\"token_use=id\"]\n",
			want: []string{`auth.required_claims: "token_use=id": the cognito preset requires token_use=access`}},
		{name: "cognito token_use may be restated", noBase: true,
			toml: "[auth]\nprovider = \"cognito\"\ndomain = \"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC\"\naudience = \"x\"\nrequired_claims = [\"token_use=access\"]\n"},
		{name: "env value is validated too", env: []string{"TENANTMCP_AUTH_MULTI_TENANT_ISOLATION=rls"},
			want: []string{`auth.multi_tenant.isolation: "rls" is not one of`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// base ends inside [auth], so header-less lines land there.
			src := base + tt.toml
			if tt.noBase {
				src = tt.toml
			}
			cfg, err := Parse([]byte(src), tt.env)
			es := errorsOf(t, err)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got:\n%v\n--- file:\n%s", err, src)
				}
				if cfg == nil {
					t.Fatal("nil config without error")
				}
				if err := cfg.Validate(); err != nil {
					t.Errorf("Validate of a loaded config: %v", err)
				}
				return
			}
			if cfg != nil {
				t.Errorf("config returned with errors")
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Key+": "+e.Msg)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s\n--- file:\n%s", len(got), len(tt.want), strings.Join(got, "\n"), src)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], tt.want[i])
				}
			}
			for _, e := range es {
				if strings.Contains(e.Error(), "hunter2") {
					t.Errorf("secret echoed: %s", e)
				}
			}
		})
	}
}

// TestValidateDirect checks Validate on configs built in Go, without a file.
func TestValidateDirect(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.Validate()
	if got, want := keysOf(errorsOf(t, err)), []string{"auth.domain"}; !cmp.Equal(got, want) {
		t.Errorf("Default().Validate() keys = %v, want %v (only the domain is missing)", got, want)
	}
	c.Auth.Domain = "example.auth0.com"
	if err := c.Validate(); err != nil {
		t.Errorf("Default + domain: %v", err)
	}
	c.Auth.MultiTenant.Isolation = IsolationRLS
	c.Server.Listen = "nope"
	c.Log.Level = "loud"
	es := errorsOf(t, c.Validate())
	if got, want := keysOf(es), []string{"server.listen", "auth.multi_tenant.isolation", "log.level"}; !cmp.Equal(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	for _, e := range es {
		if e.Line != 0 || e.Env != "" {
			t.Errorf("Validate error carries a source: %+v", e)
		}
	}
	if n := strings.Count(es.Error(), "\n"); n != 2 {
		t.Errorf("Errors.Error() has %d newlines, want one line per problem:\n%s", n, es.Error())
	}
	if len(es.Unwrap()) != 3 {
		t.Errorf("Unwrap: %d", len(es.Unwrap()))
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	t.Parallel()
	src := `[server]
listen = "8080"
max_body_bytes = "1MB"
shutdown_timeout = "15"

[auth]
provider = "okta"
domian = "example.auth0.com"
algorithms = ["HS256"]

[auth.multi_tenant]
isolation = "rls"
default_rate_limit = -1

[log]
level = "loud"
`
	_, err := Parse([]byte(src), []string{"TENANTMCP_SERVER_LISTN=x"})
	es := errorsOf(t, err)
	type loc struct {
		Key  string
		Line int
		Env  string
	}
	var got []loc
	for _, e := range es {
		got = append(got, loc{e.Key, e.Line, e.Env})
	}
	want := []loc{
		// decoding, in file order
		{"server.max_body_bytes", 3, ""},
		{"server.shutdown_timeout", 4, ""},
		{"auth.domian", 8, ""},
		// environment
		{"TENANTMCP_SERVER_LISTN", 0, "TENANTMCP_SERVER_LISTN"},
		// validation, located in the file
		{"server.listen", 2, ""},
		{"auth.provider", 7, ""},
		{"auth.domain", 0, ""}, // required, so not in the file
		{"auth.algorithms", 9, ""},
		{"auth.multi_tenant.isolation", 12, ""},
		{"auth.multi_tenant.default_rate_limit", 13, ""},
		{"log.level", 16, ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s\nfull:\n%v", diff, err)
	}
	// An undecodable value keeps its default and is reported once.
	for _, k := range []string{"server.max_body_bytes", "server.shutdown_timeout"} {
		if n := slices.Index(keysOf(es), k); n < 0 || slices.Index(keysOf(es)[n+1:], k) >= 0 {
			t.Errorf("%s reported %d times", k, strings.Count(err.Error(), k+":"))
		}
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Key: "a.b", Msg: "bad"}, "a.b: bad"},
		{Error{Key: "a.b", Msg: "bad", Line: 3}, "a.b: bad (line 3)"},
		{Error{Key: "a.b", Msg: "bad", Line: 3, File: "deploy.toml"}, "a.b: bad (deploy.toml line 3)"},
		{Error{Key: "a.b", Msg: "bad", Env: "TENANTMCP_A_B"}, "a.b: bad (from TENANTMCP_A_B)"},
		{Error{Key: "TENANTMCP_X", Msg: "unknown", Env: "TENANTMCP_X"}, "TENANTMCP_X: unknown"},
		{Error{Msg: "TOML syntax error: x", Line: 2}, "TOML syntax error: x (line 2)"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestTooManyErrorsAreCapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 120 {
		b.WriteString("[unknown")
		b.WriteString(strings.Repeat("x", i%5))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(strings.Repeat("y", i/26))
		b.WriteString("]\n")
	}
	_, err := Parse([]byte(b.String()), nil)
	es := errorsOf(t, err)
	if len(es) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d", len(es), maxErrors+1)
	}
	if last := es[len(es)-1].Msg; !strings.HasPrefix(last, "and 21 more problems") {
		t.Errorf("last = %q", last)
	}
}

// TestAlgorithmsFromAuth: config accepts exactly the algorithms the
// verifier accepts (one list, in auth), and documents each.
func TestAlgorithmsFromAuth(t *testing.T) {
	for _, alg := range auth.Algorithms {
		if _, err := Parse([]byte("[auth]\nprovider = \"auth0\"\ndomain = \"acme.auth0.com\"\nalgorithms = [\""+alg+"\"]\n"), nil); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
		if doc := keyByPath["auth.algorithms"].doc; !strings.Contains(doc, alg) {
			t.Errorf("auth.algorithms doc does not name %s", alg)
		}
	}
}
