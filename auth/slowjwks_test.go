package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

// stallingJWKS serves idp's JWK Set until stall is set; from then on it
// accepts each request and never answers it, until the client gives up
// (its context ends), which it reports on abandoned.
type stallingJWKS struct {
	*httptest.Server
	stall     atomic.Bool
	stalled   chan struct{} // a request has arrived and is being held
	abandoned chan struct{} // a held request was given up by the client
}

func newStallingJWKS(t *testing.T, idp *idptest.IdP) *stallingJWKS {
	t.Helper()
	s := &stallingJWKS{stalled: make(chan struct{}, 16), abandoned: make(chan struct{}, 16)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.stall.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.Write(idp.JWKS())
			return
		}
		s.stalled <- struct{}{}
		<-r.Context().Done()
		s.abandoned <- struct{}{}
	}))
	t.Cleanup(s.Close)
	return s
}

// verifierVia is a verifier of idp's tokens that fetches the JWK Set from
// jwks with the given client.
func verifierVia(t *testing.T, idp *idptest.IdP, jwks string, client *http.Client) *auth.Verifier {
	t.Helper()
	cm, err := auth.Preset("auth0")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(t.Context(), &auth.Options{
		Issuer: idp.Issuer(), Audience: resource, JWKSURL: jwks, Claims: cm, HTTPClient: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// TestSlowJWKSKeepsCachedKeys: while a re-fetch of the JWK Set (for a
// token with a kid not loaded) hangs at an IdP that accepts and never
// answers, tokens signed with keys already loaded verify at once, and the
// waiting token gives up when its context ends.
func TestSlowJWKSKeepsCachedKeys(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	jwks := newStallingJWKS(t, idp)
	// A fetch bound far beyond the test: only the held fetch can make
	// the cached token wait, and it must not.
	v := verifierVia(t, idp, jwks.URL, &http.Client{Timeout: 10 * time.Minute})
	known := idp.Sign(idp.Auth0Claims(resource, "org_1", "Org", "auth0|u"))
	if _, err := v.Verify(t.Context(), known); err != nil {
		t.Fatal(err)
	}

	jwks.stall.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	unknown := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, idp.ForgedKid("kid-not-loaded", idp.Auth0Claims(resource, "org_1", "Org", "auth0|u")))
		unknown <- err
	}()
	<-jwks.stalled // the re-fetch is out and held
	// A new token (not in the verified-token cache) signed with a loaded key.
	fresh := idp.Sign(idp.Auth0Claims(resource, "org_2", "Org 2", "auth0|u2"))
	if _, err := v.Verify(t.Context(), fresh); err != nil {
		t.Fatalf("a token signed with a loaded key, while a JWK Set fetch hangs: %v", err)
	}
	select {
	case err := <-unknown:
		t.Fatalf("the unknown-kid token was answered (%v) while its fetch is still held", err)
	default:
	}
	cancel()
	if err := <-unknown; !errors.Is(err, context.Canceled) {
		t.Fatalf("unknown kid, its context cancelled during the held fetch: %v; want context.Canceled", err)
	}
}

// TestSlowJWKSFetchIsBounded: a token with an unknown kid, whose re-fetch
// goes to an IdP that accepts and never answers, is refused as an invalid
// token (a 401, not 503 or a hang) once the fetch timeout (the HTTP
// client's Timeout, default 10s) gives up on the request; the keys loaded
// before keep verifying afterwards.
func TestSlowJWKSFetchIsBounded(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	jwks := newStallingJWKS(t, idp)
	v := verifierVia(t, idp, jwks.URL, &http.Client{Timeout: 200 * time.Millisecond})
	known := idp.Sign(idp.Auth0Claims(resource, "org_1", "Org", "auth0|u"))
	if _, err := v.Verify(t.Context(), known); err != nil {
		t.Fatal(err)
	}
	jwks.stall.Store(true)
	// No deadline on the call: only the fetch bound can end the wait. The
	// test's own timeout turns a hang into a failure.
	_, err := v.Verify(context.Background(), idp.ForgedKid("kid-not-loaded", idp.Auth0Claims(resource, "org_1", "Org", "auth0|u")))
	if !errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, auth.ErrKeysUnavailable) || !strings.Contains(err.Error(), "unknown signing key") {
		t.Fatalf("unknown kid with the JWK Set hanging: %v; want an invalid token (unknown signing key)", err)
	}
	select {
	case <-jwks.stalled:
	default:
		t.Fatal("the verifier did not try to fetch the JWK Set for the unknown kid")
	}
	<-jwks.abandoned                                                           // the client gave up on the held request: the fetch was cut, not left running
	fresh := idp.Sign(idp.Auth0Claims(resource, "org_2", "Org 2", "auth0|u2")) // not in the token cache
	if _, err := v.Verify(t.Context(), fresh); err != nil {
		t.Fatalf("a loaded key after the fetch timed out: %v", err)
	}
}
