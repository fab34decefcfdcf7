package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// This file is verify's MCP client: the protocol library's client (the
// one the repository's tests use, through tenanttest) behind a few types
// of ours, so the attacks read in terms of tools and replies.

// mcpClient is a connected MCP client sending one bearer token.
type mcpClient struct {
	c       *client.Client
	tr      *transport.StreamableHTTP
	timeout time.Duration
}

// dial connects to url as token's holder over hc. version pins the
// revision ("" negotiates the newest the server speaks; a revision before
// 2026-07-28 uses the initialize handshake and, on a stateful server, a
// session).
func dial(ctx context.Context, url, token string, hc *http.Client, version string, timeout time.Duration) (*mcpClient, error) {
	tr, err := transport.NewStreamableHTTP(url,
		transport.WithHTTPBasicClient(hc),
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		return nil, err
	}
	var copts []client.ClientOption
	if version != "" {
		copts = append(copts, client.WithProtocolVersion(version))
	}
	c := client.NewClient(tr, copts...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcp.Implementation{Name: "tenantmcp-verify", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		c.Close()
		return nil, err
	}
	return &mcpClient{c: c, tr: tr, timeout: timeout}, nil
}

func (m *mcpClient) close() { m.c.Close() }

// protocol is the negotiated revision.
func (m *mcpClient) protocol() string { return m.c.ProtocolVersion() }

// session is the MCP session id the server handed out, or "".
func (m *mcpClient) session() string { return m.tr.GetSessionId() }

// toolInfo is what verify needs of a listed tool.
type toolInfo struct {
	Name        string `json:"name"`
	InputSchema struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
		Required []string `json:"required"`
	} `json:"inputSchema"`
}

// tools lists the tools the server shows this client.
func (m *mcpClient) tools(ctx context.Context) ([]toolInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	res, err := m.c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]toolInfo, 0, len(res.Tools))
	for _, t := range res.Tools {
		raw, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		var ti toolInfo
		if err := json.Unmarshal(raw, &ti); err != nil {
			return nil, err
		}
		out = append(out, ti)
	}
	return out, nil
}

// reply is a tool call's outcome.
type reply struct {
	// refused is set when the call was refused as a request (an unknown
	// or hidden tool, an HTTP refusal): the tool did not run.
	refused error
	// isError: the tool ran and reported an error.
	isError bool
	// text is the text content; raw the whole result as JSON.
	text string
	raw  []byte
}

// ran reports whether the tool ran without reporting an error.
func (r *reply) ran() bool { return r.refused == nil && !r.isError }

// describe sums the reply up for evidence.
func (r *reply) describe() string {
	switch {
	case r.refused != nil:
		return "refused: " + excerpt([]byte(r.refused.Error()), 120)
	case r.isError:
		return "tool error: " + excerpt([]byte(r.text), 120)
	}
	return "result: " + excerpt([]byte(r.text), 120)
}

// call calls a tool with args (any JSON value) and meta as the request's
// _meta. Only a failure to reach the server at all is an error.
func (m *mcpClient) call(ctx context.Context, name string, args any, meta map[string]any) (*reply, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	if meta != nil {
		req.Params.Meta = &mcp.Meta{AdditionalFields: meta}
		if tok, ok := meta["progressToken"]; ok {
			req.Params.Meta.ProgressToken = tok
			delete(req.Params.Meta.AdditionalFields, "progressToken")
		}
	}
	res, err := m.c.CallTool(ctx, req)
	if err != nil {
		if ctx.Err() != nil || isTransportFailure(err) {
			return nil, err
		}
		return &reply{refused: err}, nil
	}
	// The result as it came (re-encoded), and its text parts from that.
	out := &reply{isError: res.IsError}
	out.raw, _ = json.Marshal(res)
	var parts struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	json.Unmarshal(out.raw, &parts)
	texts := make([]string, 0, len(parts.Content))
	for _, p := range parts.Content {
		if p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	out.text = strings.Join(texts, "\n")
	return out, nil
}

// isTransportFailure reports an error of the connection itself (the
// server could not be reached or the connection broke), as opposed to a
// refusal the server sent.
func isTransportFailure(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}
