package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// BenchmarkToolCallLogged is BenchmarkToolCall's tenantmcp case with the
// access log on: a JSON line per request, as `tenantmcp serve` writes
// them (to io.Discard here).
func BenchmarkToolCallLogged(b *testing.B) {
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
		Logger:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Tools: []server.Tool{server.NewTool("echo", "echo", func(ctx context.Context, in echoIn) (string, error) {
			return in.Text, nil
		})},
	})
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := iss.Mint(auth.TokenRequest{Audience: resource, TenantID: "acme", UserID: "alice"})
	run(b, srv, tok)
}
