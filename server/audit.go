package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
)

// This file records the audit trail: one event per MCP request (served or
// refused), in the chain of the request's tenant, or in audit.SystemChain
// when no tenant is known.

// FlagAuditArguments is the tenant flag that decides whether the audit
// events of the tenant's tool calls hold the arguments themselves: true
// stores them, false never does, and without the flag the deployment's
// Options.AuditArguments decides. Every tool call event has the
// arguments' size and SHA-256 in any case.
const FlagAuditArguments = "audit_arguments"

// DefaultAuditLogScope is the scope the audit_log tool requires when
// Options.AuditLogScope is empty.
const DefaultAuditLogScope = "audit:read"

// Bounds on the client-supplied text an event keeps.
const (
	maxAuditName     = 128 // method, tool
	maxAuditProtocol = 32
)

// trail is what the request path learns about one request for its audit
// event, its access log line and its metrics (see finished). Its methods
// accept a nil receiver.
type trail struct {
	start    time.Time
	seq      uint64
	ident    *auth.Identity
	external string // the tenant id looked up (SingleTenant or the token's)
	tenant   *registry.Tenant
	peek     rpcPeek
	peeked   bool
	slot     *audit.Slot
	noWait   bool           // the queue is known to be full: record the refusal without waiting
	imp      *Impersonation // the grant of an impersonation credential
	refusal  string         // classify's reason, when refused
	// Set while the request is served: by the tool handler and the
	// protocol library's hooks (outcome, class) and the response (status).
	outcome, class string
	status         int
	// rq is what an admitted request's tools see, allocated with the
	// trail: one allocation per request for both.
	rq request
	// span is the request's trace span; nil with tracing off (tracing.go).
	span trace.Span
}

// newTrail starts the record of a request.
func (s *Server) newTrail() *trail {
	return &trail{start: s.opts.Now(), seq: s.seq.Add(1)}
}

func (tr *trail) verified(ident *auth.Identity, externalID string) {
	if tr != nil {
		tr.ident, tr.external = ident, externalID
	}
}

func (tr *trail) resolved(rec *registry.Tenant) {
	if tr != nil && rec != nil {
		tr.tenant = rec
	}
}

func (tr *trail) refused(reason string) {
	if tr != nil {
		tr.refusal = reason
	}
}

// failed records that a served request failed, unless something nearer
// the failure said so first (the tool handler before the hooks).
func (tr *trail) failed(class string) {
	if tr != nil && tr.outcome == "" {
		tr.outcome, tr.class = audit.OutcomeError, class
	}
}

func (tr *trail) succeeded() {
	if tr != nil && tr.outcome == "" {
		tr.outcome = audit.OutcomeOK
	}
}

// requestID is the request's id, as in its log lines.
func (tr *trail) requestID(prefix string) string {
	return prefix + "-" + strconv.FormatUint(tr.seq, 36)
}

// record builds the request's event and queues it: into the slot the
// request reserved if it was served, otherwise through Record (which
// waits at most the writer's MaxWait and counts what it cannot queue).
func (s *Server) record(r *http.Request, tr *trail) {
	if tr == nil {
		return
	}
	s.endSpan(r, tr)  // tracing.go: first, for the trace id below and in the log
	s.finished(r, tr) // metrics and the access log
	if s.opts.Audit == nil {
		return
	}
	e := audit.Event{
		Time:          tr.start,
		RequestID:     tr.requestID(s.idPrefix),
		LatencyMicros: max(s.opts.Now().Sub(tr.start).Microseconds(), 1),
		TraceID:       s.traceIDOf(r, tr),
		Protocol:      tr.protocol(r.Header),
	}
	if tr.ident != nil { // a verified token: never anything from an unverified one
		e.Issuer, e.ExternalID, e.User = tr.ident.Issuer, tr.external, tr.ident.UserID
	}
	if tr.imp != nil { // made by an admin as this tenant (RFC 8693 act)
		e.Actor = &audit.Actor{Sub: tr.imp.Actor.Sub, Issuer: tr.imp.Actor.Issuer}
		e.Detail = map[string]string{"impersonation_id": tr.imp.ID}
	}
	if rec := tr.tenant; rec != nil {
		e.Tenant, e.Issuer, e.ExternalID = string(rec.ID), rec.Issuer, rec.ExternalID
	}
	switch {
	case tr.peeked:
		e.Method = clip(tr.peek.Method, maxAuditName)
	case r.Method != http.MethodPost:
		e.Method = r.Method // a stateful session's GET stream or DELETE
	}
	if tr.peeked && tr.peek.Method == string(mcp.MethodToolsCall) {
		e.Tool = clip(tr.peek.Params.Name, maxAuditName)
		s.auditArguments(&e, tr)
	}
	switch {
	case tr.refusal != "":
		e.Kind, e.Outcome, e.ErrorClass = audit.KindRefusal, audit.OutcomeRefused, tr.refusal
	default:
		e.Kind = audit.KindRequest
		if tr.peeked && tr.peek.Method == string(mcp.MethodToolsCall) {
			e.Kind = audit.KindToolCall
		}
		e.Outcome, e.ErrorClass = tr.servedOutcome(r)
	}
	if tr.slot != nil {
		tr.slot.Commit(&e)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	if tr.noWait {
		ctx = doneContext
	}
	// A refusal the queue has no room for is counted and logged by the
	// writer (tenantmcp_audit_events_dropped_total).
	_ = s.opts.Audit.Record(ctx, &e)
}

// doneContext makes Writer.Record take a free slot or none, without waiting.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// servedOutcome is the outcome of a request that was served: what the
// tool handler or the protocol library's hooks said, else what the answer
// shows.
func (tr *trail) servedOutcome(r *http.Request) (outcome, class string) {
	switch {
	case tr.outcome != "":
		return tr.outcome, tr.class
	case tr.status >= 400:
		return audit.OutcomeError, "http_" + strconv.Itoa(tr.status)
	case r.Method != http.MethodPost:
		return audit.OutcomeOK, ""
	case !tr.peeked:
		return audit.OutcomeError, "parse_error"
	case tr.peek.Method != "" && validID(tr.peek.ID):
		// A request no hook saw answered: the protocol library refused it
		// itself (unknown method, protocol version, headers).
		return audit.OutcomeError, "protocol_error"
	}
	return audit.OutcomeOK, "" // a notification, or a response to the server
}

// auditArguments describes a tool call's arguments in e: size and SHA-256
// of their compact JSON always, the arguments themselves only where the
// tenant (FlagAuditArguments) or the deployment (Options.AuditArguments)
// says so. Compact JSON is what the event stores, so the hash of stored
// arguments can be checked against them.
func (s *Server) auditArguments(e *audit.Event, tr *trail) {
	raw := tr.peek.Params.Arguments
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	buf := getBuffer()
	defer putBuffer(buf)
	canon, err := compactArguments(buf, raw)
	if err != nil {
		return
	}
	sum := sha256.Sum256(canon)
	e.ArgsSize, e.ArgsSHA256 = len(canon), hex.EncodeToString(sum[:])
	store := s.opts.AuditArguments
	if tr.tenant != nil {
		if v, ok := tr.tenant.Flags[FlagAuditArguments]; ok {
			store = v
		}
	}
	if store {
		e.Args = bytes.Clone(canon)
	}
}

// compactArguments returns raw as json.Marshal writes a json.RawMessage:
// compact, with <, >, & and U+2028, U+2029 escaped (as the event encodes
// it). Without those characters that is json.Compact's output, which
// needs no reflection and only buf; the bytes are buf's or, with them,
// Marshal's.
func compactArguments(buf *bytes.Buffer, raw json.RawMessage) ([]byte, error) {
	if bytes.ContainsAny(raw, "<>&\u2028\u2029") {
		return json.Marshal(raw)
	}
	if err := json.Compact(buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// protocol is the request's MCP protocol revision: its
// MCP-Protocol-Version header, else its _meta, else (initialize) the
// revision it asks for.
func (tr *trail) protocol(h http.Header) string {
	if v := h.Get(mcp.HeaderProtocolVersion); v != "" {
		return clip(v, maxAuditProtocol)
	}
	if !tr.peeked {
		return ""
	}
	if meta := tr.peek.Params.Meta; len(meta) > 0 {
		var m struct {
			Version string `json:"io.modelcontextprotocol/protocolVersion"`
		}
		if json.Unmarshal(meta, &m) == nil && m.Version != "" {
			return clip(m.Version, maxAuditProtocol)
		}
	}
	if pv := tr.peek.Params.ProtocolVersion; len(pv) > 0 && tr.peek.Method == string(mcp.MethodInitialize) {
		var v string
		if json.Unmarshal(pv, &v) == nil {
			return clip(v, maxAuditProtocol)
		}
	}
	return ""
}

// traceID returns the trace id of a well-formed W3C traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>"), or "". It is recorded to correlate the
// event with traces, and trusted for nothing else.
func traceID(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	version, id, parent, flags := tp[:2], tp[3:35], tp[36:52], tp[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(id) || !lowerHex(parent) || !lowerHex(flags) ||
		strings.Trim(id, "0") == "" || strings.Trim(parent, "0") == "" {
		return ""
	}
	if len(tp) > 55 && (version == "00" || tp[55] != '-') {
		return ""
	}
	return id
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clip bounds client-supplied text to max bytes of valid UTF-8.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// auditHooks tell a served request's trail how the protocol library
// answered it.
func auditHooks() *mcpserver.Hooks {
	h := &mcpserver.Hooks{}
	h.AddOnSuccess(func(ctx context.Context, _ any, _ mcp.MCPMethod, _ any, result any) {
		rq := requestFrom(ctx)
		if rq == nil {
			return
		}
		if res, ok := result.(*mcp.CallToolResult); ok && res != nil && res.IsError {
			rq.tr.failed("tool_error")
			return
		}
		rq.tr.succeeded()
	})
	h.AddOnError(func(ctx context.Context, _ any, _ mcp.MCPMethod, _ any, err error) {
		if rq := requestFrom(ctx); rq != nil {
			rq.tr.failed(rpcErrorClass(err))
		}
	})
	return h
}

// rpcErrorClass names a JSON-RPC error the protocol library answered.
func rpcErrorClass(err error) string {
	if errors.Is(err, mcpserver.ErrToolNotFound) {
		return "tool_not_found"
	}
	var coded interface{ ToJSONRPCError() mcp.JSONRPCError }
	if !errors.As(err, &coded) {
		return "rpc_error"
	}
	switch coded.ToJSONRPCError().Error.Code {
	case mcp.PARSE_ERROR:
		return "parse_error"
	case mcp.INVALID_REQUEST:
		return "invalid_request"
	case mcp.METHOD_NOT_FOUND:
		return "method_not_found"
	case mcp.INVALID_PARAMS:
		return "invalid_params"
	case mcp.INTERNAL_ERROR:
		return "internal"
	}
	return "rpc_error"
}

// auditCollector exports the audit writer's counters.
type auditCollector struct{ w *audit.Writer }

var (
	auditDepthDesc      = prometheus.NewDesc("tenantmcp_audit_queue_depth", "Audit events reserved or queued and not yet stored.", nil, nil)
	auditCapacityDesc   = prometheus.NewDesc("tenantmcp_audit_queue_capacity", "Size of the audit queue (audit.queue_size).", nil, nil)
	auditWrittenDesc    = prometheus.NewDesc("tenantmcp_audit_events_written_total", "Audit events stored.", nil, nil)
	auditBatchDesc      = prometheus.NewDesc("tenantmcp_audit_batch_duration_seconds", "Time to store a batch of audit events, retries included.", nil, nil)
	auditBusyDesc       = prometheus.NewDesc("tenantmcp_audit_backpressure_total", "Times the audit queue stayed full for audit.max_wait (the request was refused with 503, or its refusal event dropped).", nil, nil)
	auditDroppedDesc    = prometheus.NewDesc("tenantmcp_audit_events_dropped_total", "Audit events not stored (queue full for a refusal, writer closed, shutdown out of time). Each is also logged.", nil, nil)
	auditErrorsDesc     = prometheus.NewDesc("tenantmcp_audit_append_errors_total", "Failed attempts to store a batch of audit events (retried; the events stay queued).", nil, nil)
	auditConflictsDesc  = prometheus.NewDesc("tenantmcp_audit_conflicts_total", "Batches chained again because another replica appended to one of their chains first.", nil, nil)
	auditCheckpointDesc = prometheus.NewDesc("tenantmcp_audit_checkpoints_total", "Signed audit checkpoints stored.", nil, nil)
	auditCPErrorsDesc   = prometheus.NewDesc("tenantmcp_audit_checkpoint_errors_total", "Signed audit checkpoints that could not be stored (tried again at the next interval).", nil, nil)
)

func (c auditCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{auditDepthDesc, auditCapacityDesc, auditWrittenDesc, auditBatchDesc, auditBusyDesc,
		auditDroppedDesc, auditErrorsDesc, auditConflictsDesc, auditCheckpointDesc, auditCPErrorsDesc} {
		ch <- d
	}
}

func (c auditCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.Stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(auditDepthDesc, st.QueueDepth)
	gauge(auditCapacityDesc, st.QueueCapacity)
	counter(auditWrittenDesc, st.Written)
	counter(auditBusyDesc, st.Backpressure)
	counter(auditDroppedDesc, st.Dropped)
	counter(auditErrorsDesc, st.AppendErrors)
	counter(auditConflictsDesc, st.Conflicts)
	counter(auditCheckpointDesc, st.Checkpoints)
	counter(auditCPErrorsDesc, st.CheckpointErrors)
	h := st.BatchLatency
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b.Seconds()] = h.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(auditBatchDesc, h.Count, h.Sum.Seconds(), buckets)
}

// logAttr is the request id, and the tenant id once known, for a log
// line (a group without a name, which handlers inline).
func (tr *trail) logAttr(prefix string) slog.Attr {
	if tr == nil {
		return slog.Attr{}
	}
	if tr.tenant == nil {
		return slog.String("request_id", tr.requestID(prefix))
	}
	return slog.Group("", slog.String("tenant_id", string(tr.tenant.ID)), slog.String("request_id", tr.requestID(prefix)))
}
