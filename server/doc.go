// Package server is the multi-tenant MCP server: an http.Handler that puts
// the whole request path in front of your tools.
//
//	POST /mcp → bearer JWT verified (auth) → tenant from the configured claim
//	→ registry record and status → per-tenant/per-user rate limits and
//	concurrency cap → tools/list and tools/call filtered by the tenant's
//	allowed tools, feature flags and the tool's scopes → your tool, with
//	tenant.From(ctx) and the store accessors bound to that tenant.
//
// With Options.Audit, every MCP request leaves one event in its tenant's
// tamper-evident audit chain (see the audit package and docs/audit.md).
//
// It also serves the RFC 9728 protected-resource metadata, /healthz (the
// process is up) and /readyz (Options.Ready: it can serve, say the database
// answers and the signing keys are loaded; 503 with a short reason if not).
// Prometheus metrics come from MetricsHandler, to be mounted on a private
// listener, never on the public one; their tenant label names at most
// Options.MetricsTopTenants tenants (the rest are "other"), so the series
// stay bounded with any number of tenants.
//
// Options.Logger gets one info line per MCP request (message "request":
// tenant, user, method, tool, outcome, status, latency; never the token or
// the arguments), and every line logged during a request, by the server or
// by a tool through Logger(ctx), carries tenant_id and request_id.
//
//	srv, err := server.New(server.Options{
//		ResourceURL: "https://mcp.example.com/mcp",
//		Verifier:    verifier,  // *auth.Verifier
//		Registry:    reg,       // *registry.Registry
//		Limiter:     ratelimit.NewMemory(nil),
//		DefaultLimit: ratelimit.Limit{PerMinute: 100},
//		Stores:      &store.Set{Docs: docs, SQL: docs},
//		Tools:       documents.Tools(),
//	})
//	...
//	err = srv.Serve(ctx, listener, 15*time.Second) // drains in-flight requests on shutdown
//
// The MCP protocol library (mark3labs/mcp-go) is used only inside this
// package; tools are written against Tool, Handler and NewTool. Every
// refusal is decided by one function (see errors.go) that maps request-path
// errors to the HTTP status, the WWW-Authenticate challenge the MCP
// authorization spec asks for, and a message that names what failed without
// revealing anything about other tenants.
package server
