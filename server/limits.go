package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits against abuse: how large a request's headers, how deep its JSON,
// how large a tool call's arguments, and how many requests a replica
// serves at once. (Body size, slow clients and the per-tenant caps are in
// request.go and deadlines.go; connections per client in connlimit.go.)
// Each refusal is classified in errors.go, counted by reason in
// tenantmcp_requests_refused_total and recorded in the audit trail.

// Defaults of the limit Options. The configuration layer uses the same
// values.
const (
	// DefaultMaxBodyBytes: a JSON-RPC message with a tool's arguments;
	// large files belong in blob storage, not in one request.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxHeaderBytes: a bearer token of a few KiB and the MCP
	// headers fit many times over; Go's own default is 1 MiB.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxJSONDepth: MCP messages nest a handful of levels, tool
	// arguments a few more; 64 leaves room for any real schema.
	DefaultMaxJSONDepth = 64
	// DefaultMaxArgumentBytes: a tool call's arguments, at most a quarter
	// of the default body.
	DefaultMaxArgumentBytes = 256 << 10
	// DefaultMaxConcurrentRequests: requests in flight on one replica;
	// with the default per-tenant cap (64 in the configuration) eight
	// tenants at their cap still leave none of the others out.
	DefaultMaxConcurrentRequests = 512
	// DefaultMaxConcurrentAdminRequests: administrators' requests in
	// flight on one replica, counted apart from the tenants' so that
	// neither can take the other's slots; a handful of operators and
	// their scripts.
	DefaultMaxConcurrentAdminRequests = 16
	// DefaultMaxConnsPerClient: open connections from one IP address.
	DefaultMaxConnsPerClient = 256
)

// Refusal reasons of the limits in this file, as they label
// tenantmcp_requests_refused_total and the audit events' error_class.
const (
	reasonHeaderTooLarge    = "header_too_large"
	reasonJSONTooDeep       = "json_too_deep"
	reasonArgumentsTooLarge = "arguments_too_large"
	reasonServerBusy        = "server_busy"
)

// errServerBusy refuses a request over Options.MaxConcurrentRequests.
var errServerBusy = errors.New("server busy: too many requests in flight on this replica; retry after the time in Retry-After")

// errAdminBusy refuses an admin request over
// Options.MaxConcurrentAdminRequests: a server_busy refusal (it is one)
// that says which share is full.
var errAdminBusy error = &adminBusyError{}

type adminBusyError struct{}

func (*adminBusyError) Error() string {
	return "server busy: too many admin requests in flight on this replica; retry after the time in Retry-After"
}

func (*adminBusyError) Unwrap() error { return errServerBusy }

// headerSizeError refuses a header block over Options.MaxHeaderBytes.
type headerSizeError struct{ max int }

func (e *headerSizeError) Error() string {
	return fmt.Sprintf("request headers too large: at most %d bytes are accepted; send a shorter token or fewer headers", e.max)
}

// depthError refuses a body that nests deeper than Options.MaxJSONDepth.
type depthError struct{ max int }

func (e *depthError) Error() string {
	return fmt.Sprintf("request JSON nested too deeply: at most %d levels of arrays and objects are accepted (server.max_json_depth); flatten the arguments", e.max)
}

// argumentsError refuses a tool call whose arguments are over
// Options.MaxArgumentBytes.
type argumentsError struct {
	size int
	max  int64
}

func (e *argumentsError) Error() string {
	return fmt.Sprintf("tool arguments too large: %d bytes, at most %d are accepted (server.max_argument_bytes); send the data in smaller parts", e.size, e.max)
}

// checkLimits reports the limit Options that are out of range.
func checkLimits(o *Options) []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{{"MaxHeaderBytes", int64(o.MaxHeaderBytes)}, {"MaxJSONDepth", int64(o.MaxJSONDepth)},
		{"MaxArgumentBytes", o.MaxArgumentBytes}, {"MaxConcurrentRequests", int64(o.MaxConcurrentRequests)},
		{"MaxConcurrentAdminRequests", int64(o.MaxConcurrentAdminRequests)},
		{"MaxConnsPerClient", int64(o.MaxConnsPerClient)}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("server: %s is %d: want a positive number, or 0 for the default", f.name, f.v))
		}
	}
	if body := bodyLimit(o); o.MaxArgumentBytes > body {
		errs = append(errs, fmt.Errorf("server: MaxArgumentBytes (%d) is more than MaxBodyBytes (%d): arguments arrive in the body, so lower it or raise MaxBodyBytes", o.MaxArgumentBytes, body))
	}
	return errs
}

// bodyLimit is the body size New puts in force.
func bodyLimit(o *Options) int64 {
	if o.MaxBodyBytes <= 0 {
		return DefaultMaxBodyBytes
	}
	return o.MaxBodyBytes
}

// applyLimitDefaults fills in the limit Options left zero.
func applyLimitDefaults(o *Options) {
	o.MaxBodyBytes = bodyLimit(o)
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxJSONDepth == 0 {
		o.MaxJSONDepth = DefaultMaxJSONDepth
	}
	if o.MaxArgumentBytes == 0 {
		o.MaxArgumentBytes = min(DefaultMaxArgumentBytes, o.MaxBodyBytes)
	}
	if o.MaxConcurrentRequests == 0 {
		o.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if o.MaxConcurrentAdminRequests == 0 {
		o.MaxConcurrentAdminRequests = DefaultMaxConcurrentAdminRequests
	}
	if o.MaxConnsPerClient == 0 {
		o.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
}

// limitState is a count of requests in flight under a cap (the tenants'
// for Options.MaxConcurrentRequests, the admins' for
// Options.MaxConcurrentAdminRequests).
type limitState struct {
	max      int64 // 0: no cap
	inflight atomic.Int64
}

// initLimits sets up the request and connection caps and their metrics.
func (s *Server) initLimits() {
	if !s.opts.UnlimitedConcurrentRequests {
		s.limits.max = int64(s.opts.MaxConcurrentRequests)
	}
	if !s.opts.UnlimitedConcurrentAdminRequests {
		s.adminLimits.max = int64(s.opts.MaxConcurrentAdminRequests)
	}
	if !s.opts.UnlimitedConnsPerClient {
		s.conns = newConnLimiter(s.opts.MaxConnsPerClient, s.log, s.opts.Now)
		s.metrics.reg.MustRegister(s.conns.refused)
	}
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tenantmcp_requests_in_flight",
		Help: "MCP requests admitted past the tenant checks and limits and not yet answered, on this replica (server.max_concurrent_requests caps it).",
	}, func() float64 { return float64(s.limits.inflight.Load()) }))
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tenantmcp_admin_requests_in_flight",
		Help: "Admin requests (admin MCP tools and /admin/v1) admitted and not yet answered, on this replica (server.max_concurrent_admin_requests caps it).",
	}, func() float64 { return float64(s.adminLimits.inflight.Load()) }))
}

// admit takes one of the replica's request slots; false when none is
// free (the caller refuses with 503 at once: no queue). release gives it
// back.
func (l *limitState) admit() bool {
	n := l.inflight.Add(1)
	if l.max > 0 && n > l.max {
		l.inflight.Add(-1)
		return false
	}
	return true
}

func (l *limitState) release() { l.inflight.Add(-1) }

// checkHeaderSize refuses a request whose request line and header fields
// are larger than MaxHeaderBytes, counted as they were sent (name, ": ",
// value, CRLF). Serve has net/http cut off header blocks of more than
// twice as much before they are read in full (see Serve); this check puts
// the exact limit in force under any http.Server, with a refusal that is
// counted and audited like the others.
func (s *Server) checkHeaderSize(r *http.Request) error {
	max := s.opts.MaxHeaderBytes
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: \r\n") + len(r.Host)
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + len(v) + 4
		}
		if n > max {
			return &headerSizeError{max: max}
		}
	}
	return nil
}

// checkBodyDepth refuses a body nested more than MaxJSONDepth deep, before
// anything decodes it.
func (s *Server) checkBodyDepth(body []byte) error {
	if jsonTooDeep(body, s.opts.MaxJSONDepth) {
		return &depthError{max: s.opts.MaxJSONDepth}
	}
	return nil
}

// jsonTooDeep reports whether the JSON text b nests arrays and objects
// more than max levels deep. It is one pass over the bytes, allocates
// nothing and validates nothing: brackets inside strings (escaped quotes
// included) do not count, and a closing bracket without an opening one
// never lowers the depth below zero, so unbalanced input cannot hide
// nesting. Long strings are skipped with bytes.IndexByte.
func jsonTooDeep(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i+1)
		case '[', '{':
			if depth++; depth > max {
				return true
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return false
}

// stringEnd returns the index of the quote that ends the JSON string whose
// contents start at b[i], or len(b) if it does not end.
func stringEnd(b []byte, i int) int {
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// The quote is escaped if an odd number of backslashes precede it.
		k := i
		for k > 0 && b[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i
		}
		i++
	}
}

// refuseArguments refuses a tool call whose arguments are over
// MaxArgumentBytes, as a tool error result: MCP clients show those to the
// model (which can retry with smaller arguments), where a JSON-RPC error
// mostly ends the call in the host application. It is counted and
// audited as a refusal. Nil when the arguments are within the limit.
func (s *Server) refuseArguments(rq *request, raw json.RawMessage) *mcp.CallToolResult {
	size := len(raw)
	if rq.bigArgs > 0 { // taken out of the body by shrinkArguments
		size = rq.bigArgs
	}
	if int64(size) <= s.opts.MaxArgumentBytes {
		return nil
	}
	s.metrics.refused.WithLabelValues(reasonArgumentsTooLarge).Inc()
	rq.tr.refused(reasonArgumentsTooLarge)
	return mcp.NewToolResultError((&argumentsError{size: size, max: s.opts.MaxArgumentBytes}).Error())
}

// shrinkArguments takes the arguments of a tools/call out of its body
// when they are over MaxArgumentBytes: it returns the body with them
// replaced by {} and their size, so that the protocol library decodes a
// small message (instead of the large one, several times over) and the
// tool handler refuses the call by that size (refuseArguments). A body no
// larger than the limit is returned as it is at no cost; a larger one is
// decoded once here unless serveMCP's peek (tr) has decoded it already.
//
// The arguments are found as the bytes the decoder returned for them. If
// those bytes stood first somewhere else in the body (another value with
// the same text), that value is replaced instead and the protocol library
// still sees the large arguments: the tool handler then refuses them by
// their own size, so the limit holds either way.
func (s *Server) shrinkArguments(body []byte, tr *trail) ([]byte, int) {
	if int64(len(body)) <= s.opts.MaxArgumentBytes {
		return body, 0
	}
	var m *rpcPeek
	if tr != nil && tr.peeked {
		m = &tr.peek
	} else {
		m = new(rpcPeek)
		if json.Unmarshal(body, m) != nil {
			return body, 0 // the protocol library answers a parse error
		}
	}
	args := m.Params.Arguments
	if m.Method != string(mcp.MethodToolsCall) || int64(len(args)) <= s.opts.MaxArgumentBytes {
		return body, 0
	}
	i := bytes.Index(body, args)
	if i < 0 {
		return body, 0
	}
	out := make([]byte, 0, len(body)-len(args)+2)
	out = append(append(append(out, body[:i]...), "{}"...), body[i+len(args):]...)
	return out, len(args)
}
