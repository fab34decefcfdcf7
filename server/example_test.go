package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

type greetIn struct {
	Greeting string `json:"greeting"`
}

func ExampleNew() {
	ctx := context.Background()
	const resource = "http://127.0.0.1/mcp"

	// Tokens: a development issuer here; an auth.Verifier for your IdP in
	// production (auth.Preset("auth0"), ...).
	key, _ := auth.GenerateDevKey()
	iss, _ := auth.NewDevIssuer("http://127.0.0.1/dev", key)
	verifier, _ := auth.NewVerifier(ctx, &auth.Options{
		Issuer: iss.Issuer(), Audience: resource, JWKS: iss.JWKS(), Claims: auth.DevClaimMap(),
	})
	defer verifier.Close()

	// Tenants: the registry maps the IdP's tenant id to a record.
	reg := registry.New(registry.NewMemoryStore(), nil)
	reg.Add(ctx, registry.Tenant{Issuer: iss.Issuer(), ExternalID: "org_acme", Name: "Acme"})

	// A tenant-aware tool.
	greet := server.NewTool("greet", "Greet the caller's organisation.",
		func(ctx context.Context, in greetIn) (string, error) {
			t, err := tenant.From(ctx)
			if err != nil {
				return "", err
			}
			return in.Greeting + ", " + t.Name + " (user " + t.UserID + ")", nil
		})

	srv, err := server.New(server.Options{ResourceURL: resource, Verifier: verifier, Registry: reg, Tools: []server.Tool{greet}})
	if err != nil {
		fmt.Println(err)
		return
	}

	token, _ := iss.Mint(auth.TokenRequest{Audience: resource, TenantID: "org_acme", UserID: "alice"})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"greeting":"Hello"}}}`
	for _, authz := range []string{"Bearer " + token, ""} {
		req := httptest.NewRequest(http.MethodPost, resource, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.Contains(rec.Body.String(), "Hello, Acme (user alice)"))
		if wa := rec.Header().Get("WWW-Authenticate"); wa != "" {
			fmt.Println(wa)
		}
	}
	// Output:
	// 200 true
	// 401 false
	// Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"
}
