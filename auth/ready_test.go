package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

// TestReady: a verifier that could not fetch the JWK Set at start is not
// ready; once the identity provider answers again, Ready fetches the keys
// itself (no token needed) and reports ready.
func TestReady(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	idp.SetUnavailable(true)
	v, err := auth.NewVerifier(context.Background(), &auth.Options{
		Issuer: idp.Issuer(), Audience: "https://mcp.example.com/mcp", JWKSURL: idp.JWKSURL(),
		RefreshRateLimit: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := v.Ready(ctx); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("Ready with the JWK Set down = %v, want ErrKeysUnavailable", err)
	}
	idp.SetUnavailable(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := v.Ready(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready after the JWK Set is back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A verifier with static keys is always ready.
	static, err := auth.NewVerifier(context.Background(), &auth.Options{
		Issuer: idp.Issuer(), Audience: "https://mcp.example.com/mcp", JWKS: idp.JWKS(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	if err := static.Ready(context.Background()); err != nil {
		t.Fatalf("static keys: %v", err)
	}
}
