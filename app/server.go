package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/auth/devauth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store/postgres"
)

// Server builds the token verifier, the rate limiter and the server. The
// returned close function stops the verifier's background refresh and the
// limiter, and exports the spans still batched when tracing is on.
func (a *App) Server(ctx context.Context) (*server.Server, func(), error) {
	cfg := a.Config
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	tools := a.Tools()
	mt := cfg.Auth.MultiTenant
	opts := server.Options{
		ResourceURL: cfg.ResourceURL(),
		Registry:    a.Registry,
		Metadata: auth.ResourceMetadata{
			AuthorizationServers: cfg.EffectiveAuthorizationServers(),
			ScopesSupported:      cfg.Auth.ScopesSupported,
			ResourceName:         "tenantmcp",
		},
		// Burst 0 leaves the default to the limiter (ratelimit.DefaultBurst
		// of the tenant's own rate), so a tenant whose record sets only its
		// rate gets a burst to match.
		DefaultLimit:           ratelimit.Limit{PerMinute: mt.DefaultRateLimit, Burst: mt.RateLimitBurst},
		PerUserLimit:           ratelimit.Limit{PerMinute: cfg.RateLimit.PerUserRateLimit},
		MaxConcurrentPerTenant: cfg.RateLimit.MaxConcurrentPerTenant,
		Stores:                 a.Stores,
		Tools:                  tools,
		Stateful:               cfg.Server.StatefulSessions,
		MaxBodyBytes:           cfg.Server.MaxBodyBytes,
		ReadHeaderTimeout:      cfg.Server.ReadHeaderTimeout,
		ReadTimeout:            cfg.Server.ReadTimeout,
		WriteTimeout:           cfg.Server.WriteTimeout,
		IdleTimeout:            cfg.Server.IdleTimeout,
		MaxBodyReadsPerTenant:  cfg.Server.MaxBodyReadsPerTenant,
		MaxHeaderBytes:         cfg.Server.MaxHeaderBytes,
		MaxJSONDepth:           cfg.Server.MaxJSONDepth,
		MaxArgumentBytes:       cfg.Server.MaxArgumentBytes,
		// 0 in the configuration turns these off.
		MaxConcurrentRequests:            cfg.Server.MaxConcurrentRequests,
		UnlimitedConcurrentRequests:      cfg.Server.MaxConcurrentRequests == 0,
		MaxConcurrentAdminRequests:       cfg.Server.MaxConcurrentAdminRequests,
		UnlimitedConcurrentAdminRequests: cfg.Server.MaxConcurrentAdminRequests == 0,
		MaxConnsPerClient:                cfg.Server.MaxConnsPerClient,
		UnlimitedConnsPerClient:          cfg.Server.MaxConnsPerClient == 0,
		AllowedOrigins:                   cfg.Server.AllowedOrigins,
		MetricsTopTenants:                cfg.Server.MetricsTopTenants,
		HistoryTenants:                   cfg.Server.HistoryTenants,
		NoTenantLabels:                   cfg.Server.MetricsTopTenants == 0,
		Logger:                           a.log,
	}
	if !mt.Enabled {
		opts.SingleTenant = SingleTenantID
	}
	if a.pgPool != nil {
		opts.Collectors = append(opts.Collectors, poolCollector{a.pgPool})
	}
	if cfg.Database.DSN != "" {
		// The registry, the stores and the audit trail are on PostgreSQL:
		// its pool exhausted or its connections dropped are 503s.
		opts.Unavailable = postgres.Unavailable
	}
	// First in, last out: the tracer provider is shut down (flushing its
	// spans) after everything that could still end a span.
	tp, stopTracing, err := a.tracerProvider(ctx)
	if err != nil {
		return nil, nil, err
	}
	cleanups = append(cleanups, stopTracing)
	opts.TracerProvider = tp

	issuer := a.Issuer()
	var verifier *auth.Verifier // nil: no tokens to verify
	switch {
	case a.opts.Dev != nil:
		dev := a.opts.Dev
		v, err := auth.NewVerifier(ctx, &auth.Options{
			Issuer:         dev.Issuer(),
			Audience:       cfg.ResourceURL(),
			JWKS:           dev.JWKS(),
			Claims:         auth.DevClaimMap(),
			TenantOptional: a.adminSharesIssuer(),
			DropClaims:     true,
			Logger:         a.log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("dev issuer: %w", err)
		}
		cleanups = append(cleanups, v.Close)
		opts.Verifier, verifier = v, v
		opts.AllowLoopbackOrigins = true // a local MCP Inspector, say
		opts.Metadata.AuthorizationServers = []string{dev.Issuer()}
		das, err := a.devAuth(dev, tools)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		opts.Routes = das.Routes() // the JWKS and the dev authorization server
	case !cfg.Auth.Enabled:
		a.log.Warn("AUTHENTICATION IS DISABLED ([auth] enabled = false): every request is served as the local tenant without a token. Use this only on your own machine.")
		opts.LocalIdentity = &auth.Identity{Issuer: LocalIssuer, TenantID: LocalTenantID, UserID: "local"}
		opts.AllowLoopbackOrigins = true // loopback only, like the listener
		opts.SingleTenant = LocalTenantID
	default:
		v, err := auth.NewVerifier(ctx, a.verifierOptions())
		if err != nil {
			return nil, nil, fmt.Errorf("token verifier: %w", err)
		}
		cleanups = append(cleanups, v.Close)
		opts.Verifier, verifier = v, v
	}
	opts.Ready = a.readiness(verifier)
	if opts.SingleTenant != "" {
		if _, err := a.EnsureTenant(ctx, issuer, opts.SingleTenant, "default"); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("single-tenant record: %w", err)
		}
	}

	a.limiterErrors = func(error) {}
	lim, closeLim, err := a.limiter()
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cleanups = append(cleanups, closeLim)
	if mt.DefaultRateLimit > 0 || cfg.RateLimit.PerUserRateLimit > 0 {
		opts.Limiter = lim
	}

	var auditW *audit.Writer
	if a.audit != nil {
		w, pub, stopAudit, err := a.auditWriter(ctx)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cleanups = append(cleanups, stopAudit)
		a.auditOptions(&opts, w, pub)
		auditW = w
	}
	closeAdmin, err := a.adminOptions(ctx, &opts, auditW)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cleanups = append(cleanups, closeAdmin)
	if a.Stores != nil {
		stopJobs, err := a.startLifecycleJobs(ctx, auditW)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cleanups = append(cleanups, stopJobs)
	}

	opts.ScopeHierarchy = cfg.ScopeImplications()
	srv, err := server.New(opts)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	a.serving.Store(srv)
	a.limiterErrors = func(err error) { srv.CountLimiterError(err) }
	cleanups = append(cleanups, a.watchRegistry(ctx)) // see registrywatch.go
	return srv, cleanup, nil
}

// readiness is the server's readiness check (GET /readyz): the PostgreSQL
// pool answers, if the deployment uses one, and the verifier holds signing
// keys. Its errors are fixed phrases, safe for anyone who can reach the
// server; each cause is logged when its check starts failing.
func (a *App) readiness(v *auth.Verifier) func(context.Context) error {
	type check struct {
		reason string
		run    func(context.Context) error
		failed atomic.Bool
	}
	var checks []*check
	if p := a.pgPool; p != nil {
		checks = append(checks, &check{reason: "database unreachable", run: func(ctx context.Context) error { return pingPool(ctx, p) }})
	}
	if v != nil {
		checks = append(checks, &check{reason: "identity provider signing keys not loaded", run: v.Ready})
	}
	return func(ctx context.Context) error {
		errs := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() { errs[i] = c.run(ctx) })
		}
		wg.Wait()
		var reasons []string
		for i, c := range checks {
			switch was := c.failed.Swap(errs[i] != nil); {
			case errs[i] != nil:
				reasons = append(reasons, c.reason)
				if !was {
					a.log.WarnContext(ctx, "readiness check fails: "+c.reason, "err", errs[i])
				}
			case was:
				a.log.InfoContext(ctx, "readiness check passes again", "was", c.reason)
			}
		}
		if len(reasons) > 0 {
			return errors.New(strings.Join(reasons, "; "))
		}
		return nil
	}
}

// Tools are the tools the deployment serves: Options.Tools, or the example
// documents tools when none were given. Commands that name tools (tenant
// add/update --allowed-tools) check names against this list, so they agree
// with what Server serves.
func (a *App) Tools() []server.Tool {
	if a.opts.Tools != nil {
		return a.opts.Tools
	}
	return documents.Tools()
}

// DevScopes are the default scopes of dev tokens: read:tools,
// execute:tools and every scope a served tool requires, so that each of
// them can be called. The tokens dev and token print and those of the dev
// authorization server carry them.
func DevScopes(tools []server.Tool) []string {
	out := []string{"read:tools", "execute:tools"}
	for _, t := range tools {
		for _, s := range t.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// devAuth is the dev authorization server (serve never builds one). It
// offers the tenants registered under the dev issuer that are served now,
// read from the registry at each sign-in, and the administrator when
// admins share the dev issuer.
func (a *App) devAuth(dev *auth.DevIssuer, tools []server.Tool) (*devauth.Server, error) {
	o := &devauth.Options{Scopes: DevScopes(tools), Logger: a.log}
	if a.adminSharesIssuer() {
		o.AdminScope = a.Config.Admin.Scope
	}
	tenants := func(ctx context.Context) ([]devauth.Tenant, error) {
		recs, err := a.Registry.List(ctx)
		if err != nil {
			return nil, err
		}
		var out []devauth.Tenant
		now := time.Now()
		for _, t := range recs {
			if t.Issuer == dev.Issuer() && t.Check(now) == nil {
				out = append(out, devauth.Tenant{ExternalID: t.ExternalID, Name: t.Name})
			}
		}
		return out, nil
	}
	das, err := devauth.New(dev, a.Config.ResourceURL(), tenants, o)
	if err != nil {
		return nil, fmt.Errorf("dev authorization server: %w", err)
	}
	return das, nil
}

func (a *App) verifierOptions() *auth.Options {
	cfg := a.Config
	claims := auth.ClaimMap{
		TenantName:       cfg.EffectiveTenantNameClaim(),
		User:             cfg.EffectiveUserClaim(),
		Scopes:           cfg.EffectiveScopeClaims(),
		ClientIDAudience: cfg.EffectiveAudienceClaim() == "client_id",
		RequiredClaims:   cfg.EffectiveRequiredClaims(),
	}
	if cfg.Auth.MultiTenant.Enabled {
		claims.Tenant = cfg.EffectiveTenantClaim()
	}
	if cfg.Auth.Provider == config.ProviderEntra {
		claims.IssuerTenantClaim = "tid"
	}
	return &auth.Options{
		Issuer:     cfg.EffectiveIssuer(),
		Audience:   cfg.EffectiveAudience(),
		JWKSURL:    cfg.EffectiveJWKSURL(),
		Algorithms: cfg.Auth.Algorithms,
		TokenType:  cfg.Auth.TokenType,
		Leeway:     orNone(cfg.Auth.Leeway),
		Claims:     claims,
		CacheSize:  orNone(cfg.Auth.TokenCacheSize),
		CacheTTL:   cfg.Auth.TokenCacheTTL,
		DropClaims: true, // tools see tenant.Context, not raw claims
		// Admin tokens from this provider carry no tenant; the server
		// refuses a tenant request without one itself.
		TenantOptional: a.adminSharesIssuer(),
		Logger:         a.log,
	}
}

func (a *App) limiter() (ratelimit.Limiter, func(), error) {
	cfg := a.Config.RateLimit
	if cfg.Backend != "redis" {
		m := ratelimit.NewMemory(nil)
		return m, func() { m.Close() }, nil
	}
	return a.redisLimiter()
}

// orNone maps config's "0 = none" onto auth.Options' "negative = none"
// (where 0 means the default).
func orNone[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
