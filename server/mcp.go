package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// This file adapts the request path to the protocol library (mcp-go).
// Only the server package imports mcp-go (a test checks it): every other
// package speaks in our own types, so an adapter for another SDK can sit
// beside this one.

func (s *Server) newMCPHandler() *mcpserver.StreamableHTTPServer {
	sopts := []mcpserver.ServerOption{
		mcpserver.WithToolCapabilities(false),
		// No mcpserver.WithRecovery(): toolHandler recovers as it does,
		// without a wrapper built for every call.
		mcpserver.WithToolFilter(s.filterTools),
		// Every list varies by tenant (allowed tools, flags): no shared
		// cache may serve one tenant's list to another, and a tenant's
		// entitlements can change at any time.
		mcpserver.WithCacheHints(0, mcp.CacheScopePrivate),
	}
	// The hooks tell the audit event, the access log and the metrics how
	// the protocol library answered.
	sopts = append(sopts, mcpserver.WithHooks(auditHooks()))
	ms := mcpserver.NewMCPServer(s.opts.Name, s.opts.Version, sopts...)
	for _, t := range s.tools {
		ms.AddTool(mcpTool(t), s.toolHandler(t))
	}
	opts := []mcpserver.StreamableHTTPOption{
		mcpserver.WithEndpointPath(s.mcpPath),
		mcpserver.WithStreamableHTTPLogger(s.log),
	}
	if s.opts.Stateful {
		opts = append(opts, mcpserver.WithStateful(true))
	} else {
		opts = append(opts, mcpserver.WithStateLess(true))
	}
	return mcpserver.NewStreamableHTTPServer(ms, opts...)
}

func mcpTool(t *Tool) mcp.Tool {
	schema := t.InputSchema
	if len(schema) == 0 {
		schema = json.RawMessage(`{"type":"object"}`)
	}
	spec := mcp.NewToolWithRawSchema(t.Name, t.Description, schema)
	if len(t.OutputSchema) > 0 {
		spec.RawOutputSchema = t.OutputSchema
	}
	if t.ReadOnly {
		ro := true
		spec.Annotations.ReadOnlyHint = &ro
	}
	return spec
}

// filterTools hides the tools the tenant may not use. mcp-go applies it to
// tools/list and again to tools/call, where a hidden tool is answered
// exactly like an unknown one.
func (s *Server) filterTools(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
	rq := requestFrom(ctx)
	if rq == nil {
		return nil // no verified tenant: nothing is visible
	}
	// tools is returned as it is when every tool is allowed (a tools/call
	// asks about one tool; most tenants may use every tool); otherwise the
	// allowed ones are copied, so tools itself is never changed.
	var out []mcp.Tool
	for i, spec := range tools {
		if t, ok := s.tools[spec.Name]; ok && rq.mayUse(t) {
			if out != nil {
				out = append(out, spec)
			}
		} else if out == nil {
			out = append(make([]mcp.Tool, 0, len(tools)-1), tools[:i]...)
		}
	}
	if out == nil {
		return tools
	}
	return out
}

func (s *Server) toolHandler(t *Tool) mcpserver.ToolHandlerFunc {
	callsOK, callsFailed := s.metrics.calls.WithLabelValues(t.Name, "ok"), s.metrics.calls.WithLabelValues(t.Name, "error")
	latency := s.metrics.toolDuration.WithLabelValues(t.Name)
	return func(ctx context.Context, req mcp.CallToolRequest) (result *mcp.CallToolResult, err error) {
		// What mcpserver.WithRecovery does, with its words: a panic here,
		// outside the tool (runTool recovers the tool's own), answers the
		// call with an error instead of ending the process.
		name := req.Params.Name
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic recovered in %s tool handler: %v", name, p)
			}
		}()
		rq := requestFrom(ctx)
		if rq == nil || !rq.mayUse(t) {
			// Unreachable through serveMCP and the filter; refuse anyway.
			return nil, mcpserver.ErrToolNotFound
		}
		// serveMCP answered a missing scope with HTTP 403 already; this
		// second check holds even if a message got past that peek.
		for _, need := range t.Scopes {
			if !s.scopes.grants(rq.ident.Scopes, need) {
				s.metrics.refused.WithLabelValues("insufficient_scope").Inc()
				rq.tr.failed("insufficient_scope")
				return mcp.NewToolResultError((&scopeError{missing: []string{need}}).Error()), nil
			}
		}
		if res := s.refuseArguments(rq, req.Params.RawArguments); res != nil {
			return res, nil
		}
		start := time.Now()
		res, err := s.runTool(ctx, rq, t, req.Params.RawArguments)
		latency.Observe(time.Since(start).Seconds())
		if err != nil {
			callsFailed.Inc()
			if rq.pw.refuse(s, rq, err) {
				return nil, err // answered with the refusal: the library's answer is dropped
			}
			rq.tr.failed(toolErrorClass(ctx, err))
			return mcp.NewToolResultError(s.toolErrorMessage(ctx, rq, t, err)), nil
		}
		callsOK.Inc()
		if res == nil {
			return mcp.NewToolResultText(""), nil
		}
		if res.Structured != nil {
			return mcp.NewToolResultStructured(res.Structured, res.Text), nil
		}
		return mcp.NewToolResultText(res.Text), nil
	}
}

// serveProtocol hands a request that passed the request path to mcp-go.
// The body has already been read (and size-checked) by serveMCP, so it is
// passed as bytes rather than read a second time.
func (s *Server) serveProtocol(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte, rq *request) {
	rw := &rq.pw
	rw.w, rw.r = w, r
	if acceptsEventStream(r.Header) {
		// Only then may notifications a tool sends turn the response into
		// an SSE stream; otherwise they are dropped and the result is
		// plain JSON.
		rw.flusher, _ = w.(http.Flusher)
	}
	if s.sessions != nil {
		rw.sessions, rw.rq = s.sessions, rq
	} else {
		// Stateless: give the protocol library a session id no other
		// request has, so nothing it keys by session (streams, server
		// requests, per-session state) is shared between requests.
		// Whatever id the client sent was removed by serveMCP. (Set
		// directly under the canonical name, with the request's own slice
		// for its value: what Header.Set does, less an allocation.)
		rq.sid[0] = rq.statelessSessionID()
		r.Header[headerSessionID] = rq.sid[:]
	}
	rq.hr = mcpserver.HTTPRequest{
		Method:  r.Method,
		URL:     r.URL,
		Header:  r.Header,
		Body:    body,
		Context: ctx,
	}
	s.mcp.Handle(rw, &rq.hr)
	if rq.tr != nil {
		rq.tr.status = rw.status
	}
}

// protocolWriter adapts an http.ResponseWriter for mcp-go's Handle and, in
// stateful mode, binds a session id minted in the response to the caller.
type protocolWriter struct {
	w        http.ResponseWriter
	flusher  http.Flusher
	sessions *sessionTable
	rq       *request
	wrote    bool
	status   int // of the response, once written
	// r is the request; refused, once set, means a tool's error answered
	// it (refuse), and what the protocol library writes is dropped.
	r       *http.Request
	refused bool
}

// refuse answers the request with the refusal of a tool's error that
// the server classifies as 503 (Options.Unavailable: the database busy
// or restarting), so the client backs off by Retry-After, unless the response
// has begun. It reports whether it answered.
func (p *protocolWriter) refuse(s *Server, rq *request, err error) bool {
	if p.wrote || p.r == nil || s.classify(err).status != http.StatusServiceUnavailable {
		return false
	}
	ref := s.refusalHeaders(p.w, p.r, rq.tr, err)
	writeJSONRPCError(p.w, ref.status, ref.rpcCode, requestIDOf(rq.hr.Body), ref.message)
	p.wrote, p.status, p.refused = true, ref.status, true
	return true
}

func (p *protocolWriter) Header() http.Header { return p.w.Header() }

func (p *protocolWriter) WriteHeader(code int) {
	if p.refused {
		return
	}
	if !p.wrote {
		p.wrote, p.status = true, code
		if p.sessions != nil {
			if sid := p.w.Header().Get("Mcp-Session-Id"); sid != "" {
				p.sessions.bind(sid, p.rq.tenant.ID, p.rq.ident.UserID)
			}
		}
	}
	p.w.WriteHeader(code)
}

func (p *protocolWriter) Write(b []byte) (int, error) {
	if p.refused {
		return len(b), nil
	}
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	return p.w.Write(b)
}

func (p *protocolWriter) Flush() {
	if p.refused {
		return
	}
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	if p.flusher != nil {
		p.flusher.Flush()
	}
}

func (p *protocolWriter) CanStream() bool { return p.flusher != nil }

// SetWriteDeadline lets mcp-go bound writes to a stalled client.
func (p *protocolWriter) SetWriteDeadline(t time.Time) error {
	return http.NewResponseController(p.w).SetWriteDeadline(t)
}

// acceptsEventStream reports whether the client accepts an SSE response.
func acceptsEventStream(h http.Header) bool {
	for _, v := range h.Values("Accept") {
		if strings.Contains(v, "text/event-stream") || strings.Contains(v, "*/*") || strings.Contains(v, "text/*") {
			return true
		}
	}
	return false
}
