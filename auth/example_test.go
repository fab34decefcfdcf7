package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tenantmcp/tenantmcp/auth"
)

// A development issuer mints a token; a Verifier with its JWK Set checks it.
func ExampleDevIssuer() {
	ctx := context.Background()
	key, err := auth.GenerateDevKey() // persist this to keep tokens valid across restarts
	if err != nil {
		panic(err)
	}
	dev, err := auth.NewDevIssuer("http://localhost:8080/", key)
	if err != nil {
		panic(err)
	}
	v, err := auth.NewVerifier(ctx, &auth.Options{
		Issuer:   dev.Issuer(),
		Audience: "http://localhost:8080/mcp",
		JWKS:     dev.JWKS(),
		Claims:   auth.DevClaimMap(),
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	tok, err := dev.Mint(auth.TokenRequest{
		Audience: "http://localhost:8080/mcp",
		TenantID: "acme", TenantName: "Acme Corp", UserID: "alice",
		Scopes: []string{"docs:read", "docs:write"},
	})
	if err != nil {
		panic(err)
	}
	id, err := v.Verify(ctx, tok)
	if err != nil {
		panic(err)
	}
	fmt.Println(id.TenantID, id.TenantName, id.UserID, id.Scopes)

	i := len(tok) - 10 // a character inside the signature
	c := "A"
	if tok[i] == 'A' {
		c = "B"
	}
	_, err = v.Verify(ctx, tok[:i]+c+tok[i+1:])
	fmt.Println(errors.Is(err, auth.ErrInvalidToken), err)
	// Output:
	// acme Acme Corp alice [docs:read docs:write]
	// true token signature is invalid
}

func ExampleChallenge() {
	meta := auth.MetadataURL("https://mcp.example.com/mcp")
	fmt.Println(meta)
	fmt.Println(auth.Challenge("", "", "", meta))
	fmt.Println(auth.Challenge("invalid_token", "token expired at 2026-01-02T15:04:05Z", "", meta))
	// Output:
	// https://mcp.example.com/.well-known/oauth-protected-resource/mcp
	// Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// Bearer error="invalid_token", error_description="token expired at 2026-01-02T15:04:05Z", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
}

func ExampleMetadataURL() {
	fmt.Println(auth.MetadataURL("https://mcp.example.com/tenants/mcp/"))
	fmt.Println(auth.MetadataURL("https://mcp.example.com"))
	// Output:
	// https://mcp.example.com/.well-known/oauth-protected-resource/tenants/mcp
	// https://mcp.example.com/.well-known/oauth-protected-resource
}

func ExampleBearerToken() {
	h := http.Header{}
	h.Set("Authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig")
	tok, err := auth.BearerToken(h)
	fmt.Println(tok, err)

	h.Set("Authorization", "Basic dXNlcjpwYXNz")
	_, err = auth.BearerToken(h)
	fmt.Println(errors.Is(err, auth.ErrMalformedHeader))
	// Output:
	// eyJhbGciOiJFUzI1NiJ9.e30.sig <nil>
	// true
}

func ExampleProviderEndpoints() {
	iss, jwks, _ := auth.ProviderEndpoints("entra", "organizations")
	fmt.Println(iss)
	fmt.Println(jwks)
	cm, _ := auth.Preset("entra")
	fmt.Printf("tenant=%s user=%s scopes=%v\n", cm.Tenant, cm.User, cm.Scopes)
	// Output:
	// https://login.microsoftonline.com/{tenantid}/v2.0
	// https://login.microsoftonline.com/common/discovery/v2.0/keys
	// tenant=tid user=oid scopes=[roles scp]
}
