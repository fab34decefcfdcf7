package devauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/auth/devauth"
)

// A dev authorization server for the issuer http://127.0.0.1:8080/dev:
// its metadata, and a client registering itself.
func ExampleNew() {
	key, _ := auth.GenerateDevKey()
	iss, _ := auth.NewDevIssuer("http://127.0.0.1:8080/dev", key)
	tenants := func(context.Context) ([]devauth.Tenant, error) {
		return []devauth.Tenant{{ExternalID: "acme", Name: "Acme Corporation"}}, nil
	}
	das, err := devauth.New(iss, "http://127.0.0.1:8080/mcp", tenants, &devauth.Options{Scopes: []string{"read:tools"}})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	for pattern, h := range das.Routes() {
		mux.Handle(pattern, h)
	}

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server/dev", nil))
	var md struct {
		Authorize  string   `json:"authorization_endpoint"`
		Token      string   `json:"token_endpoint"`
		Register   string   `json:"registration_endpoint"`
		Challenges []string `json:"code_challenge_methods_supported"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &md)
	fmt.Println(md.Authorize, md.Token, md.Register, md.Challenges)

	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/dev/register", strings.NewReader(`{"redirect_uris":["http://127.0.0.1:3000/callback"],"client_name":"My client"}`))
	req.Header.Set("Content-Type", "application/json")
	mux.ServeHTTP(rec, req)
	var reg struct {
		ID     string `json:"client_id"`
		Method string `json:"token_endpoint_auth_method"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &reg)
	fmt.Println(rec.Code, strings.HasPrefix(reg.ID, "dev-"), reg.Method)
	// Output:
	// http://127.0.0.1:8080/dev/authorize http://127.0.0.1:8080/dev/token http://127.0.0.1:8080/dev/register [S256]
	// 201 true none
}
