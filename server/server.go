package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	mcpserver "github.com/mark3labs/mcp-go/server"

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
	// MaxBodyBytes bounds a request body; 0 = 1 MiB.
	MaxBodyBytes int64
	// Routes are extra handlers mounted on the server's mux (e.g. the dev
	// issuer's JWKS). Keys are http.ServeMux patterns.
	Routes map[string]http.Handler
	// Name and Version identify the server to clients; "" = "tenantmcp", "dev".
	Name, Version string
	// Logger receives request-path logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Server is a multi-tenant MCP server: an http.Handler that runs the whole
// request path (token → tenant → registry → limits → tool access → tool).
type Server struct {
	opts        Options
	log         *slog.Logger
	mcpPath     string
	metadataURL string
	tools       map[string]*Tool
	scopes      scopeSet
	scoped      bool // some tool requires scopes: tools/call bodies are peeked at
	concurrency *ratelimit.Concurrency
	sessions    *sessionTable
	mcp         *mcpserver.StreamableHTTPServer
	mux         *http.ServeMux
	metrics     *metrics
	inflight    sync.WaitGroup
}

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
	tools := make(map[string]*Tool, len(opts.Tools))
	for i := range opts.Tools {
		t := &opts.Tools[i]
		if err := t.validate(); err != nil {
			errs = append(errs, fmt.Errorf("server: %w", err))
			continue
		}
		if _, dup := tools[t.Name]; dup {
			errs = append(errs, fmt.Errorf("server: tool %q registered twice", t.Name))
		}
		tools[t.Name] = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:        opts,
		log:         log,
		mcpPath:     path,
		metadataURL: auth.MetadataURL(opts.ResourceURL),
		tools:       tools,
		scopes:      newScopeSet(opts.ScopeHierarchy),
		concurrency: ratelimit.NewConcurrency(),
		metrics:     newMetrics(),
	}
	for _, t := range tools {
		s.scoped = s.scoped || len(t.Scopes) > 0
	}
	if opts.Stateful {
		s.sessions = newSessionTable(opts.Now)
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
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", s.metrics.handler())
	for pattern, h := range s.opts.Routes {
		mux.Handle(pattern, h)
	}
	return mux
}

// ServeHTTP serves MCP at the resource path, the protected-resource
// metadata, /healthz and /metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// CountLimiterError counts a rate-limit check the shared limiter could not
// answer (see ratelimit.FailoverOptions.OnError); it feeds the
// tenantmcp_ratelimit_degraded_total metric.
func (s *Server) CountLimiterError(error) { s.metrics.degraded.Inc() }

// MCPPath is the path MCP is served at (the path of ResourceURL).
func (s *Server) MCPPath() string { return s.mcpPath }

// Serve accepts connections on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, waits up to drain for requests in
// flight to finish, and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: draining requests in flight", "timeout", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		hs.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s were cut off", drain)
	}
	if err != nil {
		return err
	}
	<-errc // http.ErrServerClosed
	return nil
}
