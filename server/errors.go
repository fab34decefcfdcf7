package server

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
)

// refusal is how one refused request is answered.
type refusal struct {
	status int
	// code is the RFC 6750 error code for WWW-Authenticate ("" = no
	// challenge header).
	code string
	// scope is the scope to name in an insufficient_scope challenge.
	scope string
	// message is safe to show the client: it names what failed and what to
	// do, and never mentions another tenant.
	message string
	// reason labels the metric.
	reason string
	// retryAfter, if set, is sent as Retry-After (seconds).
	retryAfter string
}

// classify maps a request-path error to its answer. It is the one place
// that decides statuses and client messages.
func classify(err error) refusal {
	var (
		claim *auth.ClaimError
		scope *scopeError
		limit *limitError
	)
	switch {
	case errors.Is(err, auth.ErrMissingToken):
		return refusal{status: 401, code: "invalid_token", reason: "no_token",
			message: "no bearer token: send Authorization: Bearer <access token>"}
	case errors.Is(err, auth.ErrMalformedHeader):
		return refusal{status: 400, code: "invalid_request", reason: "malformed_header",
			message: "malformed Authorization header: want \"Bearer <access token>\""}
	case errors.As(err, &claim):
		return refusal{status: 401, code: "invalid_token", reason: "no_tenant_claim", message: err.Error()}
	case errors.Is(err, auth.ErrKeysUnavailable):
		return refusal{status: 503, reason: "keys_unavailable", retryAfter: "5",
			message: "cannot verify tokens right now: the identity provider's signing keys are unavailable; retry shortly"}
	case errors.Is(err, auth.ErrInvalidToken):
		return refusal{status: 401, code: "invalid_token", reason: "invalid_token", message: err.Error()}
	case errors.Is(err, registry.ErrUnknownTenant):
		return refusal{status: 403, reason: "unknown_tenant",
			message: "tenant is not registered with this server: ask the operator to add your organisation"}
	case errors.Is(err, registry.ErrSuspended):
		return refusal{status: 403, reason: "suspended",
			message: "tenant is suspended: contact the operator of this server"}
	case errors.Is(err, registry.ErrTrialExpired):
		return refusal{status: 403, reason: "trial_expired", message: err.Error()}
	case errors.As(err, &scope):
		return refusal{status: 403, code: "insufficient_scope", scope: strings.Join(scope.missing, " "),
			reason: "insufficient_scope", message: err.Error()}
	case errors.As(err, &limit):
		return refusal{status: 429, reason: "rate_limited_" + limit.scope, message: err.Error(),
			retryAfter: retryAfter(limit.d)}
	case errors.Is(err, errConcurrency):
		return refusal{status: 429, reason: "concurrency", message: err.Error(), retryAfter: "1"}
	case errors.Is(err, ratelimit.ErrUnavailable):
		return refusal{status: 503, reason: "limiter_unavailable", retryAfter: "1",
			message: "rate limiter unavailable; retry shortly"}
	case errors.Is(err, errSession):
		return refusal{status: 404, reason: "session", message: "session not found: start a new session"}
	case errors.Is(err, errBodyTooLarge):
		return refusal{status: 413, reason: "body_too_large", message: err.Error()}
	case errors.Is(err, errBodyRead):
		return refusal{status: 400, reason: "body_read", message: err.Error()}
	case errors.Is(err, errHost):
		return refusal{status: 403, reason: "host", message: err.Error()}
	case errors.Is(err, errMethod):
		return refusal{status: 405, reason: "method", message: err.Error()}
	}
	return refusal{status: 500, reason: "internal", message: "internal error"}
}

func retryAfter(d ratelimit.Decision) string {
	secs := int((d.RetryAfter + 999_999_999) / 1_000_000_000)
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}

// refuse answers a refused request: status, WWW-Authenticate challenge
// where the MCP authorization spec wants one, and a JSON-RPC error body.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	ref := classify(err)
	s.metrics.refused.WithLabelValues(ref.reason).Inc()
	if ref.status == 500 {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "path", r.URL.Path)
	} else {
		s.log.DebugContext(r.Context(), "request refused", "status", ref.status, "reason", ref.reason, "err", err)
	}
	h := w.Header()
	if ref.code != "" {
		h.Set("WWW-Authenticate", auth.Challenge(ref.code, ref.message, ref.scope, s.metadataURL))
	}
	if ref.retryAfter != "" {
		h.Set("Retry-After", ref.retryAfter)
	}
	writeJSONRPCError(w, ref.status, ref.message)
}

func writeJSONRPCError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b := make([]byte, 0, 96+len(message))
	b = append(b, `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":`...)
	b = strconv.AppendQuote(b, message)
	b = append(b, "}}\n"...)
	w.Write(b)
}
