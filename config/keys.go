package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "TENANTMCP_"

// EnvConfigFile is the environment variable the CLI reads the configuration
// file path from. It is not a configuration key; Load and Parse ignore it,
// as they ignore TENANTMCP_TEST_* (used by test suites).
const EnvConfigFile = EnvPrefix + "CONFIG"

// EnvAppPassword is where "db setup" and "dev --database" read the
// application role's password. Like EnvConfigFile it is not a
// configuration key (the password is never stored in the configuration),
// and Load and Parse ignore it.
const EnvAppPassword = EnvPrefix + "APP_PASSWORD"

// notConfig reports whether the TENANTMCP_* variable name is one Load and
// Parse ignore: it configures something other than a key.
func notConfig(name string) bool {
	return strings.HasPrefix(name, EnvPrefix+"TEST_") || name == EnvConfigFile || name == EnvAppPassword
}

// EnvConfigures reports whether environ (as returned by os.Environ) has a
// TENANTMCP_* variable that Load applies to the configuration (or reports
// as unknown): whether a deployment may be configured from the environment
// alone, without a file.
func EnvConfigures(environ []string) bool {
	for _, kv := range environ {
		if name, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(name, EnvPrefix) && !notConfig(name) {
			return true
		}
	}
	return false
}

// keyDef is one leaf key of the configuration. keyTable is the single source
// for file keys, environment names, unknown-key checks, the reference
// documentation and the init template.
type keyDef struct {
	path string
	// field returns a pointer to the key's field: *string, *bool, *int,
	// *int64, *float64, *time.Duration or *[]string.
	field func(*Config) any
	doc   string
	// secret values (credentials may be embedded) are never echoed in
	// errors and are redacted by Encode.
	secret bool
}

// sectionDocs describes each section, in file order.
var sectionDocs = []struct{ path, doc string }{
	{"server", "HTTP server: where it listens, how clients reach it, where it keeps local data."},
	{"auth", "Token verification: which identity provider issues the bearer tokens and how they are checked."},
	{"auth.multi_tenant", "Tenancy: which claim names the tenant, how tenant data is isolated, per-tenant rate limits."},
	{"database", "PostgreSQL for the registry and RLS/schema isolation; empty means embedded SQLite."},
	{"registry", "The tenant registry cache (tenant status, allowed tools, flags)."},
	{"ratelimit", "Where rate-limit budgets live and what happens when that store is down."},
	{"storage", "Blob and key/value storage used by prefix isolation and tools."},
	{"audit", "The tamper-evident audit trail: one hash chain of events per tenant with signed checkpoints, in the registry's database (see docs/audit.md)."},
	{"admin", "Cross-tenant administration: who is an admin (a token with the admin scope from the admin issuer), and impersonation limits (see docs/admin.md)."},
	{"console", "The operator console in the browser at /console/: admins sign in at the admin identity provider (see docs/console.md)."},
	{"tracing", "OpenTelemetry tracing of MCP requests and tool calls, exported over OTLP/HTTP (see docs/operations.md, Tracing)."},
	{"lifecycle", "Tenant archives, purges and the background job that finishes interrupted lifecycle operations (see docs/lifecycle.md)."},
	{"log", "Structured logs (log/slog) on standard error."},
}

var keyTable = []keyDef{
	// [server]
	{path: "server.listen", field: func(c *Config) any { return &c.Server.Listen },
		doc: "Address the HTTP server binds, as host:port. `:8080` or `0.0.0.0:8080` listens on every interface (then set `server.public_url`)."},
	{path: "server.public_url", field: func(c *Config) any { return &c.Server.PublicURL },
		doc: "URL clients reach the server at, e.g. `https://mcp.example.com` (an optional path prefix is kept). Default: `http://` + `server.listen`. The MCP endpoint and OAuth resource identifier is this + `/mcp`. Must be absolute http(s) without query or fragment."},
	{path: "server.data_dir", field: func(c *Config) any { return &c.Server.DataDir },
		doc: "Directory for the embedded SQLite registry, per-tenant SQLite databases, filesystem blobs and the dev issuer key."},
	{path: "server.stateful_sessions", field: func(c *Config) any { return &c.Server.StatefulSessions },
		doc: "Serve MCP with sessions (`Mcp-Session-Id`), each bound to the tenant and user that opened it. Off: every request stands alone, so replicas behind a load balancer need no affinity."},
	{path: "server.shutdown_timeout", field: func(c *Config) any { return &c.Server.ShutdownTimeout },
		doc: "How long shutdown waits for in-flight requests to finish. Must be > 0."},
	{path: "server.max_body_bytes", field: func(c *Config) any { return &c.Server.MaxBodyBytes },
		doc: "Largest request body accepted; larger bodies get 413. Must be > 0."},
	{path: "server.read_header_timeout", field: func(c *Config) any { return &c.Server.ReadHeaderTimeout },
		doc: "How long a client may take to send a request's headers; a slower connection is closed. Must be > 0."},
	{path: "server.read_timeout", field: func(c *Config) any { return &c.Server.ReadTimeout },
		doc: "How long a request body may take to arrive, counted from the end of its headers; a slower one gets 408 and its connection is closed. It ends once the body is in, so it never cuts a long tool call or event stream. The default allows about 35 KB/s for a body of `max_body_bytes`. Must be > 0."},
	{path: "server.write_timeout", field: func(c *Config) any { return &c.Server.WriteTimeout },
		doc: "How long a client may take to accept each part (up to 64 KiB) of a response before its connection is closed. It bounds each write, not the whole response: long tool calls and event streams are never cut, only clients that stop reading. The default is the bound the MCP library puts on replaying a stream. Must be > 0."},
	{path: "server.idle_timeout", field: func(c *Config) any { return &c.Server.IdleTimeout },
		doc: "How long a kept-alive connection may wait for its next request before it is closed. Must be > 0."},
	{path: "server.max_body_reads_per_tenant", field: func(c *Config) any { return &c.Server.MaxBodyReadsPerTenant },
		doc: "Largest number of one tenant's requests that may be sending their body at once on a replica; more get 429 with `Retry-After`. With `max_body_bytes` and `read_timeout` it bounds the connections and memory a tenant's slow uploads can hold. Must be > 0."},
	{path: "server.max_header_bytes", field: func(c *Config) any { return &c.Server.MaxHeaderBytes },
		doc: "Largest request line and header fields of a request, in bytes; larger get 431 (and header blocks over twice this are cut off before they are read in full). Between 4096 and 16777216. See operations.md, Limits."},
	{path: "server.max_json_depth", field: func(c *Config) any { return &c.Server.MaxJSONDepth },
		doc: "How deeply a request body's JSON may nest arrays and objects; deeper bodies get 400 (JSON-RPC -32600) before anything decodes them. MCP messages themselves use 3 to 4 levels. Between 8 and 10000."},
	{path: "server.max_argument_bytes", field: func(c *Config) any { return &c.Server.MaxArgumentBytes },
		doc: "Largest arguments (their JSON) of one tool call; a larger call gets a tool error result (`isError`) that names the limit, which clients show the model. Must be > 0 and at most `server.max_body_bytes`; left unset, it is lowered to `server.max_body_bytes` if that is smaller."},
	{path: "server.max_concurrent_requests", field: func(c *Config) any { return &c.Server.MaxConcurrentRequests },
		doc: "Largest number of MCP requests in flight on a replica, over all tenants; one more gets 503 with `Retry-After` at once (no queue). A tenant's own cap (`ratelimit.max_concurrent_per_tenant`) is checked first, so a tenant at its cap takes none of the others' share. 0 turns it off."},
	{path: "server.max_concurrent_admin_requests", field: func(c *Config) any { return &c.Server.MaxConcurrentAdminRequests },
		doc: "Largest number of admin requests (admin MCP tools and `/admin/v1`) in flight on a replica; one more gets 503 with `Retry-After` at once. Counted apart from `server.max_concurrent_requests`, so tenants' load cannot lock administrators out, nor administrators' scripts take the tenants' slots (gauge `tenantmcp_admin_requests_in_flight`). 0 turns it off."},
	{path: "server.max_conns_per_client", field: func(c *Config) any { return &c.Server.MaxConnsPerClient },
		doc: "Largest number of open connections from one client IP address; more are closed as soon as they are accepted (counted in `tenantmcp_connections_refused_total`). Behind a proxy or load balancer every connection comes from its address: set 0 (off) or more than the proxy's connection pool, and limit clients at the proxy. 0 turns it off."},
	{path: "server.allowed_origins", field: func(c *Config) any { return &c.Server.AllowedOrigins },
		doc: "Browser origins (`https://app.example.com`) allowed to call the MCP endpoint besides the server's own; `\"*\"` allows any. A request whose `Origin` header is not allowed gets 403 (MCP Streamable HTTP: DNS-rebinding and cross-site protection); requests without `Origin`, from any non-browser client, are not affected. `tenantmcp dev` also allows loopback origins such as a local MCP Inspector."},
	{path: "server.metrics_listen", field: func(c *Config) any { return &c.Server.MetricsListen },
		doc: "Address (host:port) of a separate listener serving Prometheus metrics at `/metrics`. Empty (the default) serves no metrics. Metrics count every tenant's requests and refusals, so they are never served on the public listener: bind this to loopback or a private network, e.g. `127.0.0.1:9464`."},
	{path: "server.history_tenants", field: func(c *Config) any { return &c.Server.HistoryTenants },
		doc: "How many tenants each replica keeps a 24-hour history of in memory (requests, refusals by reason, latency in 5-minute steps) for the console's charts and sparklines. When one more tenant sends a request, the least recently active one is dropped (counted in `tenantmcp_history_tenants_dropped_total`). A tenant costs at most about 46 KB (a tenant busy all day), usually far less. Must be more than 0."},
	{path: "server.metrics_top_tenants", field: func(c *Config) any { return &c.Server.MetricsTopTenants },
		doc: "How many tenants get a `tenant` label of their own (their tenant id) in the per-tenant metrics: the first this many tenants served after the process starts, until it exits; every other tenant is counted under `tenant=\"other\"`, so thousands of tenants cannot blow up the number of series. `0` labels none (no tenant id reaches the metrics). Must be 0 or more."},

	// [auth]
	{path: "auth.enabled", field: func(c *Config) any { return &c.Auth.Enabled },
		doc: "Require a valid bearer token on every MCP request. `false` serves without tokens and is allowed only on a loopback `server.listen` (local development)."},
	{path: "auth.provider", field: func(c *Config) any { return &c.Auth.Provider },
		doc: "Identity provider preset: `auth0`, `cognito`, `entra` or `generic`. Sets the issuer/JWKS derivation and which claims are read (see Provider presets)."},
	{path: "auth.domain", field: func(c *Config) any { return &c.Auth.Domain },
		doc: "The provider's domain (an `https://` prefix is accepted): Auth0 `your-tenant.auth0.com` (or custom domain); Cognito `cognito-idp.REGION.amazonaws.com/POOL_ID`; Entra the directory (tenant) id, or `organizations` for any work/school directory; generic the issuer host. Required when auth is enabled unless `auth.issuer` is set."},
	{path: "auth.issuer", field: func(c *Config) any { return &c.Auth.Issuer },
		doc: "Exact `iss` value tokens must carry. Default: derived from provider and domain (see Provider presets). Set it for an issuer the derivation does not cover, such as a Keycloak realm URL."},
	{path: "auth.audience", field: func(c *Config) any { return &c.Auth.Audience },
		doc: "Audience tokens must carry. Default: the resource URL (`server.public_url` + `/mcp`). Cognito: required, the app client id (checked against `client_id`, since Cognito access tokens have no `aud`)."},
	{path: "auth.jwks_url", field: func(c *Config) any { return &c.Auth.JWKSURL },
		doc: "Where the signing keys are fetched. Default: derived from the issuer (see Provider presets)."},
	{path: "auth.algorithms", field: func(c *Config) any { return &c.Auth.Algorithms },
		doc: "Signature algorithms accepted, from RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA. `none` and HS256/HS384/HS512 are refused."},
	{path: "auth.leeway", field: func(c *Config) any { return &c.Auth.Leeway },
		doc: "Clock skew tolerated when checking `exp`, `nbf` and `iat`. Between 0s (none) and 5m."},
	{path: "auth.authorization_servers", field: func(c *Config) any { return &c.Auth.AuthorizationServers },
		doc: "Authorization servers advertised in `/.well-known/oauth-protected-resource`. Default: the issuer."},
	{path: "auth.scopes_supported", field: func(c *Config) any { return &c.Auth.ScopesSupported },
		doc: "Scopes advertised in `/.well-known/oauth-protected-resource` (informational)."},
	{path: "auth.user_claim", field: func(c *Config) any { return &c.Auth.UserClaim },
		doc: "Claim identifying the user. Default: the preset's (`sub`; Entra `oid`)."},
	{path: "auth.tenant_name_claim", field: func(c *Config) any { return &c.Auth.TenantNameClaim },
		doc: "Claim with the tenant's display name (used when the registry has none). Default: the preset's."},
	{path: "auth.scope_claims", field: func(c *Config) any { return &c.Auth.ScopeClaims },
		doc: "Claims holding granted scopes/permissions (space-separated string or array). Default: the preset's."},
	{path: "auth.token_type", field: func(c *Config) any { return &c.Auth.TokenType },
		doc: "JOSE header `typ` every token must have, such as `at+jwt` for RFC 9068 access tokens (compared case-insensitively, an `application/` prefix ignored). Empty: any `typ`. Either way a `typ` that marks an ID token (`id_token`, `id+jwt`, ...) and any `crit` header are refused. This is the header; payload claims go in `auth.required_claims`."},
	{path: "auth.required_claims", field: func(c *Config) any { return &c.Auth.RequiredClaims },
		doc: "Payload claims every token must carry with exactly this string value, as `\"claim=value\"` entries, such as `[\"idtyp=user\"]` (Entra) or `[\"typ=Bearer\"]` (Keycloak); the claim may be a dotted path. They add to the preset's (cognito: `token_use=access`). In the environment variable, separate entries with commas. Empty: only the preset's. See Provider presets for telling ID tokens from access tokens."},
	{path: "auth.token_cache_size", field: func(c *Config) any { return &c.Auth.TokenCacheSize },
		doc: "How many verified tokens are cached (by token hash) to skip repeated signature checks; 0 disables the cache. Expiry is still checked on every request."},
	{path: "auth.token_cache_ttl", field: func(c *Config) any { return &c.Auth.TokenCacheTTL },
		doc: "How long a verified token stays cached (never past its `exp`). Must be > 0."},

	{path: "auth.scope_hierarchy", field: func(c *Config) any { return &c.Auth.ScopeHierarchy },
		doc: "Scopes that imply narrower ones, as rules `\"BROAD > NARROW NARROW...\"`, e.g. `[\"admin > documents:write documents:read\", \"documents:write > documents:read\"]`. Chains are followed. A tool requiring `documents:read` then accepts a token with `admin`. Empty: a scope implies only itself."},

	// [auth.multi_tenant]
	{path: "auth.multi_tenant.enabled", field: func(c *Config) any { return &c.Auth.MultiTenant.Enabled },
		doc: "Serve many tenants: every token must name its tenant in `tenant_claim`, and that tenant must be in the registry and active."},
	{path: "auth.multi_tenant.tenant_claim", field: func(c *Config) any { return &c.Auth.MultiTenant.TenantClaim },
		doc: "Claim with the IdP's tenant identifier; may be a dotted path (`organization.id`). Default: the preset's (auth0 `org_id`, cognito `custom:tenant_id`, entra `tid`); required for generic."},
	{path: "auth.multi_tenant.isolation", field: func(c *Config) any { return &c.Auth.MultiTenant.Isolation },
		doc: "How tenant data is separated: `row_level_security`, `schema_per_tenant` (both need `database.dsn`), `database_per_tenant` or `prefix`. Default: `database_per_tenant` without `database.dsn`, `row_level_security` with it."},
	{path: "auth.multi_tenant.default_rate_limit", field: func(c *Config) any { return &c.Auth.MultiTenant.DefaultRateLimit },
		doc: "Requests per minute per tenant, unless the tenant's registry record sets its own; 0 turns the per-tenant limit off. With `auth.enabled = false` (local use on loopback) the default is 0: no limit unless this key or `rate_limit_burst` is set."},
	{path: "auth.multi_tenant.rate_limit_burst", field: func(c *Config) any { return &c.Auth.MultiTenant.RateLimitBurst },
		doc: "Requests a tenant may send at once (its budget when full), unless the tenant's registry record sets its own. 0 means one minute's worth: the tenant's rate, so at the default 100/min a client's first 100 parallel calls are admitted, then one every 0.6 s."},

	// [database]
	{path: "database.dsn", field: func(c *Config) any { return &c.Database.DSN }, secret: true,
		doc: "PostgreSQL URL (`postgres://user:pass@host:5432/db?sslmode=require`) for the registry and RLS/schema isolation. Empty: embedded SQLite under `server.data_dir`. Never echoed in errors."},
	{path: "database.max_conns", field: func(c *Config) any { return &c.Database.MaxConns },
		doc: "Largest PostgreSQL pool size; 0 means the pgx default (max(4, CPUs)), 4 on a 2-core machine. The registry, the audit trail and the lifecycle job share the pool with the tenant stores. With PostgreSQL on the same machine, more connections than about twice the cores add contention, not throughput (see docs/benchmarks.md)."},
	{path: "database.acquire_timeout", field: func(c *Config) any { return &c.Database.AcquireTimeout },
		doc: "How long a tenant transaction (a documents call, `store.SQL`) waits for a free connection of the pool. Past it the request is refused with 503 and `Retry-After: 1` instead of queueing: the pool's waits are in `tenantmcp_db_pool_*` metrics. 0: wait as long as the request lasts."},
	{path: "database.statement_timeout", field: func(c *Config) any { return &c.Database.StatementTimeout },
		doc: "PostgreSQL `statement_timeout` of every tenant transaction (documents calls and `store.SQL`; exports, imports and purges are not limited): a statement running longer is cancelled and its transaction rolled back. 0: the server's setting."},
	{path: "database.startup_wait", field: func(c *Config) any { return &c.Database.StartupWait },
		doc: "How long `serve` keeps trying to reach PostgreSQL when it cannot at start-up (connection refused or timed out, host not found, server starting up), with backoff from 250ms to 5s and a warning logged per attempt; the listener opens only once it is reached. Past it `serve` exits non-zero naming `database.dsn` and the address. 0: exit at once. A role that may not log in, or missing tables, fail at once whatever this is."},
	{path: "database.admin_dsn", field: func(c *Config) any { return &c.Database.AdminDSN }, secret: true,
		doc: "PostgreSQL URL of a role that may create roles and schemas (e.g. the database owner). Used only by `tenantmcp db setup`, `tenantmcp db migrate` and, for `schema_per_tenant`, by `tenantmcp tenant create` to provision the new tenant's schema. The server never connects with it. Never echoed in errors."},
	{path: "database.owner_role", field: func(c *Config) any { return &c.Database.OwnerRole },
		doc: "Role that owns tenantmcp's tables (created NOLOGIN by `db setup`). Empty: `<database>_owner`, after the database in `database.dsn` (sanitized: see docs/isolation-postgres.md), so deployments sharing a PostgreSQL cluster never share roles."},
	{path: "database.app_role", field: func(c *Config) any { return &c.Database.AppRole },
		doc: "Role the server connects as (the user in `database.dsn`): not superuser, not owner, no BYPASSRLS, so row-level security holds. Created by `db setup`; the server refuses to start if `database.dsn` connects as a role that could bypass isolation. Empty: `<database>_app`, like `owner_role`."},

	// [registry]
	{path: "registry.cache_ttl", field: func(c *Config) any { return &c.Registry.CacheTTL },
		doc: "How long a tenant record is cached at most. Changes made through tenantmcp (the tenant commands, the admin API and tools) reach every replica within about a second whatever this is (PostgreSQL LISTEN/NOTIFY, or the SQLite file's change log; see docs/operations.md); this bounds only changes made by hand in the database. Must be > 0."},
	{path: "registry.negative_cache_ttl", field: func(c *Config) any { return &c.Registry.NegativeCacheTTL },
		doc: "How long an unknown tenant stays cached as unknown (shields the registry from floods of made-up tenants). Must be > 0."},
	{path: "registry.cache_size", field: func(c *Config) any { return &c.Registry.CacheSize },
		doc: "Largest number of cached registry answers (tenant records and \"not registered\" answers together); when it is full, an expired entry or the oldest of a few sampled ones is evicted. Must be > 0."},

	// [ratelimit]
	{path: "ratelimit.backend", field: func(c *Config) any { return &c.RateLimit.Backend },
		doc: "`memory` (per replica) or `redis` (one budget shared by all replicas)."},
	{path: "ratelimit.redis_url", field: func(c *Config) any { return &c.RateLimit.RedisURL }, secret: true,
		doc: "Redis URL (`redis://host:6379/0`, `rediss://` for TLS); required for `backend = \"redis\"`. Never echoed in errors."},
	{path: "ratelimit.on_redis_error", field: func(c *Config) any { return &c.RateLimit.OnRedisError },
		doc: "When Redis cannot be reached: `open` allows the request, logs and counts it; `closed` answers 503."},
	{path: "ratelimit.per_user_rate_limit", field: func(c *Config) any { return &c.RateLimit.PerUserRateLimit },
		doc: "Requests per minute per user within a tenant; 0 turns it off."},
	{path: "ratelimit.max_concurrent_per_tenant", field: func(c *Config) any { return &c.RateLimit.MaxConcurrentPerTenant },
		doc: "Largest number of requests one tenant may have in flight on a replica; more get 429 with `Retry-After`. Less than `server.max_concurrent_requests` (when both are on), so that no tenant can hold every request slot of a replica. 0 turns it off."},

	// [storage]
	{path: "storage.blob", field: func(c *Config) any { return &c.Storage.Blob },
		doc: "Blob store: `fs` (files under `server.data_dir`) or `s3` (S3-compatible object storage)."},
	{path: "storage.s3_bucket", field: func(c *Config) any { return &c.Storage.S3Bucket },
		doc: "Bucket for `blob = \"s3\"` (required then). Credentials: static keys from the `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` environment variables (shared files, SSO and instance roles are not used); without them requests are unsigned."},
	{path: "storage.s3_endpoint", field: func(c *Config) any { return &c.Storage.S3Endpoint },
		doc: "Endpoint URL for S3-compatible services (MinIO, R2, ...); empty means AWS."},
	{path: "storage.s3_region", field: func(c *Config) any { return &c.Storage.S3Region },
		doc: "Region of the bucket."},
	{path: "storage.s3_path_style", field: func(c *Config) any { return &c.Storage.S3PathStyle },
		doc: "Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (needed by most S3-compatible servers)."},
	{path: "storage.redis_url", field: func(c *Config) any { return &c.Storage.RedisURL }, secret: true,
		doc: "Redis URL of the key/value store tools reach with `store.KV` (keys prefixed per tenant). Empty: no key/value store is configured, and `store.KV` returns `store.ErrNotConfigured`. Never echoed in errors."},

	// [audit]
	{path: "audit.enabled", field: func(c *Config) any { return &c.Audit.Enabled },
		doc: "Record one audit event per MCP request, refusal and tool call in a hash chain per tenant, with signed checkpoints. Events go to the registry's database: SQLite `audit.db` under `server.data_dir`, or PostgreSQL when `database.dsn` is set."},
	{path: "audit.signing_key_file", field: func(c *Config) any { return &c.Audit.SigningKeyFile },
		doc: "PEM file (PKCS #8) of the Ed25519 key that signs checkpoints. Empty: `audit-signing-key.pem` in `server.data_dir`, generated on first start; a configured file is never generated. Replicas must share the key; `tenantmcp audit key` prints its public half."},
	{path: "audit.retention", field: func(c *Config) any { return &c.Audit.Retention },
		doc: "How long events are kept, independent of the tenant's own lifecycle (a deleted tenant's trail stays until its events age out). Must be > 0."},
	{path: "audit.store_arguments", field: func(c *Config) any { return &c.Audit.StoreArguments },
		doc: "Store tool arguments in audit events. Off: only their size and SHA-256 are stored. A tenant's `audit_arguments` flag, true or false, decides for that tenant either way."},
	{path: "audit.log_tool", field: func(c *Config) any { return &c.Audit.LogTool },
		doc: "Serve the `audit_log` tool, with which a tenant reads its own audit events (never another tenant's). The tenant's allowed tools still apply."},
	{path: "audit.log_tool_scope", field: func(c *Config) any { return &c.Audit.LogToolScope },
		doc: "Scope a token needs to call `audit_log`."},
	{path: "audit.queue_size", field: func(c *Config) any { return &c.Audit.QueueSize },
		doc: "Events that may wait to be written. When the queue is full a request waits up to `audit.max_wait`, then gets 503 with `Retry-After` (it is not served unaudited). Must be > 0."},
	{path: "audit.batch_size", field: func(c *Config) any { return &c.Audit.BatchSize },
		doc: "Most events written in one batch. Must be > 0."},
	{path: "audit.flush_interval", field: func(c *Config) any { return &c.Audit.FlushInterval },
		doc: "Longest an event waits for its batch to fill before it is written. Must be > 0."},
	{path: "audit.max_wait", field: func(c *Config) any { return &c.Audit.MaxWait },
		doc: "How long a request waits for room in a full audit queue before it is refused with 503. Must be > 0."},
	{path: "audit.checkpoint_interval", field: func(c *Config) any { return &c.Audit.CheckpointInterval },
		doc: "How often every chain that grew gets a signed checkpoint (shutdown writes final ones). Must be > 0."},
	{path: "audit.store_timeout", field: func(c *Config) any { return &c.Audit.StoreTimeout },
		doc: "Bounds each call to the audit store; a slower call counts as failed and is retried (events stay queued, so a slow store turns into backpressure, never into lost events). Must be > 0."},

	// [admin]
	{path: "admin.enabled", field: func(c *Config) any { return &c.Admin.Enabled },
		doc: "Serve the admin MCP tools and the admin HTTP API (`/admin/v1/`) to admin tokens, and accept impersonation credentials. Off: admin tokens are refused like any token without a tenant."},
	{path: "admin.issuer", field: func(c *Config) any { return &c.Admin.Issuer },
		doc: "Issuer of admin tokens when operators sign in at an identity provider of their own. Empty: admins sign in at the tenants' identity provider, and an admin token must carry no tenant claim (a tenant's user is never an admin). Needed with a multi-directory Entra domain (`common`, `organizations`), where every customer directory issues its own tokens: without it administration is off there."},
	{path: "admin.audience", field: func(c *Config) any { return &c.Admin.Audience },
		doc: "Audience admin tokens must carry when `admin.issuer` is set. Default: the MCP resource URL."},
	{path: "admin.jwks_url", field: func(c *Config) any { return &c.Admin.JWKSURL },
		doc: "Where the admin issuer's signing keys are fetched. Default: `admin.issuer` + `/.well-known/jwks.json`."},
	{path: "admin.scope", field: func(c *Config) any { return &c.Admin.Scope },
		doc: "The scope that makes a token from the admin issuer an admin token."},
	{path: "admin.impersonation_ttl", field: func(c *Config) any { return &c.Admin.ImpersonationTTL },
		doc: "How long an impersonation credential lasts when the admin does not say. Must be > 0 and at most `admin.max_impersonation_ttl`."},
	{path: "admin.max_impersonation_ttl", field: func(c *Config) any { return &c.Admin.MaxImpersonationTTL },
		doc: "The longest impersonation an admin may ask for. Must be > 0."},

	// [console]
	{path: "console.enabled", field: func(c *Config) any { return &c.Console.Enabled },
		doc: "Serve the operator console at `/console/`: operators sign in at the admin identity provider (`admin.issuer`, else `auth.issuer`) with OpenID Connect authorization code + PKCE, and only admins get in. Needs `admin.enabled`, `auth.enabled` and `console.client_id`. Off by default in `serve` (it needs a client registered at the identity provider); `dev` always serves it, signing in at the dev authorization server. See docs/console.md."},
	{path: "console.client_id", field: func(c *Config) any { return &c.Console.ClientID },
		doc: "The console's client id at the admin identity provider, registered with the redirect URL `console.redirect_url` and allowed to ask for the admin scope. Required when `console.enabled`."},
	{path: "console.client_secret", field: func(c *Config) any { return &c.Console.ClientSecret }, secret: true,
		doc: "The client's secret, for a confidential client (sent with HTTP Basic, or in the form when the provider supports only that). Empty: a public client (PKCE only). Never logged or shown."},
	{path: "console.redirect_url", field: func(c *Config) any { return &c.Console.RedirectURL },
		doc: "The console's sign-in callback URL, as registered at the identity provider. Default: `server.public_url` + `/console/callback`. Must be https, except on a loopback host."},
	{path: "console.session_ttl", field: func(c *Config) any { return &c.Console.SessionTTL },
		doc: "Longest a console session lasts; it also ends when the operator's access token expires. Sessions are kept in memory on the replica that signed the operator in. Must be > 0."},

	// [lifecycle]
	{path: "lifecycle.archives", field: func(c *Config) any { return &c.Lifecycle.Archives },
		doc: "Where tenant archives go: `fs` (the directory `lifecycle.archive_dir`) or `s3` (the bucket `storage.s3_bucket`, under `lifecycle.archive_s3_prefix`, with the storage section's endpoint, region and credentials)."},
	{path: "lifecycle.archive_dir", field: func(c *Config) any { return &c.Lifecycle.ArchiveDir },
		doc: "Directory of the archives with `lifecycle.archives = \"fs\"`. Empty: `archives` under `server.data_dir`. Keep it off the data volume in production, or copy it elsewhere: an archive is the only copy of a purged tenant's data."},
	{path: "lifecycle.archive_s3_prefix", field: func(c *Config) any { return &c.Lifecycle.ArchiveS3Prefix },
		doc: "Key prefix of the archives in the bucket with `lifecycle.archives = \"s3\"`; must end in `/`."},
	{path: "lifecycle.retention", field: func(c *Config) any { return &c.Lifecycle.Retention },
		doc: "How long an archived (or deleted) tenant's data is kept before the purge job removes it from every backend. The archive itself is kept. Must be > 0."},
	{path: "lifecycle.reconcile_interval", field: func(c *Config) any { return &c.Lifecycle.ReconcileInterval },
		doc: "How often the server finishes interrupted provisionings, archives and purges, and purges tenants whose retention has passed (one replica at a time). Must be > 0."},

	// [tracing]
	{path: "tracing.enabled", field: func(c *Config) any { return &c.Tracing.Enabled },
		doc: "Trace MCP requests with OpenTelemetry: a span per request to the MCP endpoint (served or refused) and one per tool call, each with the tenant's internal id (`tenant.id`), exported to `tracing.endpoint`. Never tokens, tool arguments or results. Off: nothing is traced and the request path does no tracing work."},
	{path: "tracing.endpoint", field: func(c *Config) any { return &c.Tracing.Endpoint },
		doc: "OTLP/HTTP URL of the collector, such as `http://127.0.0.1:4318` (an OpenTelemetry Collector's default). `/v1/traces` is added to a URL without a path; a URL with a path is used as it is. `http://` sends spans unencrypted: use `https://` beyond a private network. Required when `tracing.enabled = true`."},
	{path: "tracing.sample_ratio", field: func(c *Config) any { return &c.Tracing.SampleRatio },
		doc: "Fraction of traces recorded, from 0 (none) to 1 (all). A request whose trace context says whether its trace is sampled (the flag of `traceparent`) follows that decision instead, so a trace is recorded whole or not at all."},
	{path: "tracing.service_name", field: func(c *Config) any { return &c.Tracing.ServiceName },
		doc: "`service.name` of the spans, under which the tracing backend lists them. Must not be empty."},
	{path: "tracing.headers", field: func(c *Config) any { return &c.Tracing.Headers }, secret: true,
		doc: "HTTP headers sent with every export, as `\"Name=value\"` entries, such as `[\"Authorization=Bearer KEY\"]` for a collector that wants a key. In the environment variable, separate entries with commas. Values are never echoed in errors, and `Encode` redacts them."},

	// [log]
	{path: "log.level", field: func(c *Config) any { return &c.Log.Level },
		doc: "`debug`, `info`, `warn` or `error`."},
	{path: "log.format", field: func(c *Config) any { return &c.Log.Format },
		doc: "`text` or `json`. Default: `json` for `tenantmcp serve` (one access line per request, for a log pipeline), `text` for `tenantmcp dev` (for people)."},
}

var (
	keyByPath = map[string]*keyDef{}
	keyByEnv  = map[string]*keyDef{}
	sections  = map[string]bool{}
)

func init() {
	for i := range keyTable {
		k := &keyTable[i]
		if keyByPath[k.path] != nil || keyByEnv[k.env()] != nil {
			panic("config: duplicate key " + k.path)
		}
		keyByPath[k.path] = k
		keyByEnv[k.env()] = k
	}
	for _, s := range sectionDocs {
		sections[s.path] = true
	}
}

// envName is the environment variable that overrides the key at path.
func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

func (k *keyDef) env() string { return envName(k.path) }

func (k *keyDef) section() string { return k.path[:strings.LastIndexByte(k.path, '.')] }

func (k *keyDef) name() string { return k.path[strings.LastIndexByte(k.path, '.')+1:] }

func (k *keyDef) typeName() string {
	switch k.field(&Config{}).(type) {
	case *string:
		return "string"
	case *bool:
		return "bool"
	case *int, *int64:
		return "integer"
	case *float64:
		return "number"
	case *time.Duration:
		return "duration"
	case *[]string:
		return "array of strings"
	}
	panic("config: unsupported field type for " + k.path)
}

// literal returns the key's value in c as a TOML literal.
func (k *keyDef) literal(c *Config) string {
	switch p := k.field(c).(type) {
	case *string:
		return tomlQuote(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *float64:
		return formatFloat(*p)
	case *time.Duration:
		return tomlQuote(formatDuration(*p))
	case *[]string:
		q := make([]string, len(*p))
		for i, s := range *p {
			q[i] = tomlQuote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	panic("config: unsupported field type for " + k.path)
}

// Key describes one configuration key, for documentation and tooling.
type Key struct {
	// Name is the dotted path, e.g. "auth.multi_tenant.tenant_claim".
	Name string
	// Env is the environment variable that overrides it, e.g.
	// "TENANTMCP_AUTH_MULTI_TENANT_TENANT_CLAIM".
	Env string
	// Type is "string", "bool", "integer", "number", "duration" or "array
	// of strings".
	Type string
	// Default is the built-in default as a TOML literal.
	Default string
	// Doc says what the key does.
	Doc string
	// Secret keys may embed credentials: never echoed, redacted by Encode.
	Secret bool
}

// Keys lists every configuration key, in file order.
func Keys() []Key {
	d := Default()
	out := make([]Key, len(keyTable))
	for i := range keyTable {
		k := &keyTable[i]
		out[i] = Key{Name: k.path, Env: k.env(), Type: k.typeName(), Default: k.literal(d), Doc: k.doc, Secret: k.secret}
	}
	return out
}

// formatFloat prints f as a TOML float ("1.0", "0.25"), never as an
// integer.
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEnN") { // NaN, Inf
		s += ".0"
	}
	return s
}

// formatDuration prints d the way a person writes it: "15s", "1m", "1h30m".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tomlQuote returns s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Encode writes c as a complete TOML file, every key in file order. Values
// of secret keys (database.dsn, the Redis URLs) have their password
// replaced by "REDACTED" when redact is true.
func (c *Config) Encode(redact bool) []byte {
	var b strings.Builder
	section := ""
	for i := range keyTable {
		k := &keyTable[i]
		if s := k.section(); s != section {
			if section != "" {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "[%s]\n", s)
			section = s
		}
		v := k.literal(c)
		if redact && k.secret {
			v = k.redacted(c)
		}
		fmt.Fprintf(&b, "%s = %s\n", k.name(), v)
	}
	return []byte(b.String())
}

// redacted is a secret key's value in c as a TOML literal, its
// credentials replaced by "REDACTED": a URL's password, the values of
// "Name=value" entries.
func (k *keyDef) redacted(c *Config) string {
	switch p := k.field(c).(type) {
	case *string:
		if *p != "" && !strings.Contains(*p, "://") {
			return tomlQuote("REDACTED") // a plain secret, not a URL with one
		}
		return tomlQuote(redactURL(*p))
	case *[]string:
		q := make([]string, len(*p))
		for i, e := range *p {
			name, _, _ := strings.Cut(e, "=")
			q[i] = tomlQuote(name + "=REDACTED")
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	panic("config: secret key " + k.path + " of unsupported type")
}

// nearest returns the candidate closest to s by edit distance, if it is
// close enough to be a plausible typo.
func nearest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(s)/4)
	return best, bestD >= 0 && bestD <= limit
}

func levenshtein(a, b string) int {
	if len(a) > 200 || len(b) > 200 { // bounded work for fuzzed input
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// knownPaths returns every section and key path.
func knownPaths() []string {
	out := make([]string, 0, len(sectionDocs)+len(keyTable))
	for _, s := range sectionDocs {
		out = append(out, s.path)
	}
	for _, k := range keyTable {
		out = append(out, k.path)
	}
	return out
}

func envNames() []string {
	out := make([]string, 0, len(keyTable))
	for i := range keyTable {
		out = append(out, keyTable[i].env())
	}
	slices.Sort(out)
	return out
}
