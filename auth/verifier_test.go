package auth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const resource = "https://mcp.example.com/mcp"

// clock is a settable Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type bundle struct {
	idp *idptest.IdP
	v   *auth.Verifier
	log *bytes.Buffer
	ctx context.Context
}

// setup starts a fake IdP and a Verifier fetching its JWKS over HTTP,
// configured like Auth0 unless edit changes opts.
func setup(t *testing.T, edit func(idp *idptest.IdP, o *auth.Options), idpOpts ...idptest.Option) *bundle {
	t.Helper()
	idp := idptest.New(t, idpOpts...)
	cm, err := auth.Preset("auth0")
	if err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	o := &auth.Options{
		Issuer:   idp.Issuer(),
		Audience: resource,
		JWKSURL:  idp.JWKSURL(),
		Claims:   cm,
		Logger:   slog.New(slog.NewTextHandler(&logBuf, nil)),
	}
	if edit != nil {
		edit(idp, o)
	}
	v, err := auth.NewVerifier(t.Context(), o)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	return &bundle{idp: idp, v: v, log: &logBuf.buf, ctx: t.Context()}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *bundle) auth0(orgID string, perms ...string) map[string]any {
	return b.idp.Auth0Claims(resource, orgID, "Org "+orgID, "auth0|user-1", perms...)
}

func TestVerifyAcceptsAuth0(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	claims := b.auth0("org_abc", "docs:read", "docs:write", "openid")
	for name, tok := range map[string]string{
		"RS256": b.idp.Sign(claims),
		"ES256": b.idp.SignES256(claims),
	} {
		t.Run(name, func(t *testing.T) {
			id, err := b.v.Verify(b.ctx, tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &auth.Identity{
				Issuer:     b.idp.Issuer(),
				TenantID:   "org_abc",
				TenantName: "Org org_abc",
				UserID:     "auth0|user-1",
				// permissions first, then scope; "openid" appears in both.
				Scopes:    []string{"docs:read", "docs:write", "openid", "profile", "email"},
				ExpiresAt: time.Unix(claims["exp"].(int64), 0),
			}
			if diff := cmp.Diff(want, id, cmpopts.IgnoreFields(auth.Identity{}, "Claims")); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if id.Claims["azp"] != claims["azp"] {
				t.Errorf("Claims[azp] = %v, want %v", id.Claims["azp"], claims["azp"])
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	idp := b.idp
	now := time.Now()
	with := func(edit func(c map[string]any)) map[string]any {
		c := b.auth0("org_1", "docs:read")
		edit(c)
		return c
	}
	expired := now.Add(-time.Hour).Truncate(time.Second)
	notBefore := now.Add(time.Hour).Truncate(time.Second)
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	tests := []struct {
		name  string
		token string
		is    error  // errors.Is target
		msg   string // exact Error()
	}{
		{"empty", "", auth.ErrInvalidToken, "token is empty"},
		{"not a JWT", "abc.def", auth.ErrInvalidToken, "token is malformed: expected a JWT (three base64url segments separated by dots)"},
		{"garbage segments", "a.b.c", auth.ErrInvalidToken, "token is malformed: its header, claims or signature is not valid base64url-encoded JSON"},
		{"too long", strings.Repeat("a", 20000), auth.ErrInvalidToken, "token is too long (20000 bytes, at most 16384)"},
		{"bad signature", idp.TamperedSignature(b.auth0("org_1")), auth.ErrInvalidToken, "token signature is invalid"},
		{"alg none", idp.NoneToken(b.auth0("org_1")), auth.ErrInvalidToken, `signing algorithm "none" is not allowed (allowed: RS256, ES256)`},
		{"HS256 keyed with the RSA public key", idp.HS256WithPublicKey(b.auth0("org_1")), auth.ErrInvalidToken, `signing algorithm "HS256" is not allowed (allowed: RS256, ES256)`},
		{"forged kid", idp.ForgedKid("forged-1", b.auth0("org_1")), auth.ErrInvalidToken, `unknown signing key id "forged-1"`},
		{"known kid, foreign key", idp.ForgedKid(idp.RSAKid(), b.auth0("org_1")), auth.ErrInvalidToken, "token signature is invalid"},
		{"wrong iss", idp.Sign(with(func(c map[string]any) { c["iss"] = "https://evil.example/" })), auth.ErrInvalidToken, `issuer "https://evil.example/" is not accepted`},
		{"iss without trailing slash", idp.Sign(with(func(c map[string]any) { c["iss"] = strings.TrimSuffix(idp.Issuer(), "/") })), auth.ErrInvalidToken, fmt.Sprintf("issuer %q is not accepted", strings.TrimSuffix(idp.Issuer(), "/"))},
		{"no iss", idp.Sign(with(func(c map[string]any) { delete(c, "iss") })), auth.ErrInvalidToken, fmt.Sprintf("token has no iss claim; expected issuer %q", idp.Issuer())},
		{"wrong aud", idp.Sign(with(func(c map[string]any) { c["aud"] = "https://other.example.com/mcp" })), auth.ErrInvalidToken, `audience not accepted: expected "https://mcp.example.com/mcp"`},
		{"aud array without us", idp.Sign(with(func(c map[string]any) { c["aud"] = []any{"https://a.example", "https://b.example"} })), auth.ErrInvalidToken, `audience not accepted: expected "https://mcp.example.com/mcp"`},
		{"no aud", idp.Sign(with(func(c map[string]any) { delete(c, "aud") })), auth.ErrInvalidToken, `audience not accepted: expected "https://mcp.example.com/mcp"`},
		{"client_id is not aud outside Cognito", idp.Sign(with(func(c map[string]any) { delete(c, "aud"); c["client_id"] = resource })), auth.ErrInvalidToken, `audience not accepted: expected "https://mcp.example.com/mcp"`},
		{"expired", idp.Sign(with(func(c map[string]any) { c["exp"] = expired.Unix() })), auth.ErrInvalidToken, "token expired at " + rfc(expired)},
		{"no exp", idp.Sign(with(func(c map[string]any) { delete(c, "exp") })), auth.ErrInvalidToken, "token has no exp claim"},
		{"exp not a number", idp.Sign(with(func(c map[string]any) { c["exp"] = "tomorrow" })), auth.ErrInvalidToken, "token has a malformed time claim: exp, nbf and iat must be numbers"},
		{"nbf in future", idp.Sign(with(func(c map[string]any) { c["nbf"] = notBefore.Unix() })), auth.ErrInvalidToken, "token not valid before " + rfc(notBefore)},
		{"iat in future", idp.Sign(with(func(c map[string]any) { c["iat"] = notBefore.Unix() })), auth.ErrInvalidToken, "token issued in the future (iat " + rfc(notBefore) + "): check the identity provider's clock"},
		{"ES256 header on the RSA key", idp.SignWith(jwt.SigningMethodES256, idp.RSAKid(), ecKey(t), b.auth0("org_1")), auth.ErrInvalidToken, fmt.Sprintf("signing key %q cannot verify a ES256 token", idp.RSAKid())},
		{"no user", idp.Sign(with(func(c map[string]any) { delete(c, "sub") })), auth.ErrInvalidToken, "token carries no user claim 'sub'"},
		{"missing tenant claim", idp.Sign(with(func(c map[string]any) { delete(c, "org_id") })), auth.ErrMissingTenantClaim, "token carries no tenant claim 'org_id'"},
		{"tenant claim not a string", idp.Sign(with(func(c map[string]any) { c["org_id"] = 42 })), auth.ErrMissingTenantClaim, "token's tenant claim 'org_id' is not a string"},
		{"tenant claim empty", idp.Sign(with(func(c map[string]any) { c["org_id"] = "" })), auth.ErrMissingTenantClaim, "token's tenant claim 'org_id' is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := b.v.Verify(b.ctx, tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if id != nil {
				t.Errorf("Verify returned an identity with the error %v", err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if got := err.Error(); got != tt.msg {
				t.Errorf("error text\n got %s\nwant %s", got, tt.msg)
			}
			if len(tt.token) > 20 && strings.Contains(err.Error(), tt.token[len(tt.token)-20:]) {
				t.Errorf("error text contains the token")
			}
		})
	}
	t.Run("ClaimError fields", func(t *testing.T) {
		_, err := b.v.Verify(b.ctx, idp.Sign(with(func(c map[string]any) { delete(c, "org_id") })))
		var ce *auth.ClaimError
		if !errors.As(err, &ce) || ce.Claim != "org_id" || ce.Problem != auth.ClaimMissing {
			t.Fatalf("err = %#v, want *ClaimError{Claim: org_id, Problem: missing}", err)
		}
		if errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("a missing tenant claim must not be reported as an invalid token")
		}
	})
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	exp, nbf := base.Add(time.Hour), base.Add(10*time.Minute)
	claims := func(b *bundle) map[string]any {
		c := b.auth0("org_1")
		c["iat"], c["nbf"], c["exp"] = nbf.Unix(), nbf.Unix(), exp.Unix()
		return c
	}
	tests := []struct {
		name   string
		leeway time.Duration
		now    time.Time
		ok     bool
	}{
		{"default leeway, 29s after exp", 0, exp.Add(29 * time.Second), true},
		{"default leeway, 31s after exp", 0, exp.Add(31 * time.Second), false},
		{"default leeway, 29s before nbf", 0, nbf.Add(-29 * time.Second), true},
		{"default leeway, 31s before nbf", 0, nbf.Add(-31 * time.Second), false},
		{"2m leeway, 90s after exp", 2 * time.Minute, exp.Add(90 * time.Second), true},
		{"no leeway, 1s before exp", -1, exp.Add(-time.Second), true},
		{"no leeway, 1s after exp", -1, exp.Add(time.Second), false},
		{"no leeway, 1s before nbf", -1, nbf.Add(-time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(tt.now)
			b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
				o.Leeway = tt.leeway
				o.Now = clk.now
			})
			_, err := b.v.Verify(b.ctx, b.idp.Sign(claims(b)))
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
		o.CacheSize = -1
		// The retired key's token below waits for the next re-fetch.
		o.RefreshRateLimit = 50 * time.Millisecond
	})
	old := b.idp.Sign(b.auth0("org_1"))
	if _, err := b.v.Verify(b.ctx, old); err != nil {
		t.Fatalf("Verify before rotation: %v", err)
	}
	before := b.idp.JWKSFetches()
	b.idp.Rotate()
	fresh := b.idp.Sign(b.auth0("org_1"))
	if _, err := b.v.Verify(b.ctx, fresh); err != nil {
		t.Fatalf("Verify token signed with the rotated key: %v", err)
	}
	if got := b.idp.JWKSFetches() - before; got != 1 {
		t.Errorf("rotation caused %d JWKS fetches, want 1", got)
	}
	if _, err := b.v.Verify(b.ctx, b.idp.SignES256(b.auth0("org_1"))); err != nil {
		t.Errorf("Verify ES256 token with the rotated key: %v", err)
	}
	// The old key left the JWK Set, so its tokens are refused now.
	_, err := b.v.Verify(b.ctx, old)
	if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "unknown signing key id") {
		t.Errorf("token of the retired key: err = %v, want unknown signing key id", err)
	}
}

func TestConcurrentTokensAfterRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.idp.Rotate()
	before := b.idp.JWKSFetches()
	const n = 20
	toks := make([]string, n)
	for i := range toks {
		toks[i] = b.idp.Sign(b.auth0(fmt.Sprintf("org_%d", i)))
	}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			_, err := b.v.Verify(b.ctx, tok)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent token with the new kid: %v", err)
		}
	}
	if got := b.idp.JWKSFetches() - before; got != 1 {
		t.Errorf("%d concurrent tokens with a new kid caused %d fetches, want 1", n, got)
	}
}

func TestRefreshRateLimitOption(t *testing.T) {
	t.Parallel()
	// With a tiny limit every unknown kid may refresh: the option takes
	// effect (contrast with TestForgedKidsDoNotDelayRotation).
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) { o.RefreshRateLimit = time.Millisecond })
	before := b.idp.JWKSFetches()
	for i := range 3 {
		_, err := b.v.Verify(b.ctx, b.idp.ForgedKid(fmt.Sprintf("forged-%d", i), b.auth0("org_1")))
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("forged kid: err = %v", err)
		}
	}
	if extra := b.idp.JWKSFetches() - before; extra != 3 {
		t.Errorf("3 forged kids with a 1ms rate limit caused %d fetches, want 3", extra)
	}
}

func TestKeysUnavailable(t *testing.T) {
	t.Parallel()
	var idp *idptest.IdP
	b := setup(t, func(i *idptest.IdP, o *auth.Options) {
		idp = i
		i.SetUnavailable(true)
		o.RefreshRateLimit = time.Millisecond
	})
	if !strings.Contains(b.log.String(), "fetching the JWK Set failed") {
		t.Errorf("the failed initial fetch was not logged; log:\n%s", b.log.String())
	}
	tok := idp.Sign(b.auth0("org_1"))
	if _, err := b.v.Verify(b.ctx, tok); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("Verify while the IdP is down: err = %v, want ErrKeysUnavailable", err)
	}
	idp.SetUnavailable(false)
	if _, err := b.v.Verify(b.ctx, tok); err != nil {
		t.Fatalf("Verify after the IdP came back: %v", err)
	}
}

func TestVerifyCache(t *testing.T) {
	t.Parallel()
	start := time.Now()
	clk := newClock(start)
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
		o.Now = clk.now
		o.CacheTTL = time.Minute
		o.RefreshRateLimit = 50 * time.Millisecond // the retired key's token waits for a re-fetch
	})
	c := b.auth0("org_1")
	c["exp"] = start.Add(10 * time.Minute).Unix()
	tok := b.idp.Sign(c)
	first, err := b.v.Verify(b.ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.v.Verify(b.ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("second Verify of the same token was not served from the cache")
	}

	// Retire the key (a rotation picked up through another token's
	// unknown kid): the cached token stays accepted until CacheTTL ends.
	b.idp.Rotate()
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(b.auth0("org_1"))); err != nil {
		t.Fatal(err)
	}
	clk.advance(59 * time.Second)
	if _, err := b.v.Verify(b.ctx, tok); err != nil {
		t.Errorf("cached token within CacheTTL: %v", err)
	}
	clk.advance(2 * time.Second)
	if _, err := b.v.Verify(b.ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("token after CacheTTL whose key is retired: err = %v, want ErrInvalidToken", err)
	}
}

func TestVerifyCacheNeverPastExp(t *testing.T) {
	t.Parallel()
	start := time.Now()
	clk := newClock(start)
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
		o.Now = clk.now
		o.CacheTTL = time.Hour
		o.Leeway = -1
	})
	c := b.auth0("org_1")
	c["iat"] = start.Unix()
	c["exp"] = start.Add(30 * time.Second).Unix()
	tok := b.idp.Sign(c)
	if _, err := b.v.Verify(b.ctx, tok); err != nil {
		t.Fatal(err)
	}
	clk.advance(31 * time.Second)
	_, err := b.v.Verify(b.ctx, tok)
	if !errors.Is(err, auth.ErrInvalidToken) || !strings.HasPrefix(err.Error(), "token expired at") {
		t.Errorf("cached token past exp: err = %v, want token expired", err)
	}
}

func TestVerifyCachedDoesNotAllocate(t *testing.T) {
	b := setup(t, nil)
	tok := b.idp.Sign(b.auth0("org_1", "docs:read"))
	if _, err := b.v.Verify(b.ctx, tok); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := b.v.Verify(b.ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("cached Verify allocates %.1f times per call, want 0", allocs)
	}
}

func TestVerifyWithoutCache(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) { o.CacheSize = -1 })
	tok := b.idp.Sign(b.auth0("org_1"))
	a, err := b.v.Verify(b.ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.v.Verify(b.ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if a == c {
		t.Errorf("identities are shared with the cache disabled")
	}
}

func TestTokenWithoutKid(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.v.Verify(b.ctx, b.idp.SignWithoutKid(b.auth0("org_1"))); err != nil {
		t.Errorf("token without kid signed by a published key: %v", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.v.Close()
	b.v.Close()
	// Keys already loaded keep working after Close.
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(b.auth0("org_1"))); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDropClaims(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		b := setup(t, func(_ *idptest.IdP, o *auth.Options) { o.DropClaims = drop })
		id, err := b.v.Verify(b.ctx, b.idp.Sign(b.auth0("org_abc", "docs:read")))
		if err != nil {
			t.Fatal(err)
		}
		if id.TenantID != "org_abc" || len(id.Scopes) == 0 || (id.Claims == nil) != drop {
			t.Fatalf("DropClaims=%v: %+v", drop, id)
		}
	}
}
