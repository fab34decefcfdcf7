package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
)

// JSON-RPC error codes of refusals. MCP uses the standard JSON-RPC 2.0
// codes for general failures and defines its own only from -32020 on
// (2026-07-28, basic/index "Error Codes"); the -32000…-32019 range is legacy
// and new implementations should not use it. The HTTP status carries the
// specific reason (401, 403, 429, …).
const (
	codeInvalidRequest = -32600
	codeInternalError  = -32603
	codeHeaderMismatch = -32020 // headers missing, malformed or not matching the body
)

// refusal is how one refused request is answered.
type refusal struct {
	status int
	// rpcCode is the JSON-RPC error code of the body.
	rpcCode int
	// challenge, if set, sends a WWW-Authenticate header; code is its RFC
	// 6750 error code ("" = a challenge without error, as for a request
	// that carried no token at all, RFC 6750 §3.1).
	challenge bool
	code      string
	// scope is the scope to name in an insufficient_scope challenge.
	scope string
	// message is safe to show the client: it names what failed and what to
	// do, and never mentions another tenant.
	message string
	// reason labels the metric.
	reason string
	// retryAfter, if set, is sent as Retry-After (seconds).
	retryAfter string
	// allow, if set, is sent as Allow (405).
	allow string
}

// classify maps a request-path error to its answer. It is the one place
// that decides statuses, codes and client messages.
func classify(err error) refusal {
	var (
		claim  *auth.ClaimError
		scope  *scopeError
		limit  *limitError
		method *methodError
		header *headerError
		// limits.go
		headerSize *headerSizeError
		depth      *depthError
	)
	ref := refusal{rpcCode: codeInvalidRequest}
	switch {
	case errors.Is(err, auth.ErrMissingToken):
		ref.status, ref.challenge, ref.reason = 401, true, "no_token"
		ref.message = "no bearer token: send Authorization: Bearer <access token>"
	case errors.Is(err, auth.ErrMalformedHeader):
		ref.status, ref.challenge, ref.code, ref.reason = 400, true, "invalid_request", "malformed_header"
		ref.message = "malformed Authorization header: want \"Bearer <access token>\""
	case errors.As(err, &claim):
		ref.status, ref.challenge, ref.code, ref.reason = 401, true, "invalid_token", "no_tenant_claim"
		ref.message = err.Error()
	case errors.Is(err, auth.ErrKeysUnavailable):
		ref.status, ref.rpcCode, ref.reason, ref.retryAfter = 503, codeInternalError, "keys_unavailable", "5"
		ref.message = "cannot verify tokens right now: the identity provider's signing keys are unavailable; retry shortly"
	case errors.Is(err, auth.ErrInvalidToken):
		ref.status, ref.challenge, ref.code, ref.reason = 401, true, "invalid_token", "invalid_token"
		ref.message = err.Error()
	case errors.Is(err, registry.ErrUnknownTenant):
		ref.status, ref.reason = 403, "unknown_tenant"
		ref.message = "tenant is not registered with this server: ask the operator to add your organisation"
	case errors.Is(err, registry.ErrSuspended):
		ref.status, ref.reason = 403, "suspended"
		ref.message = "tenant is suspended: contact the operator of this server"
	case errors.Is(err, registry.ErrProvisioning):
		ref.status, ref.rpcCode, ref.reason, ref.retryAfter = 503, codeInternalError, "provisioning", "5"
		ref.message = registry.ErrProvisioning.Error()
	case errors.Is(err, registry.ErrArchived):
		ref.status, ref.reason, ref.message = 403, "archived", registry.ErrArchived.Error()
	case errors.Is(err, registry.ErrTrialExpired):
		ref.status, ref.reason, ref.message = 403, "trial_expired", err.Error()
	case errors.As(err, &scope):
		ref.status, ref.challenge, ref.code, ref.reason = 403, true, "insufficient_scope", "insufficient_scope"
		ref.scope, ref.message = strings.Join(scope.missing, " "), err.Error()
	case errors.As(err, &limit):
		ref.status, ref.reason, ref.message = 429, "rate_limited_"+limit.scope, err.Error()
		ref.retryAfter = retryAfter(limit.d)
	case errors.Is(err, errConcurrency):
		ref.status, ref.reason, ref.message, ref.retryAfter = 429, "concurrency", err.Error(), "1"
	case errors.Is(err, errServerBusy):
		ref.status, ref.rpcCode, ref.reason, ref.retryAfter = 503, codeInternalError, reasonServerBusy, "1"
		ref.message = err.Error()
	case errors.As(err, &headerSize):
		ref.status, ref.reason, ref.message = 431, reasonHeaderTooLarge, err.Error()
	case errors.As(err, &depth):
		ref.status, ref.reason, ref.message = 400, reasonJSONTooDeep, err.Error()
	case errors.Is(err, ratelimit.ErrUnavailable):
		ref.status, ref.rpcCode, ref.reason, ref.retryAfter = 503, codeInternalError, "limiter_unavailable", "1"
		ref.message = "rate limiter unavailable; retry shortly"
	case errors.Is(err, errSession):
		ref.status, ref.reason, ref.message = 404, "session", "session not found: start a new session"
	case errors.Is(err, errBodyTooLarge):
		ref.status, ref.reason, ref.message = 413, "body_too_large", err.Error()
	case errors.Is(err, errBodyReads):
		ref.status, ref.reason, ref.message, ref.retryAfter = 429, "body_reads", err.Error(), "1"
	case errors.Is(err, errBodyTimeout):
		ref.status, ref.reason, ref.message = 408, "body_timeout", errBodyTimeout.Error()
	case errors.Is(err, errBodyRead):
		ref.status, ref.reason, ref.message = 400, "body_read", err.Error()
	case errors.Is(err, errBatch):
		ref.status, ref.reason, ref.message = 400, "batch", err.Error()
	case errors.As(err, &header):
		ref.status, ref.rpcCode, ref.reason, ref.message = 400, codeHeaderMismatch, "header", err.Error()
	case errors.Is(err, errHost):
		ref.status, ref.reason, ref.message = 403, "host", err.Error()
	case errors.Is(err, errNoAdminWithoutAuth):
		ref.status, ref.reason, ref.message = 403, "no_admin", err.Error()
	case errors.Is(err, errOrigin):
		ref.status, ref.reason, ref.message = 403, "origin", err.Error()
	case errors.As(err, &method):
		ref.status, ref.reason, ref.message, ref.allow = 405, "method", err.Error(), method.allow
	case errors.Is(err, audit.ErrBackpressure):
		ref.status, ref.rpcCode, ref.reason, ref.retryAfter = 503, codeInternalError, "audit_backpressure", "1"
		ref.message = "the server cannot record requests fast enough right now; retry shortly"
	case errors.Is(err, audit.ErrClosed):
		ref.status, ref.rpcCode, ref.reason, ref.retryAfter = 503, codeInternalError, "audit_closed", "1"
		ref.message = "the server is shutting down; retry shortly"
	default:
		ref.status, ref.rpcCode, ref.reason, ref.message = 500, codeInternalError, reasonInternal, "internal error"
	}
	return ref
}

// reasonInternal is the reason of an error classify does not know.
const reasonInternal = "internal"

// classify is classify, then Options.Unavailable for the errors classify
// does not know: a dependency that cannot serve right now (the database
// busy or restarting) is 503 with Retry-After, not an internal error.
func (s *Server) classify(err error) refusal {
	ref := classify(err)
	if ref.reason != reasonInternal || s.opts.Unavailable == nil {
		return ref
	}
	if reason, message, ok := s.opts.Unavailable(err); ok {
		ref.status, ref.rpcCode, ref.reason, ref.message, ref.retryAfter = 503, codeInternalError, reason, message, "1"
	}
	return ref
}

func retryAfter(d ratelimit.Decision) string {
	secs := int((d.RetryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}

// refuse answers a refused request whose body has not been read. When the
// body is small and already on its way (a declared Content-Length of at
// most idPeekLimit) it is read, briefly, to echo the JSON-RPC id.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, tr *trail, err error) {
	s.refuseID(w, r, tr, peekRequestID(r), err)
}

// refuseBody answers a refused request whose body has been read.
func (s *Server) refuseBody(w http.ResponseWriter, r *http.Request, tr *trail, body []byte, err error) {
	s.refuseID(w, r, tr, requestIDOf(body), err)
}

// refuseID answers a refused request: the headers of refusalHeaders and a
// JSON-RPC error body carrying the request's id (null when unknown).
func (s *Server) refuseID(w http.ResponseWriter, r *http.Request, tr *trail, id json.RawMessage, err error) {
	ref := s.refusalHeaders(w, r, tr, err)
	writeJSONRPCError(w, ref.status, ref.rpcCode, id, ref.message)
}

// refusalHeaders classifies a refusal, counts it, records it in the
// request's trail (nil = none) and sets its headers: a WWW-Authenticate
// challenge where the MCP authorization spec wants one, Retry-After and
// Allow. The caller writes the body.
func (s *Server) refusalHeaders(w http.ResponseWriter, r *http.Request, tr *trail, err error) refusal {
	ref := s.classify(err)
	s.metrics.refused.WithLabelValues(ref.reason).Inc()
	tr.refused(ref.reason)
	if tr != nil {
		tr.status = ref.status
	}
	if ref.status == 500 {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "path", r.URL.Path, tr.logAttr(s.idPrefix))
	} else {
		s.log.DebugContext(r.Context(), "request refused", "status", ref.status, "reason", ref.reason, "err", err, tr.logAttr(s.idPrefix))
	}
	h := w.Header()
	if ref.challenge {
		scope := ref.scope
		if scope == "" && ref.status == http.StatusUnauthorized {
			// Tell the client which scopes to ask for (MCP authorization,
			// "Scope Selection Strategy").
			scope = strings.Join(s.opts.Metadata.ScopesSupported, " ")
		}
		desc := ref.message
		if ref.code == "" {
			desc = "" // no token at all: no error information (RFC 6750 §3.1)
		}
		h.Set("WWW-Authenticate", auth.Challenge(ref.code, desc, scope, s.metadataURL))
	}
	if ref.retryAfter != "" {
		h.Set("Retry-After", ref.retryAfter)
	}
	if ref.allow != "" {
		h.Set("Allow", ref.allow)
	}
	return ref
}

// rpcError is a JSON-RPC 2.0 error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorDetails `json:"error"`
}

type rpcErrorDetails struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

var jsonNull = json.RawMessage("null")

// writeJSONRPCError writes a JSON-RPC error response. id must be a JSON
// string or number (anything else is sent as null); message is encoded as
// JSON, so no input can break the body.
func writeJSONRPCError(w http.ResponseWriter, status, code int, id json.RawMessage, message string) {
	if !validID(id) {
		id = jsonNull
	}
	b, err := json.Marshal(rpcError{JSONRPC: "2.0", ID: id, Error: rpcErrorDetails{Code: code, Message: message}})
	if err != nil { // unreachable: every field is valid JSON by construction
		b = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// validID reports whether id is a JSON-RPC request id: a JSON string or
// number.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	switch c := id[0]; {
	case c == '"':
		var s string
		return json.Unmarshal(id, &s) == nil
	case c == '-' || (c >= '0' && c <= '9'):
		var n json.Number
		return json.Unmarshal(id, &n) == nil
	}
	return false
}

// requestIDOf returns the id of a single JSON-RPC message, or nil.
func requestIDOf(body []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) != nil || !validID(m.ID) {
		return nil
	}
	return m.ID
}

// idPeekLimit bounds what a refusal reads of an unread body to find the
// request id; bigger or chunked bodies are answered with id null.
const idPeekLimit = 16 << 10

// peekRequestID reads a small unread POST body (at most idPeekLimit; the
// body's read deadline, server.read_timeout, bounds a slow one) and returns
// its JSON-RPC id, or nil.
func peekRequestID(r *http.Request) json.RawMessage {
	if r.Method != http.MethodPost || r.ContentLength <= 0 || r.ContentLength > idPeekLimit {
		return nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, idPeekLimit)); err != nil {
		return nil
	}
	return requestIDOf(buf.Bytes())
}
