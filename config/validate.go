package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/server"
)

// maxLeeway bounds auth.leeway: a larger skew would accept long-expired
// tokens.
const maxLeeway = 5 * time.Minute

// Validate checks every rule and returns all problems at once as Errors
// (nil when the configuration is usable). It works on a Config from
// Default, Load or Parse, with or without derived defaults filled in.
func (c *Config) Validate() error { return Errors(c.validate()).err() }

type validator struct{ errs []*Error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, value string, allowed ...string) bool {
	if slices.Contains(allowed, value) {
		return true
	}
	if value == "" {
		v.add(key, "must be set to one of %s", strings.Join(allowed, ", "))
	} else {
		v.add(key, "%s is not one of %s", strconv.Quote(truncate(value)), strings.Join(allowed, ", "))
	}
	return false
}

func (v *validator) nonNegative(key string, n int64) {
	if n < 0 {
		v.add(key, "must be 0 or more, not %d", n)
	}
}

func (v *validator) positiveDuration(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be a positive duration such as \"30s\", not %q", formatDuration(d))
	}
}

// durationOrZero checks a duration whose 0 means "no limit".
func (v *validator) durationOrZero(key string, d time.Duration) {
	if d < 0 {
		v.add(key, "must be a positive duration such as \"1s\", or 0 for no limit, not %q", formatDuration(d))
	}
}

// httpURL checks that s is an absolute http(s) URL without query or
// fragment. It returns the parsed URL or nil.
func (v *validator) httpURL(key, s string, secret bool) *url.URL {
	shown := strconv.Quote(truncate(s))
	if secret {
		shown = "the URL"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.add(key, "%s is not a URL", shown)
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(key, "%s must be an absolute http:// or https:// URL", shown)
	case u.Host == "" || u.Hostname() == "":
		v.add(key, "%s has no host", shown)
	case u.RawQuery != "" || u.ForceQuery:
		v.add(key, "%s must not have a query string", shown)
	case u.Fragment != "" || strings.Contains(s, "#"):
		v.add(key, "%s must not have a fragment", shown)
	case u.User != nil:
		v.add(key, "%s must not contain credentials", shown)
	default:
		return u
	}
	return nil
}

// issuerURL checks an issuer/JWKS URL: https, or http only on a loopback
// host (a local dev issuer).
func (v *validator) issuerURL(key, s string) {
	u := v.httpURL(key, s, false)
	if u != nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		v.add(key, "%s must use https:// (http:// is accepted only for a loopback dev issuer): keys and tokens fetched over plain HTTP can be forged in transit", strconv.Quote(truncate(s)))
	}
}

func (v *validator) claim(key, claim string) {
	if claim == "" {
		return
	}
	if strings.HasPrefix(claim, ".") || strings.HasSuffix(claim, ".") || strings.Contains(claim, "..") {
		v.add(key, "%s is not a claim name or dotted path such as \"organization.id\" (empty segment)", strconv.Quote(truncate(claim)))
	}
	if strings.TrimSpace(claim) != claim {
		v.add(key, "%s has leading or trailing spaces", strconv.Quote(truncate(claim)))
	}
}

func (v *validator) redisURL(key, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		v.add(key, "must be a redis://, rediss:// or unix:// URL such as \"redis://host:6379/0\"")
		return
	}
	if u.Scheme != "unix" && u.Host == "" {
		v.add(key, "must name a host, as in \"redis://host:6379/0\"")
	}
}

var roleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (c *Config) validate() []*Error {
	v := &validator{}
	c.validateServer(v)
	c.validateAuth(v)
	c.validateStorage(v)
	c.validateAudit(v)
	c.validateTracing(v)
	c.validateAdmin(v)
	c.validateConsole(v)
	c.validateLifecycle(v)

	mt := c.Auth.MultiTenant
	if c.Database.DSN != "" && !c.UsesPostgres() {
		v.add("database.dsn", "must be a postgres:// or postgresql:// URL (leave it empty for embedded SQLite)")
	}
	v.nonNegative("database.max_conns", int64(c.Database.MaxConns))
	v.durationOrZero("database.acquire_timeout", c.Database.AcquireTimeout)
	v.durationOrZero("database.statement_timeout", c.Database.StatementTimeout)
	if d := c.Database.StatementTimeout; d > 0 && d < time.Millisecond {
		v.add("database.statement_timeout", "must be at least \"1ms\" (PostgreSQL counts milliseconds), or 0 for the server's setting, not %q", formatDuration(d))
	}
	if d := c.Database.StartupWait; d < 0 {
		v.add("database.startup_wait", "must be a positive duration such as \"30s\", or 0 to exit at once when PostgreSQL cannot be reached, not %q", formatDuration(d))
	}
	if c.Database.AdminDSN != "" && !isPostgresURL(c.Database.AdminDSN) {
		v.add("database.admin_dsn", "must be a postgres:// or postgresql:// URL")
	}
	for _, k := range []struct{ key, val string }{{"database.owner_role", c.Database.OwnerRole}, {"database.app_role", c.Database.AppRole}} {
		if k.val != "" && !roleNameRE.MatchString(k.val) {
			v.add(k.key, "%q is not a role name tenantmcp creates: use 1-63 of [a-z0-9_], starting with a letter", k.val)
		}
	}
	if c.Database.OwnerRole != "" && c.Database.OwnerRole == c.Database.AppRole {
		v.add("database.app_role", "must differ from database.owner_role: the server must not own the tables it is isolated by")
	}
	for _, rule := range c.Auth.ScopeHierarchy {
		broad, narrow, ok := strings.Cut(rule, ">")
		if !ok || strings.TrimSpace(broad) == "" || len(strings.Fields(broad)) != 1 || len(strings.Fields(narrow)) == 0 {
			v.add("auth.scope_hierarchy", "rule %q: want \"BROAD > NARROW [NARROW...]\", e.g. \"admin > documents:write\"", rule)
		}
	}
	v.positiveDuration("registry.cache_ttl", c.Registry.CacheTTL)
	v.positiveDuration("registry.negative_cache_ttl", c.Registry.NegativeCacheTTL)
	if c.Registry.CacheSize <= 0 {
		v.add("registry.cache_size", "must be more than 0, not %d", c.Registry.CacheSize)
	}
	v.nonNegative("auth.multi_tenant.default_rate_limit", int64(mt.DefaultRateLimit))
	v.nonNegative("auth.multi_tenant.rate_limit_burst", int64(mt.RateLimitBurst))

	rl := c.RateLimit
	if v.oneOf("ratelimit.backend", rl.Backend, "memory", "redis") && rl.Backend == "redis" && rl.RedisURL == "" {
		v.add("ratelimit.redis_url", `required when ratelimit.backend = "redis": set it (or TENANTMCP_RATELIMIT_REDIS_URL) to a URL such as "redis://host:6379/0"`)
	}
	if rl.RedisURL != "" {
		v.redisURL("ratelimit.redis_url", rl.RedisURL)
	}
	v.oneOf("ratelimit.on_redis_error", rl.OnRedisError, "open", "closed")
	v.nonNegative("ratelimit.per_user_rate_limit", int64(rl.PerUserRateLimit))
	v.nonNegative("ratelimit.max_concurrent_per_tenant", int64(rl.MaxConcurrentPerTenant))
	if total := c.Server.MaxConcurrentRequests; rl.MaxConcurrentPerTenant > 0 && total > 0 && rl.MaxConcurrentPerTenant >= total {
		v.add("ratelimit.max_concurrent_per_tenant", "must be less than server.max_concurrent_requests (%d), not %d: one tenant could hold every request slot of a replica", total, rl.MaxConcurrentPerTenant)
	}

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	if c.Log.Format != "" { // "": the command's default
		v.oneOf("log.format", c.Log.Format, "text", "json")
	}
	return v.errs
}

func (c *Config) validateServer(v *validator) {
	s := c.Server
	host, port, err := net.SplitHostPort(s.Listen)
	listenOK := err == nil
	if listenOK {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			listenOK = false
		}
	}
	if !listenOK {
		v.add("server.listen", "%s is not host:port, such as \"127.0.0.1:8080\" or \":8080\"", strconv.Quote(truncate(s.Listen)))
	}
	if s.PublicURL != "" {
		if u := v.httpURL("server.public_url", s.PublicURL, false); u != nil && isUnspecifiedHost(u.Hostname()) {
			v.add("server.public_url", "%s is not an address clients can reach: use the server's public host name", strconv.Quote(truncate(s.PublicURL)))
		}
	} else if listenOK && isUnspecifiedHost(host) && c.Auth.Enabled {
		v.add("server.public_url", "required when server.listen (%s) binds every interface: set it to the URL clients use, such as \"https://mcp.example.com\" (it defines the token audience and the protected resource URL)", strconv.Quote(s.Listen))
	}
	if s.DataDir == "" {
		v.add("server.data_dir", "must not be empty: it holds the SQLite registry, tenant databases and blobs")
	}
	v.positiveDuration("server.shutdown_timeout", s.ShutdownTimeout)
	if s.MaxBodyBytes <= 0 {
		v.add("server.max_body_bytes", "must be more than 0, not %d", s.MaxBodyBytes)
	}
	v.positiveDuration("server.read_header_timeout", s.ReadHeaderTimeout)
	v.positiveDuration("server.read_timeout", s.ReadTimeout)
	v.positiveDuration("server.write_timeout", s.WriteTimeout)
	v.positiveDuration("server.idle_timeout", s.IdleTimeout)
	if s.MaxBodyReadsPerTenant <= 0 {
		v.add("server.max_body_reads_per_tenant", "must be more than 0, not %d", s.MaxBodyReadsPerTenant)
	}
	if s.MaxHeaderBytes < 4096 || s.MaxHeaderBytes > 16<<20 {
		v.add("server.max_header_bytes", "must be between 4096 (a bearer token and the MCP headers need a few KiB) and 16777216, not %d", s.MaxHeaderBytes)
	}
	if s.MaxJSONDepth < 8 || s.MaxJSONDepth > 10000 {
		v.add("server.max_json_depth", "must be between 8 (MCP messages themselves nest 3 to 4 levels) and 10000 (the JSON decoder's own limit), not %d", s.MaxJSONDepth)
	}
	if s.MaxArgumentBytes <= 0 {
		v.add("server.max_argument_bytes", "must be more than 0, not %d", s.MaxArgumentBytes)
	} else if s.MaxBodyBytes > 0 && s.MaxArgumentBytes > s.MaxBodyBytes {
		v.add("server.max_argument_bytes", "must be at most server.max_body_bytes (%d), not %d: arguments arrive in the request body; lower it or raise server.max_body_bytes", s.MaxBodyBytes, s.MaxArgumentBytes)
	}
	v.nonNegative("server.max_concurrent_requests", int64(s.MaxConcurrentRequests))
	v.nonNegative("server.max_concurrent_admin_requests", int64(s.MaxConcurrentAdminRequests))
	v.nonNegative("server.max_conns_per_client", int64(s.MaxConnsPerClient))
	for _, o := range s.AllowedOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "") {
			v.add("server.allowed_origins", "%s is not an origin: want scheme://host[:port] such as \"https://app.example.com\", or \"*\"", strconv.Quote(truncate(o)))
		}
	}
	v.nonNegative("server.metrics_top_tenants", int64(s.MetricsTopTenants))
	if s.HistoryTenants <= 0 {
		v.add("server.history_tenants", "must be more than 0, not %d", s.HistoryTenants)
	}
	if s.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(s.MetricsListen); err != nil || port == "" {
			v.add("server.metrics_listen", "%s is not host:port, such as \"127.0.0.1:9464\"", strconv.Quote(truncate(s.MetricsListen)))
		} else if s.MetricsListen == s.Listen {
			v.add("server.metrics_listen", "must differ from server.listen (%s): metrics are never served on the public listener", strconv.Quote(s.Listen))
		}
	}
	if !c.Auth.Enabled && listenOK && !isLoopbackHost(host) {
		shown := s.Listen
		if isUnspecifiedHost(host) {
			shown += " (every interface)"
		}
		v.add("auth.enabled", "auth.enabled = false serves without tokens and is for local use only: listen on 127.0.0.1 or ::1, not %s", shown)
	}
}

func (c *Config) validateAuth(v *validator) {
	a := c.Auth
	mt := a.MultiTenant
	providerOK := false
	if a.Enabled || a.Provider != "" {
		providerOK = v.oneOf("auth.provider", a.Provider, Providers...)
	}

	if a.Enabled {
		if a.Domain == "" && a.Issuer == "" {
			v.add("auth.domain", "required when auth.enabled = true: set auth.domain (or auth.issuer) to your identity provider, such as %s", domainExample(a.Provider))
		}
		if providerOK && a.Provider == ProviderCognito && a.Audience == "" {
			v.add("auth.audience", "required for provider \"cognito\": set it to the app client id (Cognito access tokens carry client_id, not aud)")
		}
		if providerOK && mt.Enabled && c.EffectiveTenantClaim() == "" {
			v.add("auth.multi_tenant.tenant_claim", "required for provider %q with multi-tenancy: name the claim that carries the tenant id, such as \"tenant_id\" or \"organization.id\"", a.Provider)
		}
		if auth.IsMultiDirectory(a.Provider, a.Domain) && !mt.Enabled && a.Issuer == "" {
			v.add("auth.domain", "%q accepts tokens from any Entra directory: enable auth.multi_tenant, or set auth.domain to your directory (tenant) id", a.Domain)
		}
	}
	if a.Domain != "" {
		c.validateDomain(v)
	}
	if a.Issuer != "" {
		v.issuerURL("auth.issuer", a.Issuer)
	}
	if a.JWKSURL != "" {
		v.issuerURL("auth.jwks_url", a.JWKSURL)
	}
	if strings.TrimSpace(a.Audience) != a.Audience {
		v.add("auth.audience", "%s has leading or trailing spaces", strconv.Quote(truncate(a.Audience)))
	}
	for _, s := range a.AuthorizationServers {
		v.httpURL("auth.authorization_servers", s, false)
	}

	if len(a.Algorithms) == 0 {
		v.add("auth.algorithms", "must name at least one of %s", strings.Join(auth.Algorithms, ", "))
	}
	for _, alg := range a.Algorithms {
		if err := auth.CheckAlgorithm(truncate(alg)); err != nil {
			v.add("auth.algorithms", "%s", err.Error())
		}
	}
	if a.Leeway < 0 || a.Leeway > maxLeeway {
		v.add("auth.leeway", "must be between 0s and %s, not %q: a larger leeway accepts expired tokens", formatDuration(maxLeeway), formatDuration(a.Leeway))
	}
	v.claim("auth.user_claim", a.UserClaim)
	v.claim("auth.tenant_name_claim", a.TenantNameClaim)
	for _, s := range a.ScopeClaims {
		if s == "" {
			v.add("auth.scope_claims", "must not contain an empty claim name")
		}
		v.claim("auth.scope_claims", s)
	}
	if a.TokenType != "" {
		if err := auth.CheckTokenType(a.TokenType); err != nil {
			v.add("auth.token_type", "%s", err)
		}
	}
	fixed := c.preset().RequiredClaims
	seen := map[string]bool{}
	for _, e := range a.RequiredClaims {
		name, value, ok := strings.Cut(e, "=")
		if !ok || name == "" || value == "" {
			v.add("auth.required_claims", "%s is not \"claim=value\", such as \"idtyp=user\"", strconv.Quote(truncate(e)))
			continue
		}
		v.claim("auth.required_claims", name)
		if seen[name] {
			v.add("auth.required_claims", "claim %s is listed twice", strconv.Quote(truncate(name)))
		}
		seen[name] = true
		if want, isFixed := fixed[name]; isFixed && want != value {
			v.add("auth.required_claims", "%s: the %s preset requires %s=%s", strconv.Quote(truncate(e)), a.Provider, name, want)
		}
	}
	v.nonNegative("auth.token_cache_size", int64(a.TokenCacheSize))
	v.positiveDuration("auth.token_cache_ttl", a.TokenCacheTTL)

	v.claim("auth.multi_tenant.tenant_claim", mt.TenantClaim)
	if mt.Isolation != "" && v.oneOf("auth.multi_tenant.isolation", mt.Isolation, Isolations...) {
		if (mt.Isolation == IsolationRLS || mt.Isolation == IsolationSchema) && !c.UsesPostgres() {
			v.add("auth.multi_tenant.isolation", "%q needs PostgreSQL: set database.dsn (or TENANTMCP_DATABASE_DSN) to a postgres:// URL", mt.Isolation)
		}
	}
}

func domainExample(provider string) string {
	switch provider {
	case ProviderCognito:
		return `"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"`
	case ProviderEntra:
		return `your directory (tenant) id or "organizations"`
	case ProviderGeneric:
		return `"idp.example.com"`
	}
	return `"your-tenant.auth0.com"`
}

// validateDomain checks auth.domain with the verifier's own derivation
// (auth.ProviderEndpoints), so the two cannot disagree.
func (c *Config) validateDomain(v *validator) {
	if !slices.Contains(Providers, c.Auth.Provider) {
		return // auth.provider's error says it all
	}
	if _, _, err := auth.ProviderEndpoints(c.Auth.Provider, c.Auth.Domain); err != nil {
		v.add("auth.domain", "%s: use a domain such as %s, or set auth.issuer to the full URL", strings.TrimPrefix(err.Error(), "auth: "), domainExample(c.Auth.Provider))
	}
}

func (c *Config) validateAudit(v *validator) {
	a := c.Audit
	v.positiveDuration("audit.retention", a.Retention)
	v.positiveDuration("audit.flush_interval", a.FlushInterval)
	v.positiveDuration("audit.max_wait", a.MaxWait)
	v.positiveDuration("audit.checkpoint_interval", a.CheckpointInterval)
	v.positiveDuration("audit.store_timeout", a.StoreTimeout)
	if a.QueueSize <= 0 {
		v.add("audit.queue_size", "must be more than 0, not %d", a.QueueSize)
	}
	if a.BatchSize <= 0 || a.BatchSize > a.QueueSize && a.QueueSize > 0 {
		v.add("audit.batch_size", "must be more than 0 and at most audit.queue_size (%d), not %d", a.QueueSize, a.BatchSize)
	}
	if a.LogTool && a.LogToolScope == "" {
		v.add("audit.log_tool_scope", "must name a scope when audit.log_tool = true: a tenant's audit trail is not for every token")
	}
	if a.LogTool && !a.Enabled {
		v.add("audit.log_tool", "needs audit.enabled = true")
	}
}

func (c *Config) validateLifecycle(v *validator) {
	l := c.Lifecycle
	v.positiveDuration("lifecycle.retention", l.Retention)
	v.positiveDuration("lifecycle.reconcile_interval", l.ReconcileInterval)
	if v.oneOf("lifecycle.archives", l.Archives, "fs", "s3") && l.Archives == "s3" {
		if c.Storage.Blob != "s3" {
			v.add("lifecycle.archives", `"s3" uses the storage section's S3 bucket: set storage.blob = "s3" (and storage.s3_bucket), or use "fs"`)
		}
		if l.ArchiveS3Prefix != "" && !strings.HasSuffix(l.ArchiveS3Prefix, "/") {
			v.add("lifecycle.archive_s3_prefix", "must end in \"/\", not %q", l.ArchiveS3Prefix)
		}
	}
}

func (c *Config) validateAdmin(v *validator) {
	a := c.Admin
	v.positiveDuration("admin.impersonation_ttl", a.ImpersonationTTL)
	v.positiveDuration("admin.max_impersonation_ttl", a.MaxImpersonationTTL)
	if a.ImpersonationTTL > 0 && a.ImpersonationTTL < time.Minute {
		v.add("admin.impersonation_ttl", "must be at least 1m, not %s", a.ImpersonationTTL)
	}
	if a.ImpersonationTTL > a.MaxImpersonationTTL && a.MaxImpersonationTTL > 0 {
		v.add("admin.impersonation_ttl", "must be at most admin.max_impersonation_ttl (%s), not %s", a.MaxImpersonationTTL, a.ImpersonationTTL)
	}
	if a.Scope == "" {
		v.add("admin.scope", "must name the admin scope (default %q)", server.DefaultAdminScope)
	} else if strings.ContainsAny(a.Scope, " \t\n") {
		v.add("admin.scope", "must be one scope, without spaces, not %q", a.Scope)
	}
	if a.Issuer != "" {
		v.issuerURL("admin.issuer", a.Issuer)
		if a.JWKSURL != "" {
			v.httpURL("admin.jwks_url", a.JWKSURL, false)
		}
		if a.Issuer == c.EffectiveIssuer() {
			v.add("admin.issuer", "is the tenants' issuer: leave it empty to use the tenants' identity provider, or name the operators' own")
		}
	}
}

func (c *Config) validateConsole(v *validator) {
	k := c.Console
	v.positiveDuration("console.session_ttl", k.SessionTTL)
	if k.RedirectURL != "" {
		switch u := v.httpURL("console.redirect_url", k.RedirectURL, false); {
		case u == nil:
		case u.Path != "/console/callback":
			v.add("console.redirect_url", "must end in /console/callback (where the console receives the sign-in), not %q", u.Path)
		case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
			v.add("console.redirect_url", "must use https:// (http:// only on a loopback host): the session cookie is Secure")
		}
	}
	if !k.Enabled {
		return
	}
	switch {
	case !c.Admin.Enabled:
		v.add("console.enabled", "needs admin.enabled = true: the console is for admins, and signs them in with the admin identity provider")
	case !c.Auth.Enabled:
		v.add("console.enabled", "needs auth.enabled = true: without authentication there are no admins to sign in")
	}
	if k.ClientID == "" {
		v.add("console.client_id", "required when console.enabled = true: register the console as a client at the admin identity provider (redirect URL %s) and set its client id", c.EffectiveConsoleRedirectURL())
	}
}

func (c *Config) validateTracing(v *validator) {
	t := c.Tracing
	switch {
	case t.Endpoint != "":
		v.httpURL("tracing.endpoint", t.Endpoint, false)
	case t.Enabled:
		v.add("tracing.endpoint", `required when tracing.enabled = true: set it (or TENANTMCP_TRACING_ENDPOINT) to the collector's OTLP/HTTP URL, such as "http://127.0.0.1:4318"`)
	}
	if !(t.SampleRatio >= 0 && t.SampleRatio <= 1) { // NaN too
		v.add("tracing.sample_ratio", "must be between 0 and 1 (a fraction of traces, such as 0.1), not %s", formatFloat(t.SampleRatio))
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		v.add("tracing.service_name", "must not be empty (default %q)", DefaultTracingServiceName)
	}
	// Values are credentials: entries are named by position, never shown.
	seen := map[string]bool{}
	for i, e := range t.Headers {
		name, value, ok := strings.Cut(e, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok || !validHeaderName(name) || strings.TrimSpace(value) == "":
			v.add("tracing.headers", `entry %d is not "Name=value" with an HTTP header name, such as "Authorization=Bearer KEY"`, i+1)
		case strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }):
			v.add("tracing.headers", "entry %d (%s): the value has control characters", i+1, name)
		case seen[strings.ToLower(name)]:
			v.add("tracing.headers", "entry %d: header %s is listed twice", i+1, name)
		default:
			seen[strings.ToLower(name)] = true
		}
	}
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110
// token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func (c *Config) validateStorage(v *validator) {
	st := c.Storage
	if v.oneOf("storage.blob", st.Blob, "fs", "s3") && st.Blob == "s3" {
		if st.S3Bucket == "" {
			v.add("storage.s3_bucket", `required when storage.blob = "s3": set it (or TENANTMCP_STORAGE_S3_BUCKET) to the bucket name`)
		}
		if st.S3Region == "" {
			v.add("storage.s3_region", `required when storage.blob = "s3"`)
		}
	}
	if st.S3Endpoint != "" {
		v.httpURL("storage.s3_endpoint", st.S3Endpoint, false)
	}
	if st.RedisURL != "" {
		v.redisURL("storage.redis_url", st.RedisURL)
	}
}
