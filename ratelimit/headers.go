package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
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
	name := sfString(policy)
	h.Add(HeaderPolicy, name+";q="+strconv.Itoa(d.Limit.PerMinute)+";w=60")
	h.Add(HeaderRateLimit, name+";r="+strconv.Itoa(max(0, d.Remaining))+";t="+strconv.FormatInt(ceilSeconds(d.ResetAfter), 10))
	if !d.Allowed {
		retry := max(1, ceilSeconds(d.RetryAfter))
		if prev, err := strconv.ParseInt(h.Get(HeaderRetryAfter), 10, 64); err == nil && prev > retry {
			retry = prev
		}
		h.Set(HeaderRetryAfter, strconv.FormatInt(retry, 10))
	}
}

// ceilSeconds rounds d up to whole seconds; negative durations give 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sfString encodes s as a structured-field String (RFC 9651 §3.3.3).
func sfString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
