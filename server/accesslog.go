package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/audit"
)

// This file writes the access log (one line per MCP request) and counts
// each finished request in the metrics, and it puts the request's
// tenant_id and request_id on every line logged during a request.
//
// Never logged: the bearer token (removed from the request once verified),
// tool arguments and results, request bodies.

// Logger returns the server's logger for the request ctx belongs to, for
// tool handlers: every line it logs carries the request's tenant_id and
// request_id, whether or not it is given a context.
//
//	func search(ctx context.Context, in searchIn) (searchOut, error) {
//		log := server.Logger(ctx)
//		log.Info("search index rebuilt", "docs", n)
//		...
//	}
//
// Outside a request served by a Server it returns a logger that discards.
// Log what the tool did, not what it was given: arguments are the
// tenant's data.
func Logger(ctx context.Context) *slog.Logger {
	rq := requestFrom(ctx)
	if rq == nil || rq.log == nil {
		return discardLogger
	}
	return rq.log.With(slog.String("tenant_id", string(rq.tenant.ID)), slog.String("request_id", rq.requestID()))
}

var discardLogger = slog.New(slog.DiscardHandler)

// LogHandler wraps h so that a record logged with the context of a request
// a Server is serving (tool handlers' and the store's contexts) carries the
// request's tenant_id and request_id, unless it has them already. The
// Server wraps Options.Logger with it; wrap the logger you give other
// packages (the registry, the stores) too, so that their lines inside a
// request carry them as well. Wrapping twice is harmless.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*ctxHandler); ok {
		return h
	}
	return &ctxHandler{inner: h}
}

type ctxHandler struct {
	inner slog.Handler
	// The handler's own attributes (WithAttrs) have them already.
	hasTenant, hasRequest bool
}

func (h *ctxHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *ctxHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rq := requestFrom(ctx); rq != nil && !(h.hasTenant && h.hasRequest) {
		hasTenant, hasRequest := h.hasTenant, h.hasRequest
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "tenant_id":
				hasTenant = true
			case "request_id":
				hasRequest = true
			}
			return !(hasTenant && hasRequest)
		})
		if !hasTenant || !hasRequest {
			rec = rec.Clone() // the record may be shared with other handlers
			if !hasTenant {
				rec.AddAttrs(slog.String("tenant_id", string(rq.tenant.ID)))
			}
			if !hasRequest {
				rec.AddAttrs(slog.String("request_id", rq.requestID()))
			}
		}
	}
	return h.inner.Handle(ctx, rec)
}

func (h *ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := &ctxHandler{inner: h.inner.WithAttrs(attrs), hasTenant: h.hasTenant, hasRequest: h.hasRequest}
	for _, a := range attrs {
		c.hasTenant = c.hasTenant || a.Key == "tenant_id"
		c.hasRequest = c.hasRequest || a.Key == "request_id"
	}
	return c
}

// WithGroup opens the group on the wrapped handler: attributes added
// inside it, the request's included, are qualified by it.
func (h *ctxHandler) WithGroup(name string) slog.Handler {
	return &ctxHandler{inner: h.inner.WithGroup(name), hasTenant: h.hasTenant, hasRequest: h.hasRequest}
}

// decodesBodies reports whether serveMCP decodes POST bodies (rpcPeek):
// for scope checks, the audit event, the trace span, or the access log's
// method and tool.
func (s *Server) decodesBodies(ctx context.Context) bool {
	return s.scoped || s.opts.Audit != nil || s.tracer != nil || s.log.Enabled(ctx, slog.LevelInfo)
}

// finished counts a finished MCP request in the metrics and writes its
// access log line. record calls it for every request, refused or served.
func (s *Server) finished(r *http.Request, tr *trail) {
	end := s.opts.Now()
	latency := max(end.Sub(tr.start), 0)
	outcome, reason := s.outcomeOf(r, tr)
	s.metrics.observe(tr.tenant, outcome, tr.refusal, latency.Seconds())
	if tr.tenant != nil {
		s.history.record(tr.tenant.ID, end, outcome, tr.refusal, latency)
	}
	ctx := r.Context()
	level := slog.LevelInfo
	if tr.imp != nil {
		level = slog.LevelWarn // made by an admin as this tenant: it stands out
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	status := tr.status
	if status == 0 {
		status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	var tenantID, external, user, method, tool string
	if tr.ident != nil { // a verified token: never anything from an unverified one
		external, user = tr.external, tr.ident.UserID
	}
	if rec := tr.tenant; rec != nil {
		tenantID, external = string(rec.ID), rec.ExternalID
	}
	switch {
	case tr.peeked:
		method = clip(tr.peek.Method, maxAuditName)
		if tr.peek.Method == string(mcp.MethodToolsCall) {
			tool = clip(tr.peek.Params.Name, maxAuditName)
		}
	case r.Method != http.MethodPost:
		method = r.Method // a stateful session's GET stream or DELETE
	}
	var buf [16]slog.Attr
	attrs := append(buf[:0],
		slog.String("tenant_id", tenantID),
		slog.String("external_tenant_id", external),
		slog.String("request_id", tr.requestID(s.idPrefix)),
		slog.String("user", user),
		slog.String("method", method),
		slog.String("tool", tool),
		slog.String("outcome", outcome),
	)
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	attrs = append(attrs,
		slog.Int("status", status),
		slog.Duration("latency", latency),
		slog.String("protocol", tr.protocol(r.Header)),
	)
	if id := s.traceIDOf(r, tr); id != "" {
		attrs = append(attrs, slog.String("trace_id", id))
	}
	msg := "request"
	if tr.imp != nil {
		msg = "impersonated request"
		attrs = append(attrs, slog.String("impersonation_id", tr.imp.ID), slog.String("admin", tr.imp.Actor.Sub))
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}

// outcomeOf is a finished request's outcome (audit.OutcomeOK, …Error or
// …Refused) and its reason: the refusal's, or the class of the error.
func (s *Server) outcomeOf(r *http.Request, tr *trail) (outcome, reason string) {
	switch {
	case tr.refusal != "":
		return audit.OutcomeRefused, tr.refusal
	case tr.peeked || s.decodesBodies(r.Context()):
		return tr.servedOutcome(r)
	case tr.outcome != "": // the body was not decoded: the tool's and the hooks' word
		return tr.outcome, tr.class
	case tr.status >= 400:
		return audit.OutcomeError, "http_" + strconv.Itoa(tr.status)
	}
	return audit.OutcomeOK, ""
}
