package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// request is what the request path learned about a call; tool filters and
// handlers read it from the context.
type request struct {
	tenant *registry.Tenant
	ident  *auth.Identity
	tc     tenant.Context // what tools see through tenant.From
	// seq numbers the request within this process; with the process's
	// random prefix it is the request id of logs and internal errors.
	seq    uint64
	prefix string
	// Allocated with the request rather than one by one: the protocol
	// library's view of the request and the writer it answers through.
	hr mcpserver.HTTPRequest
	pw protocolWriter
	// tr is the request's record (audit event, access log, metrics): the
	// tool handler and the protocol library's hooks say how it ended.
	tr *trail
	// imp is the grant of a request made with an impersonation
	// credential; admin the admin of an admin's request. Nil otherwise.
	imp   *Impersonation
	admin *AdminCaller
	// log is the server's logger for Logger(ctx).
	log *slog.Logger
	// bigArgs is the size of a tools/call's arguments that were over
	// MaxArgumentBytes and taken out of the body (limits.go); 0 if none.
	bigArgs int
	// ctx is the admitted request's context (see requestContext), and
	// sid the value of its stateless Mcp-Session-Id header: both live
	// here rather than in allocations of their own.
	ctx requestContext
	sid [1]string
}

type requestKey struct{}

// requestContext is an admitted request's context: one layer that
// answers for the request (requestFrom), its tenant (tenant.From) and the
// deployment's stores (the store accessors), where three
// context.WithValue layers would each cost an allocation and make every
// lookup above them walk further.
type requestContext struct {
	context.Context
	rq     *request
	stores *store.Set // nil: none configured, the parent answers
}

func (c *requestContext) Value(key any) any {
	switch key.(type) {
	case requestKey:
		return c.rq
	case tenant.ContextKey:
		return &c.rq.tc
	case store.SetKey:
		if c.stores != nil {
			return c.stores
		}
	}
	return c.Context.Value(key)
}

// requestID is the request's id in logs and in "internal error" messages.
func (rq *request) requestID() string {
	return rq.prefix + "-" + strconv.FormatUint(rq.seq, 36)
}

// statelessSessionID is the session id handed to the protocol library for
// this request alone (stateless mode): "stateless-" and the request id,
// built in one allocation.
func (rq *request) statelessSessionID() string {
	var buf [64]byte
	b := append(append(append(buf[:0], "stateless-"...), rq.prefix...), '-')
	return string(strconv.AppendUint(b, rq.seq, 36))
}

// newIDPrefix returns a random prefix that keeps request ids of different
// processes (replicas, restarts) apart.
func newIDPrefix() string {
	var b [5]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func requestFrom(ctx context.Context) *request {
	r, _ := ctx.Value(requestKey{}).(*request)
	return r
}

// rpcPeek is the part of a JSON-RPC message the request path needs before
// the protocol library sees it. The body is decoded into it once, for the
// scope check and the audit event.
type rpcPeek struct {
	Method string          `json:"method"`
	ID     json.RawMessage `json:"id"`
	Params struct {
		Name string `json:"name"`
		// For the audit event; raw, so that no value of theirs makes
		// the decoding (and so the scope check) fail.
		Arguments       json.RawMessage `json:"arguments"`
		ProtocolVersion json.RawMessage `json:"protocolVersion"`
		Meta            json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// serveMCP runs the request path in front of the MCP handler.
func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions { // a CORS preflight: not a request to audit
		w.WriteHeader(http.StatusNoContent)
		return
	}
	tr := s.newTrail()
	defer s.record(r, tr)
	switch {
	case r.Method == http.MethodPost:
	case s.sessions != nil && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		// Stateful mode only: a session's stream and its termination.
		if drain, ok := r.Context().Value(drainKey{}).(context.Context); ok && r.Method == http.MethodGet {
			// A stream carries no work to finish: it ends when Serve's
			// drain starts rather than hold the shutdown up; the client
			// opens a new one (on another replica).
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			defer context.AfterFunc(drain, cancel)()
			r = r.WithContext(ctx)
		}
	default:
		// Stateless (the default) has no GET stream: a stream no request
		// owns would be shared by every caller without a session.
		s.refuse(w, r, tr, &methodError{allow: s.allowedMethods()})
		return
	}
	if !s.origins.allowed(r.Header.Get("Origin")) {
		s.refuse(w, r, tr, errOrigin)
		return
	}
	if err := checkHeaderValues(r.Header); err != nil {
		s.refuse(w, r, tr, err)
		return
	}
	ctx := r.Context()

	// 1. Who is calling: a verified token, nothing else.
	ident, admin, err := s.authenticate(ctx, r, tr)
	if err != nil {
		s.refuse(w, r, tr, err)
		return
	}
	// The token has done its job: nothing past this point (the protocol
	// library, tools, logs) sees it, so nothing can forward it.
	r.Header.Del("Authorization")
	if admin { // an admin's request: the admin tools, no tenant
		tr.verified(ident, "")
		s.serveAdminMCP(w, r, tr, ident)
		return
	}

	// 2. Which tenant: the configured claim, resolved in the registry.
	externalID := ident.TenantID
	if s.opts.SingleTenant != "" {
		externalID = s.opts.SingleTenant
	}
	tr.verified(ident, externalID)
	if externalID == "" {
		s.refuse(w, r, tr, &auth.ClaimError{Claim: s.tenantClaim(), Problem: auth.ClaimMissing})
		return
	}
	rec, err := s.opts.Registry.Resolve(ctx, ident.Issuer, externalID)
	if tr != nil && tr.imp != nil {
		err = checkImpersonation(tr.imp, rec, err)
		if errors.Is(err, errImpersonatedTenant) {
			rec = nil // not the grant's tenant: nothing goes to its chain
		}
	}
	tr.resolved(rec) // a suspended tenant's refusals go to its own chain
	if err != nil {
		s.refuse(w, r, tr, err)
		return
	}

	// 3. Rate limits: the tenant's budget, then the user's.
	if !s.allow(w, r, tr, rec, ident) {
		return
	}

	// 4. What is asked: peek at the JSON-RPC method to enforce tool scopes
	// at the HTTP level (403 insufficient_scope lets clients step up).
	var body []byte
	bigArgs := 0 // arguments over MaxArgumentBytes, taken out of body
	if r.Method == http.MethodPost {
		// One tenant's slow uploads cannot hold every connection. (New
		// makes MaxBodyReadsPerTenant positive, so the slot is tracked
		// and released exactly once, below.)
		if !s.bodyReads.TryAcquire(string(rec.ID), s.opts.MaxBodyReadsPerTenant) {
			s.refuseID(w, r, tr, nil, errBodyReads)
			return
		}
		buf := getBuffer()
		defer putBuffer(buf)
		body, err = readBody(w, r, buf, s.opts.MaxBodyBytes)
		s.bodyReads.Release(string(rec.ID))
		if err != nil {
			s.refuseID(w, r, tr, nil, err)
			return
		}
		if isBatch(body) {
			s.refuseBody(w, r, tr, nil, errBatch)
			return
		}
		// Before anything decodes it (the peek below, the protocol library).
		if err := s.checkBodyDepth(body); err != nil {
			s.refuseBody(w, r, tr, body, err)
			return
		}
		if s.decodesBodies(ctx) {
			var m rpcPeek
			peeked := json.Unmarshal(body, &m) == nil // else the MCP layer answers a parse error
			if tr != nil {
				tr.peek, tr.peeked = m, peeked
			}
			if peeked && s.scoped {
				if missing := s.missingScopesOf(&m, ident); len(missing) > 0 {
					s.refuseBody(w, r, tr, body, &scopeError{missing: missing})
					return
				}
			}
		}
		body, bigArgs = s.shrinkArguments(body, tr)
	}
	// The request's span, now that its _meta is known (tracing.go; a no-op
	// with tracing off). A refusal before here gets its span in record.
	ctx = s.startSpan(ctx, r, tr)

	// 5. Sessions (stateful mode only) belong to the tenant and user that
	// opened them. Stateless, and on every 2026-07-28 request (which has no
	// sessions), an Mcp-Session-Id is ignored: it cannot reach any state.
	if sid := r.Header.Get(headerSessionID); sid != "" {
		if s.sessions == nil || isModern(r.Header, body) {
			r.Header.Del(headerSessionID)
		} else if !s.sessions.owns(sid, rec.ID, ident.UserID) {
			s.refuseBody(w, r, tr, body, errSession)
			return
		}
	}

	// 6. One tenant cannot hold every worker.
	if max := s.opts.MaxConcurrentPerTenant; max > 0 {
		if !s.concurrency.TryAcquire(string(rec.ID), max) {
			s.refuseBody(w, r, tr, body, errConcurrency)
			return
		}
		defer s.concurrency.Release(string(rec.ID))
	}
	// The replica's cap, taken only by requests within their tenant's, so
	// a tenant at its cap cannot use it up for the others.
	if !s.limits.admit() {
		s.refuseBody(w, r, tr, body, errServerBusy)
		return
	}
	defer s.limits.release()

	// 7. A request is served only with its audit event's place reserved,
	// so its event cannot be lost to a full queue (503 instead).
	rq := &tr.rq
	*rq = request{tenant: rec, ident: ident, imp: tr.imp, prefix: s.idPrefix, tr: tr, seq: tr.seq, log: s.toolLog, bigArgs: bigArgs}
	if s.opts.Audit != nil {
		slot, err := s.opts.Audit.Reserve(ctx)
		if err != nil {
			tr.noWait = true // the queue is full: do not wait again for the refusal's event
			s.refuseBody(w, r, tr, body, err)
			return
		}
		tr.slot = slot
	}
	rq.tc = tenantContext(rec, ident)
	rq.ctx = requestContext{Context: ctx, rq: rq, stores: s.opts.Stores}
	s.metrics.admitted.Inc()
	s.serveProtocol(&rq.ctx, w, r, body, rq)
}

// readBody reads a POST body of at most max bytes into buf, within the
// read deadline ServeHTTP set (net/http lifts it when the body ends).
func readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errBodyTooLarge
	}
	// buf grows with the bytes that arrive, never with the declared
	// Content-Length: a client that declares 1 MiB and sends a byte now
	// and then holds a few hundred bytes, not a megabyte.
	if _, err := buf.ReadFrom(http.MaxBytesReader(origin(w), r.Body, max)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w (%v)", errBodyTimeout, err)
		}
		return nil, fmt.Errorf("%w: %v", errBodyRead, err)
	}
	return buf.Bytes(), nil
}

// Request bodies are read into pooled buffers: the protocol library copies
// what it keeps (strings, raw arguments) while it decodes, and the buffer
// is returned only after it has answered.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bodyPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return // let rare large bodies go to the garbage collector
	}
	b.Reset()
	bodyPool.Put(b)
}

// authenticate verifies the request's bearer token and reports whether it
// is an admin's (see AdminOptions).
func (s *Server) authenticate(ctx context.Context, r *http.Request, tr *trail) (*auth.Identity, bool, error) {
	if s.opts.LocalIdentity != nil {
		return s.opts.LocalIdentity, false, nil
	}
	token, err := auth.BearerToken(r.Header)
	if err != nil {
		return nil, false, err
	}
	return s.verify(ctx, tr, token)
}

// allow applies the tenant's and the user's rate limits, writing the
// RateLimit headers. It answers the request itself when it refuses.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, tr *trail, rec *registry.Tenant, ident *auth.Identity) bool {
	if s.opts.Limiter == nil {
		return true
	}
	limit := s.opts.DefaultLimit
	if rec.RateLimit > 0 {
		limit.PerMinute = rec.RateLimit
	}
	if rec.RateBurst > 0 {
		limit.Burst = rec.RateBurst
	}
	d, err := s.opts.Limiter.Allow(r.Context(), string(rec.ID), limit)
	if err != nil {
		s.refuse(w, r, tr, err)
		return false
	}
	d.WriteHeaders(w.Header(), "tenant")
	if !d.Allowed {
		s.refuse(w, r, tr, &limitError{scope: "tenant", d: d})
		return false
	}
	if s.opts.PerUserLimit.PerMinute > 0 && ident.UserID != "" {
		d, err := s.opts.Limiter.Allow(r.Context(), string(rec.ID)+"|u|"+ident.UserID, s.opts.PerUserLimit)
		if err != nil {
			s.refuse(w, r, tr, err)
			return false
		}
		d.WriteHeaders(w.Header(), "user")
		if !d.Allowed {
			s.refuse(w, r, tr, &limitError{scope: "user", d: d})
			return false
		}
	}
	return true
}

// missingScopes returns the scopes a tools/call needs that the token does
// not grant. Hidden and unknown tools need none here: the MCP layer
// answers them as unknown. The body is decoded (never matched as bytes),
// so escaped method or tool names are seen as the protocol library sees
// them; the tool handler checks scopes again in any case.
func (s *Server) missingScopes(body []byte, ident *auth.Identity) []string {
	var m rpcPeek
	if json.Unmarshal(body, &m) != nil {
		return nil // the MCP layer answers a parse error
	}
	return s.missingScopesOf(&m, ident)
}

// missingScopesOf is missingScopes of a decoded body.
func (s *Server) missingScopesOf(m *rpcPeek, ident *auth.Identity) []string {
	if m.Method != "tools/call" {
		return nil
	}
	t, ok := s.tools[m.Params.Name]
	if !ok {
		return nil
	}
	var missing []string
	for _, need := range t.Scopes {
		if !s.scopes.grants(ident.Scopes, need) {
			missing = append(missing, need)
		}
	}
	return missing
}

// isBatch reports whether body is a JSON array: a JSON-RPC batch, which
// neither supported protocol revision allows.
func isBatch(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '['
}

// tenantContext builds what a tool sees from the verified identity and
// the registry record.
func tenantContext(rec *registry.Tenant, ident *auth.Identity) tenant.Context {
	name := rec.Name
	if name == "" {
		name = ident.TenantName
	}
	return tenant.Context{
		ID:         rec.ID,
		ExternalID: rec.ExternalID,
		Issuer:     rec.Issuer,
		Name:       name,
		UserID:     ident.UserID,
		Scopes:     ident.Scopes,
		Flags:      rec.Flags,
		Config:     rec.Config,
	}
}

// allowedTool reports whether the tenant may see and call t: its allowed
// tools (empty = all) and the tool's feature flag.
func allowedTool(rec *registry.Tenant, t *Tool) bool {
	if t.Flag != "" && !rec.Flags[t.Flag] {
		return false
	}
	if len(rec.AllowedTools) == 0 {
		return true
	}
	for _, name := range rec.AllowedTools {
		if name == t.Name {
			return true
		}
	}
	return false
}

var (
	errBatch        = errors.New("JSON-RPC batches are not supported: send one message per request")
	errOrigin       = errors.New("forbidden: this Origin is not allowed to call the server (see server.allowed_origins)")
	errBodyTooLarge = errors.New("request body too large")
	errBodyRead     = errors.New("could not read the request body")
	errHost         = errors.New("forbidden: a server listening on loopback only answers loopback Host names")
	errSession      = errors.New("session not found")
	errConcurrency  = errors.New("too many requests in flight for this tenant; retry shortly")
	errBodyReads    = errors.New("too many request bodies still arriving for this tenant; retry shortly")
	errBodyTimeout  = errors.New("request body not received in time: send it without pauses")
)

type scopeError struct {
	missing []string
	what    string // what requires them; "" = "this tool"
}

func (e *scopeError) Error() string {
	what := e.what
	if what == "" {
		what = "this tool"
	}
	return "insufficient scope: " + what + " requires " + strings.Join(e.missing, " ")
}

type limitError struct {
	scope string
	d     ratelimit.Decision
}

func (e *limitError) Error() string {
	return "rate limit exceeded for this " + e.scope + "; retry after the time in Retry-After"
}

// rejectRebinding guards a server bound to a loopback address against DNS
// rebinding: a web page's script must not reach it through a hostname that
// resolves to 127.0.0.1.
func rejectRebinding(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && isLoopbackAddr(local) && !isLoopback(r.Host)
}

// isLoopbackAddr reports whether a listener's address is on loopback.
// A TCP address (every request, with net/http) is asked directly: its
// String form, for isLoopback, costs allocations and a parse.
func isLoopbackAddr(a net.Addr) bool {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp != nil {
		return tcp.IP.IsLoopback()
	}
	return isLoopback(a.String())
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
