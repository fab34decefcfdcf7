package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// Header names written by WriteHeaders.
const (
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderRetryAfter = "Retry-After"
)

// WriteHeaders adds the rate-limit response fields for d under the named
// policy, in the structured-field syntax of draft-ietf-httpapi-ratelimit-
// headers-11 (May 2026; the q/w and r/t parameters are unchanged since -08):
//
//	RateLimit-Policy: "<policy>";q=<PerMinute>;w=60
//	RateLimit: "<policy>";r=<Remaining>;t=<seconds until the budget is full, rounded up>
//
// and, when d refused the request, Retry-After: <seconds, rounded up, at
// least 1> (RFC 9110). Nothing is written for an unlimited decision.
//
// RateLimit-Policy and RateLimit are Lists, so calling WriteHeaders once per
// policy (say "tenant" and "user") adds one field line each; Retry-After
// keeps the larger value. The policy name should be a fixed word, not a
// tenant or user id. Characters a structured-field String cannot hold (outside
// printable ASCII) are replaced by '_'; '"' and '\' are escaped.
func (d Decision) WriteHeaders(h http.Header, policy string) {
	if d.Limit.Unlimited() {
		return
	}
	// Built in a stack buffer and stored under the canonical keys
	// directly, as one string for both values: this runs on every request.
	var buf [128]byte
	b := appendSFString(buf[:0], policy)
	n := len(b)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(d.Limit.PerMinute), 10)
	b = append(b, ";w=60"...)
	p := len(b)
	b = append(b, b[:n]...) // the policy name again, for RateLimit
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(max(0, d.Remaining)), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.ResetAfter), 10)
	both := string(b)
	policyLine, rateLine := both[:p], both[p:]
	pl, rl := h[canonicalPolicy], h[canonicalRateLimit]
	if pl == nil && rl == nil {
		// The first policy (the usual case): one array holds both fields'
		// lines. Each slice is capped at its own line, so adding a line to
		// either field copies it rather than overwrite the other.
		lines := make([]string, 2)
		lines[0], lines[1] = policyLine, rateLine
		h[canonicalPolicy], h[canonicalRateLimit] = lines[0:1:1], lines[1:2:2]
	} else {
		h[canonicalPolicy] = append(pl, policyLine)
		h[canonicalRateLimit] = append(rl, rateLine)
	}
	if !d.Allowed {
		retry := max(1, ceilSeconds(d.RetryAfter))
		if prev, err := strconv.ParseInt(h.Get(HeaderRetryAfter), 10, 64); err == nil && prev > retry {
			retry = prev
		}
		h.Set(HeaderRetryAfter, strconv.FormatInt(retry, 10))
	}
}

// The canonical forms (http.CanonicalHeaderKey) of the field names.
const (
	canonicalPolicy    = "Ratelimit-Policy"
	canonicalRateLimit = "Ratelimit"
)

// ceilSeconds rounds d up to whole seconds; negative durations give 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sfString encodes s as a structured-field String (RFC 9651 §3.3.3).
func sfString(s string) string { return string(appendSFString(nil, s)) }

// appendSFString appends s encoded as a structured-field String.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', byte(c))
		case c < 0x20 || c > 0x7e:
			b = append(b, '_')
		default:
			b = append(b, byte(c))
		}
	}
	return append(b, '"')
}
