package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

type lookupIn struct {
	Query string `json:"query"`
}

// A tool logs through server.Logger(ctx): its lines carry the request's
// tenant_id and request_id, like the access line the server writes for
// every request. The query itself, the tenant's data, is not logged.
func ExampleLogger() {
	ctx := context.Background()
	const resource = "http://127.0.0.1/mcp"
	key, _ := auth.GenerateDevKey()
	iss, _ := auth.NewDevIssuer("http://127.0.0.1/dev", key)
	verifier, _ := auth.NewVerifier(ctx, &auth.Options{Issuer: iss.Issuer(), Audience: resource, JWKS: iss.JWKS(), Claims: auth.DevClaimMap()})
	defer verifier.Close()
	reg := registry.New(registry.NewMemoryStore(), nil)
	acme, _ := reg.Add(ctx, registry.Tenant{Issuer: iss.Issuer(), ExternalID: "org_acme", Name: "Acme"})

	lookup := server.NewTool("lookup", "Look something up.", func(ctx context.Context, in lookupIn) (string, error) {
		server.Logger(ctx).Info("lookup done", "hits", 3)
		return "3 hits", nil
	})
	// Leave out what changes from run to run: time, latency, the tenant's
	// id, the process's request id prefix.
	stable := func(_ []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey, "latency":
			return slog.Attr{}
		case "tenant_id":
			return slog.String("tenant_id", strings.ReplaceAll(a.Value.String(), string(acme.ID), "<acme>"))
		case "request_id":
			_, seq, _ := strings.Cut(a.Value.String(), "-")
			return slog.String("request_id", "…-"+seq)
		}
		return a
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: stable}))
	srv, _ := server.New(server.Options{ResourceURL: resource, Verifier: verifier, Registry: reg, Tools: []server.Tool{lookup}, Logger: log})

	token, _ := iss.Mint(auth.TokenRequest{Audience: resource, TenantID: "org_acme", UserID: "alice"})
	req := httptest.NewRequest(http.MethodPost, resource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup","arguments":{"query":"salaries 2026"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	srv.ServeHTTP(httptest.NewRecorder(), req)
	// Output:
	// level=INFO msg="lookup done" tenant_id=<acme> request_id=…-1 hits=3
	// level=INFO msg=request tenant_id=<acme> external_tenant_id=org_acme request_id=…-1 user=alice method=tools/call tool=lookup outcome=ok status=200 protocol=""
}
