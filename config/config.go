package config

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/server"
)

// Identity provider presets (auth.provider).
const (
	ProviderAuth0   = auth.ProviderAuth0
	ProviderCognito = auth.ProviderCognito
	ProviderEntra   = auth.ProviderEntra
	ProviderGeneric = auth.ProviderGeneric
)

// Tenant isolation strategies (auth.multi_tenant.isolation).
const (
	// IsolationRLS: one PostgreSQL schema shared by all tenants; every row
	// carries the tenant id and row-level security policies filter by the
	// tenant set for the transaction. Needs database.dsn.
	IsolationRLS = "row_level_security"
	// IsolationSchema: one PostgreSQL schema per tenant. Needs database.dsn.
	IsolationSchema = "schema_per_tenant"
	// IsolationDatabase: one embedded SQLite database file per tenant under
	// server.data_dir.
	IsolationDatabase = "database_per_tenant"
	// IsolationPrefix: key/value and blob storage with every key under the
	// tenant's own prefix (filesystem or S3 blobs, optional Redis key/value).
	IsolationPrefix = "prefix"
)

// Providers lists the valid values of auth.provider.
var Providers = []string{ProviderAuth0, ProviderCognito, ProviderEntra, ProviderGeneric}

// Isolations lists the valid values of auth.multi_tenant.isolation.
var Isolations = []string{IsolationRLS, IsolationSchema, IsolationDatabase, IsolationPrefix}

// Config is a whole tenantmcp deployment configuration. Obtain one from
// Default, Load or Parse; Load and Parse return it with derived defaults
// applied and validated.
type Config struct {
	Server    ServerConfig
	Auth      AuthConfig
	Database  DatabaseConfig
	Registry  RegistryConfig
	RateLimit RateLimitConfig
	Storage   StorageConfig
	Audit     AuditConfig
	Admin     AdminConfig
	Console   ConsoleConfig
	Lifecycle LifecycleConfig
	Tracing   TracingConfig
	Log       LogConfig
}

// LifecycleConfig is the [lifecycle] section: archives, purges and the
// background job that finishes interrupted operations.
type LifecycleConfig struct {
	Archives          string
	ArchiveDir        string
	ArchiveS3Prefix   string
	Retention         time.Duration
	ReconcileInterval time.Duration
}

// EffectiveArchiveDir is where archives go with lifecycle.archives =
// "fs": lifecycle.archive_dir, else "archives" under server.data_dir.
func (c *Config) EffectiveArchiveDir() string {
	if c.Lifecycle.ArchiveDir != "" {
		return c.Lifecycle.ArchiveDir
	}
	return filepath.Join(c.Server.DataDir, "archives")
}

// AdminConfig is the [admin] section: who may administer the deployment.
type AdminConfig struct {
	Enabled             bool
	Issuer              string
	Audience            string
	JWKSURL             string
	Scope               string
	ImpersonationTTL    time.Duration
	MaxImpersonationTTL time.Duration
}

// ConsoleConfig is the [console] section: the operator console at
// /console/, where admins sign in at the admin identity provider.
type ConsoleConfig struct {
	Enabled      bool
	ClientID     string
	ClientSecret string
	RedirectURL  string
	SessionTTL   time.Duration
}

// DefaultConsoleSessionTTL is console.session_ttl's default.
const DefaultConsoleSessionTTL = 8 * time.Hour

// EffectiveConsoleRedirectURL is the console's sign-in callback:
// console.redirect_url, else the public URL + /console/callback.
func (c *Config) EffectiveConsoleRedirectURL() string {
	if c.Console.RedirectURL != "" {
		return c.Console.RedirectURL
	}
	return c.PublicBaseURL() + "/console/callback"
}

// AdminWithoutIssuer explains why admin.enabled has no effect, or is "":
// with a multi-directory Entra domain every customer directory issues its
// own tokens (and could grant itself the admin scope), so admins must
// sign in at an admin.issuer of their own.
func (c *Config) AdminWithoutIssuer() string {
	if c.Admin.Enabled && c.Admin.Issuer == "" && c.Auth.Enabled && auth.IsMultiDirectory(c.Auth.Provider, c.Auth.Domain) {
		return fmt.Sprintf("administration is off: with the multi-directory Entra domain %q every customer directory issues its own tokens and could grant itself %q; set admin.issuer to your operators' own tenant to enable it", c.Auth.Domain, c.Admin.Scope)
	}
	return ""
}

// SeparateAdminIssuer reports whether admins sign in at an identity
// provider of their own (admin.issuer set) rather than the tenants'.
func (c *Config) SeparateAdminIssuer() bool { return c.Admin.Issuer != "" }

// EffectiveAdminIssuer is the iss of admin tokens: admin.issuer, else the
// tenants' issuer.
func (c *Config) EffectiveAdminIssuer() string {
	if c.Admin.Issuer != "" {
		return c.Admin.Issuer
	}
	return c.EffectiveIssuer()
}

// EffectiveAdminAudience is the audience admin tokens must carry when
// admin.issuer is set: admin.audience, else the resource URL.
func (c *Config) EffectiveAdminAudience() string {
	if c.Admin.Audience != "" {
		return c.Admin.Audience
	}
	return c.ResourceURL()
}

// EffectiveAdminJWKSURL is where the admin issuer's keys are fetched:
// admin.jwks_url, else admin.issuer + "/.well-known/jwks.json".
func (c *Config) EffectiveAdminJWKSURL() string {
	if c.Admin.JWKSURL != "" {
		return c.Admin.JWKSURL
	}
	return strings.TrimRight(c.Admin.Issuer, "/") + "/.well-known/jwks.json"
}

// AuditConfig is the [audit] section.
type AuditConfig struct {
	Enabled            bool
	SigningKeyFile     string
	Retention          time.Duration
	StoreArguments     bool
	LogTool            bool
	LogToolScope       string
	QueueSize          int
	BatchSize          int
	FlushInterval      time.Duration
	MaxWait            time.Duration
	CheckpointInterval time.Duration
	StoreTimeout       time.Duration
}

// TracingConfig is the [tracing] section.
type TracingConfig struct {
	// Enabled is tracing.enabled: export OpenTelemetry spans of MCP
	// requests and tool calls.
	Enabled bool
	// Endpoint is tracing.endpoint: the collector's OTLP/HTTP URL. Use
	// TracesURL for the URL spans are sent to.
	Endpoint string
	// SampleRatio is tracing.sample_ratio, from 0 to 1.
	SampleRatio float64
	// ServiceName is tracing.service_name (service.name of the spans).
	ServiceName string
	// Headers is tracing.headers: "Name=value" entries sent with every
	// export. Use TracingHeaders for the parsed map.
	Headers []string
}

// ServerConfig is the [server] section.
type ServerConfig struct {
	// Listen is the host:port the HTTP server binds.
	Listen string
	// PublicURL is the URL clients reach the server at (scheme, host and an
	// optional path prefix). Empty means "http://" + Listen.
	PublicURL string
	// DataDir holds the SQLite registry, per-tenant databases, blobs and
	// the dev issuer key.
	DataDir string
	// StatefulSessions turns on MCP sessions (Mcp-Session-Id). Off by
	// default: every request stands alone, so replicas need no affinity.
	StatefulSessions bool
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown.
	ShutdownTimeout time.Duration
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds the arrival of a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the arrival of a request's body.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of a response to the client.
	WriteTimeout time.Duration
	// IdleTimeout bounds a kept-alive connection's wait for its next
	// request.
	IdleTimeout time.Duration
	// MaxBodyReadsPerTenant caps a tenant's requests whose body is still
	// arriving, per replica.
	MaxBodyReadsPerTenant int
	// MaxHeaderBytes caps a request's request line and header fields.
	MaxHeaderBytes int
	// MaxJSONDepth caps how deeply a request body's JSON nests.
	MaxJSONDepth int
	// MaxArgumentBytes caps a tool call's arguments (<= MaxBodyBytes).
	MaxArgumentBytes int64
	// MaxConcurrentRequests caps the requests in flight on a replica over
	// all tenants (0 = off).
	MaxConcurrentRequests int
	// MaxConcurrentAdminRequests caps the admin requests in flight on a
	// replica, apart from the tenants' (0 = off).
	MaxConcurrentAdminRequests int
	// MaxConnsPerClient caps the open connections from one client IP
	// address (0 = off).
	MaxConnsPerClient int
	// AllowedOrigins are the browser origins allowed besides the server's
	// own ("*" = any).
	AllowedOrigins []string
	// MetricsListen is the host:port of the private metrics listener; ""
	// serves no metrics.
	MetricsListen string
	// MetricsTopTenants is server.metrics_top_tenants: how many tenants
	// get a label of their own in the metrics (0 = none).
	MetricsTopTenants int
	// HistoryTenants is server.history_tenants: how many tenants the
	// in-memory metrics history of the console keeps.
	HistoryTenants int
}

// AuthConfig is the [auth] section.
type AuthConfig struct {
	// Enabled is auth.enabled.
	Enabled bool
	// Provider is auth.provider.
	Provider string
	// Domain is auth.domain.
	Domain string
	// Issuer is auth.issuer ("" = derived, see EffectiveIssuer).
	Issuer string
	// Audience is auth.audience ("" = derived, see EffectiveAudience).
	Audience string
	// JWKSURL is auth.jwks_url ("" = derived, see EffectiveJWKSURL).
	JWKSURL string
	// Algorithms is auth.algorithms.
	Algorithms []string
	// Leeway is auth.leeway.
	Leeway time.Duration
	// AuthorizationServers is auth.authorization_servers (empty = [issuer]).
	AuthorizationServers []string
	// ScopesSupported is auth.scopes_supported.
	ScopesSupported []string
	// UserClaim is auth.user_claim ("" = the preset's).
	UserClaim string
	// TenantNameClaim is auth.tenant_name_claim ("" = the preset's).
	TenantNameClaim string
	// ScopeClaims is auth.scope_claims (empty = the preset's).
	ScopeClaims []string
	// TokenType is auth.token_type: the JOSE header typ tokens must have
	// ("" = any but an ID token's).
	TokenType string
	// RequiredClaims is auth.required_claims: "claim=value" entries, added
	// to the preset's. Use EffectiveRequiredClaims for the merged map.
	RequiredClaims []string
	// TokenCacheSize is auth.token_cache_size (0 = no cache).
	TokenCacheSize int
	// TokenCacheTTL is auth.token_cache_ttl.
	TokenCacheTTL time.Duration
	// ScopeHierarchy is auth.scope_hierarchy: rules "BROAD > NARROW ...".
	// Use ScopeImplications for the parsed map.
	ScopeHierarchy []string
	MultiTenant    MultiTenantConfig
}

// MultiTenantConfig is the [auth.multi_tenant] section.
type MultiTenantConfig struct {
	// Enabled is auth.multi_tenant.enabled.
	Enabled bool
	// TenantClaim is auth.multi_tenant.tenant_claim ("" = the preset's).
	TenantClaim string
	// Isolation is auth.multi_tenant.isolation ("" = see EffectiveIsolation).
	Isolation string
	// DefaultRateLimit is requests per minute per tenant; 0 turns the
	// per-tenant limit off. Load and Parse set it to 0 when auth is
	// disabled and no rate-limit key was given (see applyLocalDefaults).
	DefaultRateLimit int
	// RateLimitBurst is how many requests a tenant may send at once; 0
	// means the rate limiter's default, ratelimit.DefaultBurst of the
	// tenant's rate (one minute's worth).
	RateLimitBurst int
}

// DatabaseConfig is the [database] section.
type DatabaseConfig struct {
	// DSN is a postgres:// URL; empty means embedded SQLite under DataDir.
	DSN string
	// MaxConns caps the PostgreSQL pool; 0 means the pgx default.
	MaxConns int
	// AcquireTimeout is database.acquire_timeout: how long a tenant
	// transaction waits for a free connection of the pool before its
	// request is refused with 503 and Retry-After; 0 waits as long as the
	// request lasts.
	AcquireTimeout time.Duration
	// StatementTimeout is database.statement_timeout: the
	// statement_timeout of every tenant transaction; 0 leaves the
	// server's.
	StatementTimeout time.Duration
	// StartupWait is database.startup_wait: how long "serve" keeps trying
	// to reach PostgreSQL when it cannot at start-up; 0 gives up at once.
	StartupWait time.Duration
	// AdminDSN is database.admin_dsn: a role that may create roles and
	// schemas, used by "db setup", "db migrate" and schema provisioning.
	// The server itself never connects with it.
	AdminDSN string
	// OwnerRole is database.owner_role: owns the tables. "" means
	// "<database>_owner", after the database database.dsn names (see
	// postgres.RoleNames; package app resolves it).
	OwnerRole string
	// AppRole is database.app_role: the role the server connects as. ""
	// means "<database>_app", like OwnerRole.
	AppRole string
}

// RegistryConfig is the [registry] section.
type RegistryConfig struct {
	// CacheTTL is registry.cache_ttl.
	CacheTTL time.Duration
	// NegativeCacheTTL is registry.negative_cache_ttl.
	NegativeCacheTTL time.Duration
	// CacheSize is registry.cache_size (> 0).
	CacheSize int
}

// RateLimitConfig is the [ratelimit] section.
type RateLimitConfig struct {
	// Backend is ratelimit.backend: "memory" or "redis".
	Backend string
	// RedisURL is ratelimit.redis_url.
	RedisURL string
	// OnRedisError is ratelimit.on_redis_error: "open" or "closed".
	OnRedisError string
	// PerUserRateLimit is ratelimit.per_user_rate_limit, requests per minute (0 = off).
	PerUserRateLimit int
	// MaxConcurrentPerTenant is ratelimit.max_concurrent_per_tenant (0 =
	// off; default DefaultMaxConcurrentPerTenant).
	MaxConcurrentPerTenant int
}

// StorageConfig is the [storage] section.
type StorageConfig struct {
	// Blob is storage.blob: "fs" or "s3".
	Blob string
	// S3Bucket is storage.s3_bucket.
	S3Bucket string
	// S3Endpoint is storage.s3_endpoint ("" = AWS).
	S3Endpoint string
	// S3Region is storage.s3_region.
	S3Region string
	// S3PathStyle is storage.s3_path_style.
	S3PathStyle bool
	// RedisURL is storage.redis_url ("" = no key/value store).
	RedisURL string
}

// LogConfig is the [log] section.
type LogConfig struct {
	// Level is log.level.
	Level string
	// Format is log.format: "text", "json", or "" for the command's
	// default (json for serve, text for dev).
	Format string
}

// DefaultMaxConcurrentPerTenant is ratelimit.max_concurrent_per_tenant's
// default: an eighth of server.max_concurrent_requests' default, so that a
// few tenants at their cap still leave room for the others.
const DefaultMaxConcurrentPerTenant = 64

// Default returns the built-in defaults: a loopback server with Auth0
// multi-tenant auth (domain still to be set), embedded SQLite, in-memory
// rate limits and filesystem blobs. Derived defaults (public URL, audience,
// tenant claim, isolation) are left empty; the Effective… methods
// compute them and Load/Parse fill them in.
func Default() *Config {
	return &Config{
		Server: ServerConfig{
			Listen:          "127.0.0.1:8080",
			DataDir:         "./tenantmcp-data",
			ShutdownTimeout: 15 * time.Second,
			MaxBodyBytes:    server.DefaultMaxBodyBytes,
			// The library's defaults, so that a key left out and a
			// server.Options field left zero mean the same.
			ReadHeaderTimeout:          server.DefaultReadHeaderTimeout,
			ReadTimeout:                server.DefaultReadTimeout,
			WriteTimeout:               server.DefaultWriteTimeout,
			IdleTimeout:                server.DefaultIdleTimeout,
			MaxBodyReadsPerTenant:      server.DefaultMaxBodyReadsPerTenant,
			MaxHeaderBytes:             server.DefaultMaxHeaderBytes,
			MaxJSONDepth:               server.DefaultMaxJSONDepth,
			MaxArgumentBytes:           server.DefaultMaxArgumentBytes,
			MaxConcurrentRequests:      server.DefaultMaxConcurrentRequests,
			MaxConcurrentAdminRequests: server.DefaultMaxConcurrentAdminRequests,
			MaxConnsPerClient:          server.DefaultMaxConnsPerClient,
			AllowedOrigins:             []string{},
			MetricsTopTenants:          server.DefaultMetricsTopTenants,
			HistoryTenants:             server.DefaultHistoryTenants,
		},
		Auth: AuthConfig{
			Enabled:              true,
			Provider:             ProviderAuth0,
			Algorithms:           slices.Clone(auth.DefaultAlgorithms),
			Leeway:               30 * time.Second,
			AuthorizationServers: []string{},
			ScopesSupported:      []string{},
			ScopeClaims:          []string{},
			RequiredClaims:       []string{},
			TokenCacheSize:       10000,
			TokenCacheTTL:        time.Minute,
			ScopeHierarchy:       []string{},
			MultiTenant: MultiTenantConfig{
				Enabled:          true,
				DefaultRateLimit: 100,
			},
		},
		Database: DatabaseConfig{
			// A request that waits a second for one of a few connections
			// finds the database overloaded (a read holds one for well under
			// a millisecond): refuse it rather than queue it.
			AcquireTimeout: time.Second,
			// Far below server.write_timeout, so a runaway statement ends
			// while its client still waits for the answer.
			StatementTimeout: 10 * time.Second,
			// Long enough for a database started beside the server (a
			// compose file, a pod's sidecar) to accept connections.
			StartupWait: 30 * time.Second,
		},
		Registry: RegistryConfig{
			CacheTTL:         30 * time.Second,
			NegativeCacheTTL: 5 * time.Second,
			CacheSize:        10000,
		},
		RateLimit: RateLimitConfig{
			Backend:                "memory",
			OnRedisError:           "open",
			MaxConcurrentPerTenant: DefaultMaxConcurrentPerTenant,
		},
		Storage: StorageConfig{
			Blob:     "fs",
			S3Region: "us-east-1",
		},
		Audit: AuditConfig{
			Enabled:            true,
			Retention:          DefaultAuditRetention,
			LogToolScope:       server.DefaultAuditLogScope,
			QueueSize:          audit.DefaultQueueSize,
			BatchSize:          audit.DefaultBatchSize,
			FlushInterval:      audit.DefaultFlushInterval,
			MaxWait:            audit.DefaultMaxWait,
			CheckpointInterval: audit.DefaultCheckpointInterval,
			StoreTimeout:       audit.DefaultStoreTimeout,
		},
		Lifecycle: LifecycleConfig{
			Archives:          "fs",
			ArchiveS3Prefix:   "archives/",
			Retention:         30 * 24 * time.Hour,
			ReconcileInterval: time.Minute,
		},
		Admin: AdminConfig{
			Enabled:             true,
			Scope:               server.DefaultAdminScope,
			ImpersonationTTL:    30 * time.Minute,
			MaxImpersonationTTL: 8 * time.Hour,
		},
		Console: ConsoleConfig{SessionTTL: DefaultConsoleSessionTTL},
		Tracing: TracingConfig{
			SampleRatio: 1,
			ServiceName: DefaultTracingServiceName,
			Headers:     []string{},
		},
		Log: LogConfig{
			Level: "info",
		},
	}
}

// DefaultTracingServiceName is tracing.service_name's default.
const DefaultTracingServiceName = "tenantmcp"

// tracesPath is the OTLP/HTTP path of traces, added to a tracing.endpoint
// without a path.
const tracesPath = "/v1/traces"

// TracesURL is the URL spans are exported to: tracing.endpoint, with
// "/v1/traces" added when it has no path (as OTEL_EXPORTER_OTLP_ENDPOINT
// is read), else as it is.
func (c *Config) TracesURL() string {
	e := c.Tracing.Endpoint
	u, err := url.Parse(e)
	if err != nil || strings.TrimSuffix(u.Path, "/") != "" {
		return e
	}
	u.Path = tracesPath
	return u.String()
}

// TracingHeaders parses tracing.headers into header name → value. Entries
// that are not "Name=value" are skipped (Validate reports them); nil when
// there are none.
func (c *Config) TracingHeaders() map[string]string {
	var out map[string]string
	for _, e := range c.Tracing.Headers {
		name, value, ok := strings.Cut(e, "=")
		if name = strings.TrimSpace(name); !ok || !validHeaderName(name) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = strings.TrimSpace(value)
	}
	return out
}

// DefaultAuditRetention is audit.retention's default: 400 days.
const DefaultAuditRetention = 400 * 24 * time.Hour

// Preset is what an identity provider preset reads from a token. The auth
// package applies these unless the matching auth.* key overrides them.
type Preset struct {
	// Provider is the auth.provider value.
	Provider string
	// TenantClaim holds the IdP's tenant identifier ("" = none: must be
	// configured).
	TenantClaim string
	// TenantNameClaim holds the tenant's display name ("" = none).
	TenantNameClaim string
	// UserClaim identifies the user.
	UserClaim string
	// ScopeClaims hold the granted permissions (space-separated string or
	// array).
	ScopeClaims []string
	// AudienceClaim is the claim checked against auth.audience: "aud", or
	// "client_id" for Cognito access tokens, which carry no aud.
	AudienceClaim string
	// RequiredClaims are the claim values every token must carry (cognito:
	// token_use = "access"), so that ID tokens are refused; nil = none.
	RequiredClaims map[string]string
}

// presets are auth's claim-map presets, seen from the configuration: one
// source of truth for which claims each provider's tokens carry.
var presets = func() []Preset {
	var out []Preset
	for _, name := range Providers {
		m, err := auth.Preset(name)
		if err != nil {
			panic("config: auth has no preset " + name)
		}
		p := Preset{Provider: name, TenantClaim: m.Tenant, TenantNameClaim: m.TenantName, UserClaim: cmp.Or(m.User, "sub"),
			ScopeClaims: m.Scopes, AudienceClaim: "aud", RequiredClaims: m.RequiredClaims}
		if m.ClientIDAudience {
			p.AudienceClaim = "client_id"
		}
		out = append(out, p)
	}
	return out
}()

// Presets returns the identity provider presets, in the order of Providers.
func Presets() []Preset {
	out := make([]Preset, len(presets))
	for i, p := range presets {
		p.ScopeClaims = slices.Clone(p.ScopeClaims)
		p.RequiredClaims = maps.Clone(p.RequiredClaims)
		out[i] = p
	}
	return out
}

// LookupPreset returns the preset for provider.
func LookupPreset(provider string) (Preset, bool) {
	for _, p := range presets {
		if p.Provider == provider {
			p.ScopeClaims = slices.Clone(p.ScopeClaims)
			p.RequiredClaims = maps.Clone(p.RequiredClaims)
			return p, true
		}
	}
	return Preset{}, false
}

func (c *Config) preset() Preset {
	p, _ := LookupPreset(c.Auth.Provider)
	return p
}

// EntraTenantPlaceholder stands for the token's tid inside the issuer that
// EffectiveIssuer derives for an Entra multi-organisation domain
// ("organizations" or "common"): the verifier substitutes the token's tid
// and compares the result with the token's iss.
const EntraTenantPlaceholder = "{tenantid}"

// domain returns auth.domain without an "https://" prefix, surrounding
// space or trailing slashes (the auth package accepts the same forms).
func (c *Config) domain() string {
	d := strings.TrimSpace(c.Auth.Domain)
	if len(d) >= len("https://") && strings.EqualFold(d[:len("https://")], "https://") {
		d = d[len("https://"):]
	}
	return strings.TrimRight(d, "/")
}

// PublicBaseURL returns server.public_url without a trailing slash, or
// "http://" + server.listen when it is not set.
func (c *Config) PublicBaseURL() string {
	if c.Server.PublicURL != "" {
		return strings.TrimRight(c.Server.PublicURL, "/")
	}
	return "http://" + c.Server.Listen
}

// ResourceURL is the MCP endpoint's URL: the public URL + "/mcp". It is the
// OAuth protected resource identifier and the default token audience.
func (c *Config) ResourceURL() string { return c.PublicBaseURL() + "/mcp" }

// EffectiveAudience is the audience tokens must carry: auth.audience, else
// the resource URL. For Cognito there is no derived default (the audience is
// the app client id, checked against client_id) and it returns
// auth.audience, possibly "".
func (c *Config) EffectiveAudience() string {
	if c.Auth.Audience != "" || c.Auth.Provider == ProviderCognito {
		return c.Auth.Audience
	}
	return c.ResourceURL()
}

// EffectiveIssuer is the issuer tokens must carry: auth.issuer, else derived
// from provider and domain (the same derivation as auth.ProviderEndpoints):
//
//	auth0    https://DOMAIN/
//	cognito  https://DOMAIN              (DOMAIN = cognito-idp.REGION.amazonaws.com/POOL_ID)
//	entra    https://login.microsoftonline.com/DOMAIN/v2.0
//	         https://login.microsoftonline.com/{tenantid}/v2.0 for "organizations"/"common"
//	generic  https://DOMAIN/
//
// It returns "" when neither issuer nor domain is set.
func (c *Config) EffectiveIssuer() string {
	if c.Auth.Issuer != "" {
		return c.Auth.Issuer
	}
	iss, _ := c.endpoints()
	return iss
}

// EffectiveJWKSURL is where signing keys are fetched: auth.jwks_url, else
//
//	auth0, cognito, generic  ISSUER/.well-known/jwks.json (ISSUER without trailing slash)
//	entra                    https://login.microsoftonline.com/DOMAIN/discovery/v2.0/keys
//	                         (.../common/discovery/v2.0/keys for "organizations"/"common")
//
// With an explicit auth.issuer it is that issuer + "/.well-known/jwks.json".
func (c *Config) EffectiveJWKSURL() string {
	a := c.Auth
	if a.JWKSURL != "" {
		return a.JWKSURL
	}
	if a.Issuer != "" {
		return strings.TrimRight(a.Issuer, "/") + "/.well-known/jwks.json"
	}
	_, jwks := c.endpoints()
	return jwks
}

// endpoints derives issuer and JWKS URL from provider and domain with
// auth.ProviderEndpoints (the verifier's own derivation). A domain it
// cannot use gives "", "": Validate reports why.
func (c *Config) endpoints() (issuer, jwksURL string) {
	if c.domain() == "" {
		return "", ""
	}
	issuer, jwksURL, err := auth.ProviderEndpoints(c.Auth.Provider, c.Auth.Domain)
	if err != nil {
		return "", ""
	}
	return issuer, jwksURL
}

// EffectiveAuthorizationServers are the authorization servers advertised in
// /.well-known/oauth-protected-resource: auth.authorization_servers, else
// the issuer (for Entra "organizations"/"common":
// https://login.microsoftonline.com/DOMAIN/v2.0).
func (c *Config) EffectiveAuthorizationServers() []string {
	if len(c.Auth.AuthorizationServers) > 0 {
		return slices.Clone(c.Auth.AuthorizationServers)
	}
	if c.Auth.Issuer == "" && c.domain() != "" {
		if s, err := auth.ProviderAuthorizationServer(c.Auth.Provider, c.Auth.Domain); err == nil {
			return []string{s}
		}
	}
	if iss := c.EffectiveIssuer(); iss != "" {
		return []string{iss}
	}
	return []string{}
}

// EffectiveTenantClaim is the claim holding the IdP's tenant identifier:
// auth.multi_tenant.tenant_claim, else the preset's (auth0 "org_id",
// cognito "custom:tenant_id", entra "tid"; generic has none). It may be a
// dotted path ("organization.id").
func (c *Config) EffectiveTenantClaim() string {
	if c.Auth.MultiTenant.TenantClaim != "" {
		return c.Auth.MultiTenant.TenantClaim
	}
	return c.preset().TenantClaim
}

// EffectiveTenantNameClaim is auth.tenant_name_claim, else the preset's.
func (c *Config) EffectiveTenantNameClaim() string {
	if c.Auth.TenantNameClaim != "" {
		return c.Auth.TenantNameClaim
	}
	return c.preset().TenantNameClaim
}

// EffectiveUserClaim is auth.user_claim, else the preset's ("sub"; "oid"
// for Entra).
func (c *Config) EffectiveUserClaim() string {
	if c.Auth.UserClaim != "" {
		return c.Auth.UserClaim
	}
	if u := c.preset().UserClaim; u != "" {
		return u
	}
	return "sub"
}

// EffectiveRequiredClaims are the claim values every token must carry: the
// preset's (cognito token_use = "access") plus the auth.required_claims
// entries ("claim=value"). A preset's value cannot be overridden, and
// entries that are not claim=value are skipped (Validate reports both).
// nil when there are none.
func (c *Config) EffectiveRequiredClaims() map[string]string {
	fixed := c.preset().RequiredClaims
	out := maps.Clone(fixed)
	for _, e := range c.Auth.RequiredClaims {
		name, value, ok := strings.Cut(e, "=")
		if _, isFixed := fixed[name]; !ok || name == "" || value == "" || isFixed {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = value
	}
	return out
}

// EffectiveScopeClaims is auth.scope_claims, else the preset's.
func (c *Config) EffectiveScopeClaims() []string {
	if len(c.Auth.ScopeClaims) > 0 {
		return slices.Clone(c.Auth.ScopeClaims)
	}
	if s := c.preset().ScopeClaims; len(s) > 0 {
		return s
	}
	return []string{"scope"}
}

// EffectiveAudienceClaim is the claim compared with the audience: "aud", or
// "client_id" for Cognito.
func (c *Config) EffectiveAudienceClaim() string {
	if a := c.preset().AudienceClaim; a != "" {
		return a
	}
	return "aud"
}

// EffectiveIsolation is auth.multi_tenant.isolation, else
// database_per_tenant without database.dsn and row_level_security with it.
func (c *Config) EffectiveIsolation() string {
	if c.Auth.MultiTenant.Isolation != "" {
		return c.Auth.MultiTenant.Isolation
	}
	if c.Database.DSN != "" {
		return IsolationRLS
	}
	return IsolationDatabase
}

// UsesPostgres reports whether database.dsn names a PostgreSQL server.
func (c *Config) UsesPostgres() bool { return isPostgresURL(c.Database.DSN) }

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// applyDerived fills the keys whose default depends on other keys, so a
// loaded Config can be read field by field.
func (c *Config) applyDerived() {
	if c.Server.PublicURL == "" {
		c.Server.PublicURL = c.PublicBaseURL()
	}
	if c.Auth.Audience == "" {
		c.Auth.Audience = c.EffectiveAudience()
	}
	if c.Auth.MultiTenant.TenantClaim == "" {
		c.Auth.MultiTenant.TenantClaim = c.EffectiveTenantClaim()
	}
	if c.Auth.MultiTenant.Isolation == "" {
		c.Auth.MultiTenant.Isolation = c.EffectiveIsolation()
	}
}

// fitArgumentLimit lowers server.max_argument_bytes, when it was not
// given, to a smaller server.max_body_bytes: arguments arrive in the body.
// It runs before validation (set reports whether a key was given).
func (c *Config) fitArgumentLimit(set func(key string) bool) {
	if !set("server.max_argument_bytes") && c.Server.MaxBodyBytes > 0 {
		c.Server.MaxArgumentBytes = min(c.Server.MaxArgumentBytes, c.Server.MaxBodyBytes)
	}
}

// rateLimitKeys are the keys that ask for a per-tenant rate limit.
var rateLimitKeys = []string{"auth.multi_tenant.default_rate_limit", "auth.multi_tenant.rate_limit_burst"}

// applyLocalDefaults applies the defaults that depend on whether a key was
// given at all (set reports whether the file or the environment set it).
// With auth disabled the server is loopback-only local use, such as a
// client or conformance suite on the developer's machine: the
// default_rate_limit default of 100/min does not apply there, only a rate
// limit configured explicitly does.
func (c *Config) applyLocalDefaults(set func(key string) bool) {
	if c.Auth.Enabled || slices.ContainsFunc(rateLimitKeys, set) {
		return
	}
	c.Auth.MultiTenant.DefaultRateLimit = 0
}

// isLoopbackHost reports whether host (from host:port) only accepts local
// connections.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isUnspecifiedHost reports whether host binds every interface.
func isUnspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// ScopeImplications parses auth.scope_hierarchy into broad scope → the
// narrower scopes it implies (directly; the server follows chains).
func (c *Config) ScopeImplications() map[string][]string {
	out := map[string][]string{}
	for _, rule := range c.Auth.ScopeHierarchy {
		broad, narrow, ok := strings.Cut(rule, ">")
		if !ok {
			continue
		}
		b := strings.TrimSpace(broad)
		out[b] = append(out[b], strings.Fields(narrow)...)
	}
	return out
}
