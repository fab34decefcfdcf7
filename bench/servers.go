package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpgoserver "github.com/mark3labs/mcp-go/server"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tenantmcp/tenantmcp/server"
)

// The same tool everywhere: echo takes {"message": string} and answers one
// text content holding the message. Every server uses its cheapest raw
// API for it (raw JSON arguments, hand-written schema, text result), so
// the servers differ only in what sits around the tool.

const echoSchema = `{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}`

type echoIn struct {
	Message string `json:"message"`
}

// (a) plainHandler is a minimal JSON-RPC 2.0 handler over net/http: it
// decodes the request, checks method and tool, decodes the arguments and
// encodes a tools/call result. It is what any MCP server must at least do,
// without the protocol library, and serves as the near-limit reference.
func plainHandler() http.Handler {
	type params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	type rpcReq struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  params          `json:"params"`
	}
	type content struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type result struct {
		Content []content `json:"content"`
		IsError bool      `json:"isError"`
	}
	type rpcResp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  *result         `json:"result,omitempty"`
		Error   *rpcError       `json:"error,omitempty"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mcp", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		var req rpcReq
		resp := rpcResp{JSONRPC: "2.0"}
		switch {
		case json.Unmarshal(body, &req) != nil:
			resp.Error = &rpcError{Code: -32700, Message: "parse error"}
		case req.Method != "tools/call":
			resp.Error = &rpcError{Code: -32601, Message: "method not found"}
		case req.Params.Name != "echo":
			resp.Error = &rpcError{Code: -32602, Message: "unknown tool"}
		default:
			var in echoIn
			if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
				resp.Error = &rpcError{Code: -32602, Message: "invalid arguments"}
				break
			}
			resp.Result = &result{Content: []content{{Type: "text", Text: in.Message}}}
		}
		resp.ID = req.ID
		out, _ := json.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	return mux
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// (b) mcpGoHandler is bare mark3labs/mcp-go: stateless Streamable HTTP,
// no authentication.
func mcpGoHandler() http.Handler {
	ms := mcpgoserver.NewMCPServer("bench", "1", mcpgoserver.WithToolCapabilities(false))
	ms.AddTool(mcpgo.NewToolWithRawSchema("echo", "Echo the message.", json.RawMessage(echoSchema)),
		func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			var in echoIn
			if err := req.BindArguments(&in); err != nil {
				return mcpgo.NewToolResultError("invalid arguments: " + err.Error()), nil
			}
			return mcpgo.NewToolResultText(in.Message), nil
		})
	return mcpgoserver.NewStreamableHTTPServer(ms,
		mcpgoserver.WithEndpointPath("/mcp"),
		mcpgoserver.WithStateLess(true))
}

// (c) goSDKHandler is bare modelcontextprotocol/go-sdk: stateless
// Streamable HTTP answering application/json (JSONResponse, its cheaper
// mode), no authentication.
func goSDKHandler() http.Handler {
	s := sdk.NewServer(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
	s.AddTool(&sdk.Tool{Name: "echo", Description: "Echo the message.", InputSchema: json.RawMessage(echoSchema)},
		func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			var in echoIn
			if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
				return nil, fmt.Errorf("invalid arguments: %w", err)
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Message}}}, nil
		})
	mux := http.NewServeMux()
	mux.Handle("/mcp", sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s },
		&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true}))
	return mux
}

// echoTool is the same echo tool for tenantmcp (d), as a raw server.Tool.
func echoTool() server.Tool {
	return server.Tool{
		Name:        "echo",
		Description: "Echo the message.",
		InputSchema: json.RawMessage(echoSchema),
		ReadOnly:    true,
		Handler: func(ctx context.Context, args json.RawMessage) (*server.Result, error) {
			var in echoIn
			if err := json.Unmarshal(args, &in); err != nil {
				return nil, fmt.Errorf("invalid arguments: %w", err)
			}
			return &server.Result{Text: in.Message}, nil
		},
	}
}
