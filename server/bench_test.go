package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

const echoCall = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`

type echoIn struct {
	Text string `json:"text"`
}

// BenchmarkToolCall compares one tools/call served in-process (no network)
// by bare mcp-go and by tenantmcp's full request path (cached token,
// cached tenant, in-process rate limit, tool filter, tenant context).
func BenchmarkToolCall(b *testing.B) {
	b.Run("mcp-go", func(b *testing.B) {
		ms := mcpserver.NewMCPServer("bare", "1", mcpserver.WithToolCapabilities(false))
		ms.AddTool(mcp.NewTool("echo", mcp.WithInputSchema[echoIn]()), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var in echoIn
			if err := req.BindArguments(&in); err != nil {
				return nil, err
			}
			return mcp.NewToolResultText(in.Text), nil
		})
		run(b, mcpserver.NewStreamableHTTPServer(ms, mcpserver.WithStateLess(true)), "")
	})
	b.Run("tenantmcp", func(b *testing.B) {
		const resource = "http://127.0.0.1/mcp"
		key, _ := auth.GenerateDevKey()
		iss, _ := auth.NewDevIssuer("http://127.0.0.1/dev", key)
		v, err := auth.NewVerifier(context.Background(), &auth.Options{Issuer: iss.Issuer(), Audience: resource, JWKS: iss.JWKS(), Claims: auth.DevClaimMap()})
		if err != nil {
			b.Fatal(err)
		}
		defer v.Close()
		reg := registry.New(registry.NewMemoryStore(), nil)
		if _, err := reg.Add(context.Background(), registry.Tenant{Issuer: iss.Issuer(), ExternalID: "acme", Name: "Acme"}); err != nil {
			b.Fatal(err)
		}
		srv, err := server.New(server.Options{
			ResourceURL:  resource,
			Verifier:     v,
			Registry:     reg,
			Limiter:      ratelimit.NewMemory(nil),
			DefaultLimit: ratelimit.Limit{PerMinute: 1 << 30, Burst: 1 << 20},
			Tools: []server.Tool{server.NewTool("echo", "echo", func(ctx context.Context, in echoIn) (string, error) {
				if _, err := tenant.From(ctx); err != nil {
					return "", err
				}
				return in.Text, nil
			})},
		})
		if err != nil {
			b.Fatal(err)
		}
		tok, _ := iss.Mint(auth.TokenRequest{Audience: resource, TenantID: "acme", UserID: "alice"})
		run(b, srv, tok)
	})
}

func run(b *testing.B, h http.Handler, token string) {
	call := func() {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", strings.NewReader(echoCall))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "hello") {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	call() // warm caches
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		call()
	}
}

// TestTokenNotPassedOn: after verification the Authorization header is
// removed, so neither the protocol library nor tools can forward it.
func TestTokenNotPassedOn(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims})
	f.addTenant(t, "acme", nil)
	srv, err := server.New(server.Options{ResourceURL: f.url, Verifier: f.verifier, Registry: f.reg, Tools: testTools()})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, f.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.genericToken("acme", "u"))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := req.Header.Get("Authorization"); got != "" {
		t.Fatalf("Authorization still present after verification: %q", got)
	}
}
