package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
)

// Verifier verifies a bearer token and returns who it names. *auth.Verifier
// implements it.
type Verifier interface {
	Verify(ctx context.Context, token string) (*auth.Identity, error)
}

// Resolver maps an identity provider's tenant identifier to its registry
// record, applying the status rules. *registry.Registry implements it.
type Resolver interface {
	Resolve(ctx context.Context, issuer, externalID string) (*registry.Tenant, error)
}

// Options configure a Server. Required: ResourceURL, Registry, and either
// Verifier or LocalIdentity.
type Options struct {
	// ResourceURL is the public URL of the MCP endpoint, e.g.
	// "https://mcp.example.com/mcp". Its path is where MCP is served.
	ResourceURL string
	// Verifier checks bearer tokens. Required unless LocalIdentity is set.
	Verifier Verifier
	// LocalIdentity, when set, serves every request as this identity with
	// no token at all ([auth] enabled = false). For local use only: the
	// CLI refuses to bind a non-loopback address with it.
	LocalIdentity *auth.Identity
	// SingleTenant is the external tenant id used for every request when
	// tokens carry no tenant claim by design (multi_tenant.enabled =
	// false). Empty means multi-tenant: the tenant comes from the token.
	SingleTenant string
	// Registry resolves tenants. Required.
	Registry Resolver
	// Metadata is served at the RFC 9728 protected-resource metadata URLs.
	// Its Resource defaults to ResourceURL.
	Metadata auth.ResourceMetadata
	// Limiter applies per-tenant (and per-user) rate limits. Nil means no
	// rate limiting.
	Limiter ratelimit.Limiter
	// DefaultLimit applies to tenants whose record sets no rate limit.
	DefaultLimit ratelimit.Limit
	// PerUserLimit, if PerMinute > 0, also limits each user inside a tenant.
	PerUserLimit ratelimit.Limit
	// MaxConcurrentPerTenant caps a tenant's requests in flight; 0 = no cap.
	MaxConcurrentPerTenant int
	// ScopeHierarchy maps a broad scope to the narrower scopes it implies
	// (transitively). Nil means scopes imply only themselves.
	ScopeHierarchy map[string][]string
	// Stores are the tenant-scoped storage backends tools reach through
	// the store package. Nil means tools get store.ErrNotConfigured.
	Stores *store.Set
	// Tools are served to every tenant allowed to use them.
	Tools []Tool
	// Stateful enables MCP sessions (2025-11-25 and earlier); each session
	// is bound to the tenant and user that opened it. Default stateless.
	Stateful bool
	// MaxBodyBytes bounds a request body; 0 = DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// MaxHeaderBytes bounds a request's request line and header fields;
	// 0 = DefaultMaxHeaderBytes (64 KiB). A larger one gets 431. Serve
	// also has net/http cut off, with a bare 431 and before the server
	// sees them, header blocks of more than twice this.
	MaxHeaderBytes int
	// MaxJSONDepth bounds how deeply a request body's JSON nests arrays
	// and objects; 0 = DefaultMaxJSONDepth (64). A deeper body gets 400
	// (JSON-RPC -32600) before anything decodes it.
	MaxJSONDepth int
	// MaxArgumentBytes bounds a tool call's arguments (their JSON text);
	// 0 = DefaultMaxArgumentBytes (256 KiB), or MaxBodyBytes if that is
	// smaller. A larger call is answered with a tool error result
	// (isError), which clients show the model. At most MaxBodyBytes.
	MaxArgumentBytes int64
	// MaxConcurrentRequests caps the MCP requests in flight on this
	// server over all tenants; one more gets 503 with Retry-After at once
	// (no queue). It is taken after the tenant's own cap
	// (MaxConcurrentPerTenant), so a tenant at its cap holds no more of
	// it. 0 = DefaultMaxConcurrentRequests (512); see
	// UnlimitedConcurrentRequests for none.
	MaxConcurrentRequests int
	// UnlimitedConcurrentRequests turns MaxConcurrentRequests off.
	UnlimitedConcurrentRequests bool
	// MaxConcurrentAdminRequests caps the admin requests (admin MCP
	// tools and the admin API) in flight on this server, counted apart
	// from MaxConcurrentRequests: tenants' load cannot lock
	// administrators out, nor administrators' scripts take the tenants'
	// slots. One more gets 503 with Retry-After at once. 0 =
	// DefaultMaxConcurrentAdminRequests (16); see
	// UnlimitedConcurrentAdminRequests for none.
	MaxConcurrentAdminRequests int
	// UnlimitedConcurrentAdminRequests turns MaxConcurrentAdminRequests
	// off.
	UnlimitedConcurrentAdminRequests bool
	// MaxConnsPerClient caps the connections Serve keeps open from one
	// client IP address; more are closed as soon as they are accepted.
	// Behind a proxy every connection has the proxy's address: turn it
	// off there (UnlimitedConnsPerClient) or raise it. 0 =
	// DefaultMaxConnsPerClient (256). An http.Server of your own needs
	// its own limit.
	MaxConnsPerClient int
	// UnlimitedConnsPerClient turns MaxConnsPerClient off.
	UnlimitedConnsPerClient bool
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers; 0 = DefaultReadHeaderTimeout. Serve applies it
	// (and IdleTimeout); an http.Server of your own needs its own.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds how long a request body may take to arrive,
	// counted from the end of its headers; 0 = DefaultReadTimeout. A
	// slower body gets 408. It ends once the body is read, so a long tool
	// call or event stream is never cut by it.
	ReadTimeout time.Duration
	// WriteTimeout bounds how long a client may take to accept each part
	// of a response (at most 64 KiB of it); 0 = DefaultWriteTimeout. It
	// bounds each write, not the whole response: only a client that stops
	// reading is cut off, never a long tool call or event stream (unlike
	// http.Server.WriteTimeout, which Serve leaves off).
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request; 0 = DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxBodyReadsPerTenant caps how many of a tenant's requests may be
	// sending their body at once (on this server); more get 429. It keeps
	// one tenant's slow uploads from holding every connection and buffer.
	// 0 = DefaultMaxBodyReadsPerTenant.
	MaxBodyReadsPerTenant int
	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed besides the ResourceURL's own; "*" allows any. A request
	// with an Origin header that is not allowed gets 403 (requests without
	// one, from any non-browser client, are not affected). Nil = same
	// origin only.
	AllowedOrigins []string
	// AllowLoopbackOrigins also allows any http(s) origin on a loopback
	// host (localhost, 127.0.0.1, [::1]), e.g. a local MCP Inspector. For
	// local development.
	AllowLoopbackOrigins bool
	// Ready, if set, reports whether the server can serve: nil when it
	// can (say, the database answers and the identity provider's keys are
	// loaded). GET /readyz answers 200 "ready" when it returns nil and 503
	// "not ready: " + its error text when not, so that text is shown to
	// whoever can reach the server: keep it short, with no tenant data or
	// credentials, and log the details yourself. Load balancers poll
	// /readyz, so one check runs at a time, bounded by ReadyTimeout, and its
	// result answers every /readyz for ReadyCacheFor. Nil means ready
	// whenever the process serves. /healthz never calls it: it says only
	// that the process is up.
	Ready func(ctx context.Context) error
	// Audit, if set, records one audit event per MCP request (tools/call,
	// other methods, and refusals) in the chain of the request's tenant,
	// or in audit.SystemChain when no tenant is known. A request is served
	// only once its event has a place in the writer's queue; when the
	// queue stays full (the audit store is not keeping up) it is refused
	// with 503 and Retry-After. Nil means no audit trail. The caller
	// closes the writer after Serve returns, which drains it.
	Audit *audit.Writer
	// AuditArguments stores tool arguments in audit events for tenants
	// without the audit_arguments flag (FlagAuditArguments), which decides
	// for its tenant either way. False (the default) stores only their
	// size and SHA-256.
	AuditArguments bool
	// AuditLogTool serves the audit_log tool: a tenant's own audit events,
	// newest first, paged and filtered. It needs Audit. Off by default;
	// like any tool it is subject to the tenant's allowed tools.
	AuditLogTool bool
	// AuditLogScope is the scope audit_log requires; "" =
	// DefaultAuditLogScope ("audit:read").
	AuditLogScope string
	// Admin, if set, enables administration: admin tokens get the admin
	// tools (and nothing else) over MCP and the admin HTTP API, and
	// impersonation credentials act as their tenant. See AdminOptions.
	Admin *AdminOptions
	// Routes are extra handlers mounted on the server's mux (e.g. the dev
	// issuer's JWKS). Keys are http.ServeMux patterns.
	Routes map[string]http.Handler
	// Name and Version identify the server to clients; "" = "tenantmcp", "dev".
	Name, Version string
	// MetricsTopTenants is how many tenants get a label of their own
	// (tenant="<tenant id>") in the per-tenant metrics; every other tenant
	// is counted under tenant="other". The first MetricsTopTenants tenants
	// served after the process starts keep their labels until it exits, so
	// the label set is bounded however many tenants call. 0 =
	// DefaultMetricsTopTenants; see NoTenantLabels for none.
	MetricsTopTenants int
	// NoTenantLabels counts every tenant under tenant="other": no tenant
	// id reaches the metrics. MetricsTopTenants is then ignored.
	NoTenantLabels bool
	// HistoryTenants is how many tenants the in-memory metrics history
	// (History, HistorySummary: the last HistoryWindow of requests,
	// refusals and latency, for the operator console) keeps; when one more
	// tenant sends a request, the least recently active is dropped. 0 =
	// DefaultHistoryTenants.
	HistoryTenants int
	// Unavailable tells which errors mean a dependency cannot serve right
	// now rather than a fault, such as the database's pool exhausted or
	// its connections dropped while it restarts: such a request is
	// answered 503 with Retry-After 1 instead of 500, with reason (the
	// metric and audit label, a fixed word such as "database_busy") and
	// message (safe to show the client). It sees only errors the server
	// does not classify itself. nil: none (package app passes
	// store/postgres.Unavailable when PostgreSQL is used).
	Unavailable func(err error) (reason, message string, ok bool)
	// Collectors are more metrics for MetricsHandler to serve, such as the
	// PostgreSQL pool's (package app adds them). nil: none.
	Collectors []prometheus.Collector
	// Logger receives request-path logs and, at level info, one access
	// line per MCP request (message "request"); nil discards them. Its
	// handler is wrapped with LogHandler, so every line logged with a
	// request's context carries tenant_id and request_id. Tools log
	// through Logger(ctx).
	Logger *slog.Logger
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// TracerProvider, if set, traces MCP requests with OpenTelemetry: a
	// span per HTTP request to the MCP endpoint (served or refused) and a
	// child span per tool call, with the tenant's internal id (tenant.id)
	// once it is known, and never tokens or arguments. Their parent is the
	// W3C trace context of the request's params._meta, else of its
	// traceparent/tracestate headers; malformed values are ignored, and
	// trace context never identifies anyone. Audit events and access log
	// lines then carry the span's trace id. Nil (the default) turns
	// tracing off at no cost to the request path. The caller shuts the
	// provider down, flushing its spans, after Serve returns.
	TracerProvider trace.TracerProvider
}

// Server is a multi-tenant MCP server: an http.Handler that runs the whole
// request path (token → tenant → registry → limits → tool access → tool).
type Server struct {
	opts        Options
	log         *slog.Logger // Options.Logger, through LogHandler
	toolLog     *slog.Logger // Options.Logger, for Logger(ctx)
	mcpPath     string
	metadataURL string
	tools       map[string]*Tool
	scopes      scopeSet
	scoped      bool // some tool requires scopes: tools/call bodies are peeked at
	concurrency *ratelimit.Concurrency
	bodyReads   *ratelimit.Concurrency // requests whose body is still arriving, per tenant
	sessions    *sessionTable
	admin       *adminState // nil: no administration
	mcp         *mcpserver.StreamableHTTPServer
	mux         *http.ServeMux
	// mcpDirect says no extra route is more specific than the MCP path
	// for a request whose path is exactly it, so ServeHTTP can call
	// serveMCP without the mux's lookup (see shadows).
	mcpDirect   bool
	metrics     *metrics
	limits      limitState   // requests in flight (limits.go)
	adminLimits limitState   // admin requests in flight
	conns       *connLimiter // nil: connections per client not limited
	history     *history
	tracer      trace.Tracer // nil: tracing off (see tracing.go)
	origins     originPolicy
	idPrefix    string
	seq         atomic.Uint64
	inflight    sync.WaitGroup
	draining    atomic.Bool // Serve is shutting down: /readyz says so
	readyMu     sync.Mutex  // one readiness check at a time
	readyAt     time.Time   // when readyErr was found; zero = never
	readyErr    error
}

// ReadyCacheFor is how long one readiness check (Options.Ready) answers
// /readyz; ReadyTimeout bounds the check.
const (
	ReadyCacheFor = time.Second
	ReadyTimeout  = 3 * time.Second
)

// errShuttingDown answers /readyz while Serve drains.
var errShuttingDown = errors.New("shutting down")

// New validates opts and builds the server.
func New(opts Options) (*Server, error) {
	var errs []error
	if opts.ResourceURL == "" {
		errs = append(errs, errors.New("server: ResourceURL is required"))
	}
	if opts.Registry == nil {
		errs = append(errs, errors.New("server: Registry is required"))
	}
	if opts.Verifier == nil && opts.LocalIdentity == nil {
		errs = append(errs, errors.New("server: Verifier is required (or LocalIdentity for unauthenticated local use)"))
	}
	path, err := resourcePath(opts.ResourceURL)
	if err != nil {
		errs = append(errs, err)
	}
	all := opts.Tools
	if opts.AuditLogTool {
		if opts.Audit == nil {
			errs = append(errs, errors.New("server: AuditLogTool needs Audit (an audit writer)"))
		} else {
			all = append(all[:len(all):len(all)], auditLogTool(opts.Audit.Store(), cmp.Or(opts.AuditLogScope, DefaultAuditLogScope)))
		}
	}
	tools := make(map[string]*Tool, len(all))
	for i := range all {
		t := &all[i]
		if err := t.validate(); err != nil {
			errs = append(errs, fmt.Errorf("server: %w", err))
			continue
		}
		if _, dup := tools[t.Name]; dup {
			errs = append(errs, fmt.Errorf("server: tool %q registered twice", t.Name))
		}
		tools[t.Name] = t
	}
	origins, err := newOriginPolicy(opts.ResourceURL, opts.AllowedOrigins, opts.AllowLoopbackOrigins)
	if err != nil {
		errs = append(errs, err)
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"ReadHeaderTimeout", opts.ReadHeaderTimeout}, {"ReadTimeout", opts.ReadTimeout},
		{"WriteTimeout", opts.WriteTimeout}, {"IdleTimeout", opts.IdleTimeout}} {
		if t.d < 0 {
			errs = append(errs, fmt.Errorf("server: %s is %s: want a positive duration, or 0 for the default", t.name, t.d))
		}
	}
	if opts.MetricsTopTenants < 0 {
		errs = append(errs, fmt.Errorf("server: MetricsTopTenants is %d: want a positive number, 0 for the default, or NoTenantLabels for none", opts.MetricsTopTenants))
	}
	if opts.HistoryTenants < 0 {
		errs = append(errs, fmt.Errorf("server: HistoryTenants is %d: want a positive number, or 0 for the default", opts.HistoryTenants))
	}
	if opts.MaxBodyReadsPerTenant < 0 {
		errs = append(errs, fmt.Errorf("server: MaxBodyReadsPerTenant is %d: want a positive number, or 0 for the default", opts.MaxBodyReadsPerTenant))
	}
	errs = append(errs, checkLimits(&opts)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	applyLimitDefaults(&opts)
	opts.ReadHeaderTimeout = cmp.Or(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	opts.ReadTimeout = cmp.Or(opts.ReadTimeout, DefaultReadTimeout)
	opts.WriteTimeout = cmp.Or(opts.WriteTimeout, DefaultWriteTimeout)
	opts.IdleTimeout = cmp.Or(opts.IdleTimeout, DefaultIdleTimeout)
	opts.MaxBodyReadsPerTenant = cmp.Or(opts.MaxBodyReadsPerTenant, DefaultMaxBodyReadsPerTenant)
	if opts.Name == "" {
		opts.Name = "tenantmcp"
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metadata.Resource == "" {
		opts.Metadata.Resource = opts.ResourceURL
	}
	if len(opts.Metadata.BearerMethodsSupported) == 0 {
		opts.Metadata.BearerMethodsSupported = []string{"header"}
	}
	opts.MetricsTopTenants = cmp.Or(opts.MetricsTopTenants, DefaultMetricsTopTenants)
	topTenants := opts.MetricsTopTenants
	if opts.NoTenantLabels {
		topTenants = 0
	}
	toolLog := opts.Logger
	if toolLog == nil {
		toolLog = discardLogger
	}
	if h, ok := toolLog.Handler().(*ctxHandler); ok {
		toolLog = slog.New(h.inner) // Logger(ctx) adds the attributes itself
	}
	s := &Server{
		opts:        opts,
		log:         slog.New(LogHandler(toolLog.Handler())),
		toolLog:     toolLog,
		mcpPath:     path,
		metadataURL: auth.MetadataURL(opts.ResourceURL),
		tools:       tools,
		scopes:      newScopeSet(opts.ScopeHierarchy),
		concurrency: ratelimit.NewConcurrency(),
		bodyReads:   ratelimit.NewConcurrency(),
		metrics:     newMetrics(topTenants),
		history:     newHistory(cmp.Or(opts.HistoryTenants, DefaultHistoryTenants)),
		tracer:      newTracer(opts.TracerProvider, opts.Version),
		origins:     origins,
		idPrefix:    newIDPrefix(),
	}
	for _, t := range tools {
		s.scoped = s.scoped || len(t.Scopes) > 0
	}
	if opts.Stateful {
		s.sessions = newSessionTable(opts.Now)
	}
	s.initLimits()
	s.metrics.reg.MustRegister(s.history)
	if opts.Audit != nil {
		s.metrics.reg.MustRegister(auditCollector{opts.Audit})
	}
	if c := newCacheCollector(opts.Registry, opts.Verifier); c != nil {
		s.metrics.reg.MustRegister(c)
	}
	for _, c := range opts.Collectors {
		if err := s.metrics.reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: Collectors: %w", err)
		}
	}
	if s.admin, err = s.newAdmin(opts.Admin); err != nil {
		return nil, err
	}
	s.mcp = s.newMCPHandler()
	s.mux = s.newMux()
	return s, nil
}

func resourcePath(resource string) (string, error) {
	i := strings.Index(resource, "://")
	if i < 0 {
		return "", fmt.Errorf("server: ResourceURL %q is not an absolute URL", resource)
	}
	rest := resource[i+3:]
	j := strings.IndexByte(rest, '/')
	if j < 0 || rest[j:] == "/" {
		return "/", nil
	}
	return strings.TrimSuffix(rest[j:], "/"), nil
}

func (s *Server) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(s.mcpPath, s.serveMCP)
	md := s.opts.Metadata
	mux.Handle("GET /.well-known/oauth-protected-resource", md)
	if s.mcpPath != "/" {
		mux.Handle("GET /.well-known/oauth-protected-resource"+s.mcpPath, md)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	if s.admin != nil && s.admin.opts.API != nil {
		mux.HandleFunc(AdminAPIPath, s.serveAdminAPI)
	}
	s.mcpDirect = true
	for pattern, h := range s.opts.Routes {
		mux.Handle(pattern, h)
		if shadows(pattern, s.mcpPath) {
			s.mcpDirect = false
		}
	}
	return mux
}

// shadows reports whether the ServeMux pattern ("[METHOD ][HOST]/PATH")
// could take some request for exactly path from path's own pattern, which
// has no method and no host: only a pattern with the same path can be
// more specific.
func shadows(pattern, path string) bool {
	if _, rest, ok := strings.Cut(pattern, " "); ok {
		pattern = strings.TrimLeft(rest, " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		pattern = pattern[i:]
	}
	return strings.TrimSuffix(pattern, "{$}") == path
}

// serveReady answers GET /readyz: 200 "ready", or 503 "not ready: " and
// the reason.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		reason := strings.Join(strings.Fields(err.Error()), " ")
		if len(reason) > 200 {
			reason = reason[:200] + "..."
		}
		fmt.Fprintf(w, "not ready: %s\n", reason)
		return
	}
	w.Write([]byte("ready\n"))
}

// ready runs Options.Ready, or reuses its result if it is younger than
// ReadyCacheFor. Callers that arrive while a check runs wait for it and
// share its result.
func (s *Server) ready(ctx context.Context) error {
	if s.draining.Load() {
		return errShuttingDown
	}
	if s.opts.Ready == nil {
		return nil
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if age := s.opts.Now().Sub(s.readyAt); !s.readyAt.IsZero() && age >= 0 && age < ReadyCacheFor {
		return s.readyErr
	}
	// Not the request's context: a poller that hangs up must not leave a
	// "context canceled" result for the others.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReadyTimeout)
	defer cancel()
	s.readyErr = s.opts.Ready(cctx)
	s.readyAt = s.opts.Now()
	return s.readyErr
}

// ServeHTTP serves MCP at the resource path, the protected-resource
// metadata, /healthz and /readyz. Metrics are not served here: they describe every
// tenant's activity, so they go on a listener of their own (see
// MetricsHandler).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if dw := s.bound(w, r); dw != nil {
		w = dw
		defer dw.renew() // for the final flush, after the handler
	}
	err := s.checkHeaderSize(r) // every path: metadata documents too
	if err == nil && rejectRebinding(r) {
		err = errHost
	}
	if err != nil {
		var tr *trail
		if r.URL.Path == s.mcpPath {
			tr = s.newTrail()
		}
		s.refuse(w, r, tr, err)
		s.record(r, tr)
		return
	}
	if s.mcpDirect && r.URL.Path == s.mcpPath {
		s.serveMCP(w, r) // what the mux would choose, without its lookup
		return
	}
	s.mux.ServeHTTP(w, r)
}

// MetricsHandler serves the server's Prometheus metrics. Mount it on a
// private listener (the CLI's metrics.listen): the counters span every
// tenant, so they must not be reachable by tenants.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// CountLimiterError counts a rate-limit check the shared limiter could not
// answer (see ratelimit.FailoverOptions.OnError); it feeds the
// tenantmcp_ratelimit_degraded_total metric.
func (s *Server) CountLimiterError(error) { s.metrics.degraded.Inc() }

// MCPPath is the path MCP is served at (the path of ResourceURL).
func (s *Server) MCPPath() string { return s.mcpPath }

// drainKey holds, in a request's context, the context Serve cancels when
// its drain starts.
type drainKey struct{}

// Serve accepts connections on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, ends the sessions' streams, waits up to
// drainFor for requests in flight to finish, cuts the rest (their context's
// cause is ErrCutAtShutdown) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drainFor time.Duration) error {
	// No http.Server WriteTimeout: it spans the whole request, so it would
	// cut long tool calls and event streams. ServeHTTP bounds each write
	// instead (Options.WriteTimeout), and the body read from the end of the
	// headers (Options.ReadTimeout), under any http.Server.
	//
	// Requests outlive ctx (they drain); base is cancelled, with
	// ErrCutAtShutdown as its cause, only for the requests still running
	// when the drain ends.
	//
	// drain is cancelled when the drain starts: the sessions' streams end
	// then (serveMCP), since they carry no work to finish.
	drain, startDrain := context.WithCancel(context.Background())
	defer startDrain()
	base, cut := context.WithCancelCause(context.WithValue(context.WithoutCancel(ctx), drainKey{}, drain))
	defer cut(nil)
	hs := &http.Server{
		Handler: s,
		// Twice the limit ServeHTTP enforces (checkHeaderSize): a bound on
		// what is read before the handler runs, so that the exact limit is
		// refused, counted and audited there.
		MaxHeaderBytes:    2 * s.opts.MaxHeaderBytes,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	s.draining.Store(false)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(s.limitConns(ln)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	startDrain()
	s.log.Info("shutting down: draining requests in flight", "timeout", drainFor)
	sctx, cancel := context.WithTimeout(context.Background(), drainFor)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		cut(ErrCutAtShutdown) // before their connections close: tools see why
		hs.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s were cut off", drainFor)
	}
	if err != nil {
		return err
	}
	<-errc // http.ErrServerClosed
	return nil
}
