package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantmcp/tenantmcp/audit"
)

// This file traces MCP requests with OpenTelemetry (Options.TracerProvider):
// one span per HTTP request to the MCP endpoint, served or refused, and a
// child span per tool call. Without a TracerProvider every function here
// returns at its first line: no trace context is parsed, nothing is
// allocated.
//
// A span says what the server decided, never what the client sent beyond
// the method and tool name: the tenant's internal id (once the registry
// has resolved it), method, tool, protocol revision, outcome, error class,
// HTTP status and the server's own request id. Never the token, tool
// arguments or results, error messages, the JSON-RPC id or baggage.
//
// The parent of a request's span is the W3C trace context (traceparent,
// tracestate) of its params._meta when that is valid (MCP 2026-07-28,
// basic "_meta", SEP-414; earlier clients send it too), else the trace the
// request's context already carries (a tracing middleware in front of the
// server), else that of its traceparent/tracestate headers. When _meta
// wins, the transport's context is linked, as the OpenTelemetry MCP
// conventions ask. Malformed values are ignored, and trace context is
// never used to identify anyone: it only places spans in a trace.

// tracerName is the instrumentation scope of the server's spans.
const tracerName = "github.com/tenantmcp/tenantmcp/server"

// Span attributes: OpenTelemetry's MCP and GenAI conventions where they
// have a name, tenantmcp.* otherwise.
const (
	attrTenantID   = attribute.Key("tenant.id")
	attrMethod     = attribute.Key("mcp.method.name")
	attrTool       = attribute.Key("gen_ai.tool.name")
	attrOperation  = attribute.Key("gen_ai.operation.name")
	attrProtocol   = attribute.Key("mcp.protocol.version")
	attrErrorType  = attribute.Key("error.type")
	attrHTTPStatus = attribute.Key("http.response.status_code")
	attrRequestID  = attribute.Key("tenantmcp.request_id")
	attrOutcome    = attribute.Key("tenantmcp.outcome")
)

// newTracer returns the server's tracer, or nil (tracing off) without a
// provider.
func newTracer(tp trace.TracerProvider, version string) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName, trace.WithInstrumentationVersion(version))
}

// startSpan starts the request's span, unless tracing is off or it has one
// already, and returns ctx with it. serveMCP calls it once the body is
// decoded (its _meta may hold the parent); record calls it for a request
// refused before that. Either way the span starts when the request did.
func (s *Server) startSpan(ctx context.Context, r *http.Request, tr *trail) context.Context {
	if s.tracer == nil || tr.span != nil {
		return ctx
	}
	ctx, link := s.spanParent(ctx, r, tr)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(tr.start)}
	if link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	ctx, tr.span = s.tracer.Start(ctx, s.spanName(r, tr), opts...)
	return ctx
}

// spanParent returns ctx with the parent of the request's span (see the
// top of this file), and the transport's trace context to link when
// _meta's wins over it.
func (s *Server) spanParent(ctx context.Context, r *http.Request, tr *trail) (context.Context, trace.SpanContext) {
	// A traceparent must be well-formed for both traceID (which the audit
	// trail has always used) and the propagator: each lets through a few
	// values the other refuses (a trailing "-", reserved flags).
	var w3c propagation.TraceContext
	transport := trace.SpanContextFromContext(ctx)
	if !transport.IsValid() && traceID(r.Header.Get("Traceparent")) != "" {
		transport = trace.SpanContextFromContext(w3c.Extract(ctx, propagation.HeaderCarrier(r.Header)))
	}
	if meta := metaTraceContext(tr.peek.Params.Meta); tr.peeked && traceID(meta.traceparent) != "" {
		if sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), &meta)); sc.IsValid() {
			if sc.Equal(transport) {
				transport = trace.SpanContext{}
			}
			return trace.ContextWithRemoteSpanContext(ctx, sc), transport
		}
	}
	if transport.IsValid() && transport.IsRemote() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, transport)
	}
	return ctx, trace.SpanContext{}
}

// metaCarrier is the W3C trace context of a request's params._meta.
type metaCarrier struct{ traceparent, tracestate string }

func (c *metaCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.traceparent
	case "tracestate":
		return c.tracestate
	}
	return ""
}

func (*metaCarrier) Set(string, string) {}

func (*metaCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// metaTraceContext reads traceparent and tracestate from a raw _meta
// object (already cut out of the body by the one decoding of rpcPeek). A
// value that is not a string is ignored like a malformed one.
func metaTraceContext(meta json.RawMessage) metaCarrier {
	var c metaCarrier
	if len(meta) == 0 {
		return c
	}
	var m struct {
		Traceparent json.RawMessage `json:"traceparent"`
		Tracestate  json.RawMessage `json:"tracestate"`
	}
	if json.Unmarshal(meta, &m) != nil || len(m.Traceparent) == 0 {
		return c
	}
	if json.Unmarshal(m.Traceparent, &c.traceparent) != nil {
		return metaCarrier{}
	}
	if len(m.Tracestate) > 0 && json.Unmarshal(m.Tracestate, &c.tracestate) != nil {
		c.tracestate = ""
	}
	return c
}

// spanName is "tools/call <tool>" for a call of a registered tool, the
// method for other MCP methods, else the HTTP method and path ("POST
// /mcp": refused before its body was read, or a method no MCP revision
// has). Client-chosen names never reach span names, which tracing
// backends index: only the attributes hold them, bounded.
func (s *Server) spanName(r *http.Request, tr *trail) string {
	if tr.peeked && mcpMethods[tr.peek.Method] {
		if tr.peek.Method == string(mcp.MethodToolsCall) {
			if _, ok := s.tools[tr.peek.Params.Name]; ok {
				return tr.peek.Method + " " + tr.peek.Params.Name
			}
		}
		return tr.peek.Method
	}
	return r.Method + " " + s.mcpPath
}

// mcpMethods are the methods of the MCP revisions the server speaks, the
// names a span may be given.
var mcpMethods = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range []mcp.MCPMethod{
		mcp.MethodInitialize, mcp.MethodPing, mcp.MethodServerDiscover,
		mcp.MethodToolsList, mcp.MethodToolsCall,
		mcp.MethodResourcesList, mcp.MethodResourcesTemplatesList, mcp.MethodResourcesRead,
		mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsubscribe,
		mcp.MethodPromptsList, mcp.MethodPromptsGet, mcp.MethodCompletionComplete, mcp.MethodSetLogLevel,
		mcp.MethodSubscriptionsListen, mcp.MethodTasksGet, mcp.MethodTasksList, mcp.MethodTasksResult, mcp.MethodTasksCancel,
		mcp.MethodNotificationInitialized, mcp.MethodNotificationCancelled, mcp.MethodNotificationProgress,
		mcp.MethodNotificationRootsListChanged,
	} {
		m[string(name)] = true
	}
	return m
}()

// endSpan ends the request's span with how the request ended; record
// calls it before the access log and the audit event, which take their
// trace id from the span (traceIDOf).
func (s *Server) endSpan(r *http.Request, tr *trail) {
	if s.tracer == nil {
		return
	}
	s.startSpan(r.Context(), r, tr) // refused before serveMCP started it
	outcome, reason := s.outcomeOf(r, tr)
	status := tr.status
	if status == 0 {
		status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs,
		attrRequestID.String(tr.requestID(s.idPrefix)),
		attrOutcome.String(outcome),
		attrHTTPStatus.Int(status),
	)
	if rec := tr.tenant; rec != nil {
		attrs = append(attrs, attrTenantID.String(string(rec.ID)))
	}
	if tr.peeked && tr.peek.Method != "" {
		attrs = append(attrs, attrMethod.String(clip(tr.peek.Method, maxAuditName)))
		if tr.peek.Method == string(mcp.MethodToolsCall) {
			attrs = append(attrs, attrTool.String(clip(tr.peek.Params.Name, maxAuditName)))
		}
	}
	if p := tr.protocol(r.Header); p != "" {
		attrs = append(attrs, attrProtocol.String(p))
	}
	if outcome != audit.OutcomeOK {
		attrs = append(attrs, attrErrorType.String(reason))
		tr.span.SetStatus(codes.Error, reason)
	}
	tr.span.SetAttributes(attrs...)
	tr.span.End(trace.WithTimestamp(s.opts.Now()))
}

// traceIDOf is the trace id a request's audit event and access log line
// record: its span's when tracing is on (the trace the collector sees),
// else that of a well-formed traceparent header.
func (s *Server) traceIDOf(r *http.Request, tr *trail) string {
	if tr.span != nil {
		if sc := tr.span.SpanContext(); sc.HasTraceID() {
			return sc.TraceID().String()
		}
	}
	return traceID(r.Header.Get("Traceparent"))
}

// startToolSpan starts the span of a tool call, a child of the request's
// span in ctx; it returns a nil span when tracing is off.
func (s *Server) startToolSpan(ctx context.Context, rq *request, t *Tool) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	return s.tracer.Start(ctx, "execute_tool "+t.Name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithTimestamp(s.opts.Now()),
		trace.WithAttributes(
			attrTenantID.String(string(rq.tenant.ID)),
			attrOperation.String("execute_tool"),
			attrTool.String(t.Name),
			attrRequestID.String(rq.requestID()),
		))
}

// endToolSpan ends a tool call's span with the class of its error, if any
// (never the error's text: it may hold the tenant's data).
func (s *Server) endToolSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		class := "internal"
		if isUserError(err) {
			class = "tool_error"
		}
		span.SetAttributes(attrErrorType.String(class))
		span.SetStatus(codes.Error, class)
	}
	span.End(trace.WithTimestamp(s.opts.Now()))
}
