package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Options configures NewVerifier. Issuer and Audience are required; every
// other field's zero value picks the documented default.
type Options struct {
	// Issuer is the exact iss the tokens must carry, e.g.
	// "https://tenant.eu.auth0.com/". It may contain "{tenantid}" once
	// (Entra ID multi-tenant, "https://login.microsoftonline.com/{tenantid}/v2.0"):
	// the token's Claims.IssuerTenantClaim value is substituted and the
	// result must equal iss. A templated issuer needs JWKSURL or JWKS and
	// Claims.IssuerTenantClaim. Required.
	Issuer string
	// Audience is the resource this server is: the URL clients use, e.g.
	// "https://mcp.example.com/mcp" (for Cognito access tokens, which have
	// no aud: the app client id, see ClaimMap.ClientIDAudience). The
	// token's aud, a string or an array, must contain it. Required.
	Audience string
	// JWKSURL is where the identity provider publishes its JWK Set (use
	// https outside tests: the keys decide who is trusted). "" =
	// Issuer without its trailing "/" + "/.well-known/jwks.json" (not
	// derivable for a templated Issuer: set it, see ProviderEndpoints).
	JWKSURL string
	// JWKS is a static JWK Set (JSON). When set it is the only source of
	// keys and no HTTP request is ever made (dev issuer, tests). nil = fetch
	// JWKSURL.
	JWKS []byte
	// Algorithms are the accepted signing algorithms. nil = RS256 and
	// ES256. "none" and the HMAC algorithms (HS256, ...) are refused by
	// NewVerifier: a resource server must not share a signing secret.
	// Known: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA.
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat. 0 = 30s;
	// negative = none.
	Leeway time.Duration
	// Claims says where tenant, user and scopes are and which claim
	// values every token must carry (see Preset). The zero value is
	// single-tenant, user "sub", no scopes, no required claims.
	Claims ClaimMap
	// TenantOptional accepts a token without the Claims.Tenant claim at
	// all, as an identity with an empty TenantID, instead of refusing it
	// with a *ClaimError: for deployments whose admins sign in at the
	// tenants' identity provider (admin tokens carry no tenant). A tenant
	// claim that is present but empty or not a string is still refused.
	// The caller must then refuse an empty TenantID itself wherever a
	// tenant is needed (see TenantClaim for the message).
	TenantOptional bool
	// TokenType is the JOSE header typ every token must have, e.g.
	// "at+jwt" for RFC 9068 access tokens. It is compared
	// case-insensitively and an "application/" prefix is ignored on both
	// sides (RFC 7515 §4.1.9). "" = any typ or none, except that Verify
	// always refuses a token whose typ marks an ID token ("id_token",
	// "id+jwt", ...), one with a payload token_use of "id" (Cognito) or
	// typ of "ID" (Keycloak), and one with a crit header (RFC 7515
	// §4.1.11; no extension is supported). Payload claims are pinned with
	// Claims.RequiredClaims.
	TokenType string
	// HTTPClient fetches the JWK Set. nil = a client with a 10s timeout.
	// A client with a Timeout also bounds each fetch by it.
	HTTPClient *http.Client
	// RefreshInterval is how often the JWK Set is re-fetched in the
	// background. 0 = 1h.
	RefreshInterval time.Duration
	// RefreshRateLimit is the least time between the starts of two JWK
	// Set re-fetches that tokens with an unknown kid trigger, so forged
	// kids cannot make the verifier hammer the IdP (the default allows six
	// a minute). A token with an unknown kid is answered by a re-fetch that
	// starts after it arrived: at once if the last one started at least
	// RefreshRateLimit ago, else the next one allowed, which every token
	// waiting meanwhile shares. So after a key rotation a token with the
	// new kid waits at most RefreshRateLimit (plus the fetch), however many
	// forged kids arrive. A token whose next re-fetch would start later
	// than the fetch timeout (HTTPClient.Timeout, else 10s) from now is
	// refused at once. Measured on the real clock, not Now. 0 = 10s.
	RefreshRateLimit time.Duration
	// CacheSize is the number of verified tokens remembered (by SHA-256
	// hash) so a repeated token skips signature verification. 0 = 10000;
	// negative disables the cache.
	CacheSize int
	// CacheTTL is the longest a verified token stays cached; never past
	// its exp. 0 = 1m. A key the IdP revokes stays trusted for the tokens
	// already cached for up to this long.
	CacheTTL time.Duration
	// DropClaims leaves Identity.Claims nil, keeping only the fields the
	// claim map extracts. A cached Identity then costs a few hundred bytes
	// instead of the whole decoded token. false = keep all claims.
	DropClaims bool
	// Now is the clock. nil = time.Now.
	Now func() time.Time
	// Logger receives JWK Set fetch failures. nil = discard.
	Logger *slog.Logger

	refreshClock refreshClock // tests only (see export_test.go); nil = real
}

// Identity is what a verified token says. A cached Identity is shared by
// every request presenting the same token: treat it, its Scopes and its
// Claims as read-only (copy before changing).
type Identity struct {
	// Issuer is the configured issuer (the template for Entra ID
	// multi-tenant), so (Issuer, TenantID) identifies a tenant.
	Issuer string
	// TenantID is the external tenant id from the tenant claim; "" only
	// when ClaimMap.Tenant is "" (single-tenant).
	TenantID string
	// TenantName is the tenant's display name from the token, if any.
	TenantName string
	// UserID is the user claim (sub, or oid for Entra ID).
	UserID string
	// Scopes are the merged, deduplicated scope claims.
	Scopes []string
	// ExpiresAt is the token's exp.
	ExpiresAt time.Time
	// Claims are all the verified claims.
	Claims map[string]any
}

// Verifier verifies bearer JWTs. It is safe for concurrent use.
type Verifier struct {
	issuer         string
	issPrefix      string // templated issuer: iss = prefix + tenant + suffix
	issSuffix      string
	templated      bool
	audience       string
	claims         ClaimMap
	algs           []string
	algList        string
	parser         *jwt.Parser
	keys           keyfunc.Keyfunc // reads the loaded keys; never fetches
	local          jwkset.Storage  // the loaded keys; reading never fetches
	refresh        *refresher      // nil for Options.JWKS: no fetching at all
	tokenType      string          // Options.TokenType normalised; "" = any
	required       []requiredClaim // Claims.RequiredClaims, sorted
	cache          *tokenCache
	dropClaims     bool
	tenantOptional bool
	cacheTTL       time.Duration
	now            func() time.Time
	log            *slog.Logger
	cancel         context.CancelFunc
	closeOnce      sync.Once
	maxToken       int
	userClaim      string
}

const (
	defaultLeeway       = 30 * time.Second
	defaultFetchTimeout = 10 * time.Second
	defaultRefresh      = time.Hour
	defaultRateLimit    = 10 * time.Second
	defaultCacheSize    = 10000
	defaultCacheTTL     = time.Minute
	// maxTokenLen bounds the work (hashing, decoding) a request can ask
	// for; access tokens are typically 1-4 KiB.
	maxTokenLen = 16 << 10
	tenantVar   = "{tenantid}"
	// forceRefreshKid is looked up to make jwkset re-fetch: no JWK Set
	// holds it, so the lookup always misses and refreshes.
	forceRefreshKid = "\x00tenantmcp: re-fetch the JWK Set"
)

// Algorithms are the JWS signature algorithms a Verifier can accept.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultAlgorithms are accepted when Options.Algorithms is nil.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// CheckAlgorithm reports why alg may not be accepted, or nil: "none" and
// the HMAC algorithms are never accepted, anything else must be one of
// Algorithms.
func CheckAlgorithm(alg string) error {
	switch {
	case slices.Contains(Algorithms, alg):
		return nil
	case strings.EqualFold(alg, "none"):
		return fmt.Errorf("%q is never accepted: it means an unsigned token that anyone can write", alg)
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return fmt.Errorf("%q is never accepted: HMAC keys are shared secrets, so whoever can verify a token can also mint one; use the identity provider's asymmetric keys (RS256, ES256, ...)", alg)
	}
	return fmt.Errorf("%q is not one of %s", alg, strings.Join(Algorithms, ", "))
}

// NewVerifier checks opts and returns a Verifier. Unless opts.JWKS is set it
// fetches the JWK Set once before returning; a failed fetch is logged, not
// fatal (the IdP may be briefly down): Verify then fails with
// ErrKeysUnavailable until a later fetch (background refresh, or a token's
// unknown kid, at most once per RefreshRateLimit) succeeds. ctx bounds the
// initial fetch and the background refresh; Close stops the refresh too.
func NewVerifier(ctx context.Context, opts *Options) (*Verifier, error) {
	if opts == nil {
		return nil, errors.New("auth: NewVerifier needs Options with at least Issuer and Audience")
	}
	o := *opts
	var problems []string
	if o.Issuer == "" {
		problems = append(problems, "Issuer is required (the exact iss of your identity provider's tokens)")
	}
	if o.Audience == "" {
		problems = append(problems, "Audience is required (this server's resource URL, e.g. https://mcp.example.com/mcp)")
	}
	v := &Verifier{
		issuer:         o.Issuer,
		audience:       o.Audience,
		claims:         o.Claims,
		now:            o.Now,
		log:            o.Logger,
		maxToken:       maxTokenLen,
		userClaim:      o.Claims.User,
		dropClaims:     o.DropClaims,
		tenantOptional: o.TenantOptional,
	}
	if v.userClaim == "" {
		v.userClaim = "sub"
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if n := strings.Count(o.Issuer, tenantVar); n > 0 {
		v.templated = true
		v.issPrefix, v.issSuffix, _ = strings.Cut(o.Issuer, tenantVar)
		if n > 1 {
			problems = append(problems, fmt.Sprintf("Issuer %q contains %s more than once", o.Issuer, tenantVar))
		}
		if o.Claims.IssuerTenantClaim == "" {
			problems = append(problems, fmt.Sprintf("Issuer %q is a template: set Claims.IssuerTenantClaim (\"tid\" for Entra ID)", o.Issuer))
		}
		if o.JWKSURL == "" && o.JWKS == nil {
			problems = append(problems, fmt.Sprintf("Issuer %q is a template: set JWKSURL (for Entra ID https://login.microsoftonline.com/common/discovery/v2.0/keys)", o.Issuer))
		}
	}

	v.claims.Scopes = slices.Clone(o.Claims.Scopes)
	v.claims.RequiredClaims = maps.Clone(o.Claims.RequiredClaims)
	v.required = sortedRequired(v.claims.RequiredClaims)
	for _, rc := range v.required {
		if rc.name == "" {
			problems = append(problems, "Claims.RequiredClaims has an empty claim name")
		}
		if rc.value == "" {
			problems = append(problems, fmt.Sprintf("Claims.RequiredClaims[%q] is empty: name the value the claim must have", rc.name))
		}
	}
	if o.TokenType != "" {
		v.tokenType = mediaType(o.TokenType)
		if err := CheckTokenType(o.TokenType); err != nil {
			problems = append(problems, "TokenType "+err.Error())
		}
	}
	v.algs = slices.Clone(o.Algorithms)
	if v.algs == nil {
		v.algs = slices.Clone(DefaultAlgorithms)
	}
	if len(v.algs) == 0 {
		problems = append(problems, "Algorithms is empty: leave it nil for RS256 and ES256")
	}
	for _, a := range v.algs {
		if err := CheckAlgorithm(a); err != nil {
			problems = append(problems, "Algorithms: "+err.Error())
		}
	}
	v.algList = strings.Join(v.algs, ", ")

	leeway := o.Leeway
	switch {
	case leeway == 0:
		leeway = defaultLeeway
	case leeway < 0:
		leeway = 0
	}
	v.cacheTTL = o.CacheTTL
	if v.cacheTTL <= 0 {
		v.cacheTTL = defaultCacheTTL
	}
	switch {
	case o.CacheSize == 0:
		v.cache = newTokenCache(defaultCacheSize)
	case o.CacheSize > 0:
		v.cache = newTokenCache(o.CacheSize)
	}

	jwksURL := o.JWKSURL
	if jwksURL == "" && o.JWKS == nil && !v.templated && o.Issuer != "" {
		jwksURL = strings.TrimRight(o.Issuer, "/") + "/.well-known/jwks.json"
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("auth: invalid verifier options: %s", strings.Join(problems, "; "))
	}

	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(v.now),
	)

	// Keys marked for encryption ("use": "enc") never verify signatures.
	useSig := []jwkset.USE{jwkset.UseSig, ""}
	if o.JWKS != nil {
		var set jwkset.JWKSMarshal
		if err := json.Unmarshal(o.JWKS, &set); err != nil {
			return nil, fmt.Errorf("auth: Options.JWKS is not a usable JWK Set: %w", err)
		}
		store, err := set.ToStorage()
		if err != nil {
			return nil, fmt.Errorf("auth: Options.JWKS is not a usable JWK Set: %w", err)
		}
		if all, _ := store.KeyReadAll(ctx); len(all) == 0 {
			return nil, errors.New("auth: Options.JWKS holds no usable keys")
		}
		kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: store, UseWhitelist: useSig})
		if err != nil {
			return nil, fmt.Errorf("auth: Options.JWKS: %w", err)
		}
		v.keys, v.local = kf, store
		v.cancel = func() {}
		return v, nil
	}

	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultFetchTimeout}
	}
	fetchTimeout := defaultFetchTimeout
	if client.Timeout > 0 {
		fetchTimeout = client.Timeout
	}
	refresh := o.RefreshInterval
	if refresh <= 0 {
		refresh = defaultRefresh
	}
	rl := o.RefreshRateLimit
	if rl <= 0 {
		rl = defaultRateLimit
	}
	bg, cancel := context.WithCancel(ctx)
	v.cancel = cancel
	log := v.log
	// remote holds the keys last fetched from jwksURL; it fetches once now
	// and then every RefreshInterval until bg ends. Reading it never
	// triggers a fetch.
	remote, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       bg,
		HTTPTimeout:               fetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			log.WarnContext(ctx, "auth: fetching the JWK Set failed; tokens signed with keys not yet loaded are refused until a fetch succeeds",
				slog.String("jwks_url", jwksURL), slog.String("error", err.Error()))
		},
		RefreshInterval: refresh,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKSURL %q: %w", jwksURL, err)
	}
	// fetcher re-fetches remote whenever a key it lacks is read: jwkset
	// offers no other way to refresh on demand. Its limiter never waits;
	// v.refresh decides when a fetch may start.
	fetcher, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{jwksURL: remote},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKSURL %q: %w", jwksURL, err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: bg, Storage: remote, UseWhitelist: useSig})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKSURL %q: %w", jwksURL, err)
	}
	v.keys, v.local = kf, remote
	clk := o.refreshClock
	if clk == nil {
		clk = realClock{}
	}
	v.refresh = &refresher{
		every:   rl,
		maxWait: fetchTimeout,
		clock:   clk,
		stop:    bg.Done(),
		fetch: func() {
			ctx, cancel := context.WithTimeout(bg, fetchTimeout)
			defer cancel()
			_, _ = fetcher.KeyRead(ctx, forceRefreshKid) // misses by design; failures are logged by RefreshErrorHandler
		},
	}
	return v, nil
}

// keyfunc returns the jwt.Keyfunc for one verification. It refuses a
// header Verify never accepts before looking for a key (so such tokens cost
// no fetch). A token whose kid is not loaded waits for a re-fetch (see
// Options.RefreshRateLimit) and is then checked against the keys loaded.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	kf := v.keys.KeyfuncCtx(ctx)
	return func(tok *jwt.Token) (any, error) {
		if err := v.checkHeader(tok.Header); err != nil {
			return nil, err
		}
		if v.refresh == nil {
			return kf(tok)
		}
		kid, ok := tok.Header["kid"].(string)
		if !ok {
			return kf(tok)
		}
		loaded := func() bool {
			_, err := v.local.KeyRead(ctx, kid)
			return err == nil
		}
		if loaded() {
			return kf(tok)
		}
		if err := v.refresh.await(ctx, loaded); err != nil && ctx.Err() != nil {
			return nil, err
		}
		// Rate-limited or not: the loaded keys decide (an unknown kid is
		// refused by kf and explained by keyProblem).
		return kf(tok)
	}
}

// TenantClaim is the claim that names the tenant ("" for a
// single-tenant verifier), for a refusal of a token without one.
func (v *Verifier) TenantClaim() string { return v.claims.Tenant }

// Close stops the background JWK Set refresh. Verify keeps working with the
// keys already loaded. Close is idempotent.
func (v *Verifier) Close() {
	v.closeOnce.Do(v.cancel)
}

// CacheStats are counters of the verified-token cache (Options.CacheSize).
type CacheStats struct {
	// Entries is how many verified tokens are cached.
	Entries int
	// Hits are Verify calls answered from the cache; Misses those that
	// verified the token's signature (a token not cached, or no longer
	// usable).
	Hits, Misses uint64
}

// CacheStats returns the token cache's counters; all zero when the cache
// is disabled.
func (v *Verifier) CacheStats() CacheStats {
	if v == nil || v.cache == nil {
		return CacheStats{}
	}
	return v.cache.stats()
}

// Verify checks token (the bearer credential, without "Bearer ") and
// returns the identity it carries. Failures are *TokenError (wrapping
// ErrInvalidToken), *ClaimError (ErrMissingTenantClaim), ErrKeysUnavailable,
// or ctx's error when ctx ends during a key fetch. A token verified before
// is answered from the cache without allocating.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, invalid(nil, "token is empty")
	}
	if len(token) > v.maxToken {
		return nil, invalid(nil, "token is too long (%d bytes, at most %d)", len(token), v.maxToken)
	}
	now := v.now()
	var key tokenKey
	if v.cache != nil {
		key = hashToken(token)
		if id, ok := v.cache.get(&key, now.UnixNano()); ok {
			return id, nil
		}
	}
	id, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		until := now.Add(v.cacheTTL)
		if id.ExpiresAt.Before(until) {
			until = id.ExpiresAt
		}
		if until.After(now) {
			v.cache.put(&key, id, until.UnixNano(), now.UnixNano())
		}
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (*Identity, error) {
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx))
	if err != nil {
		return nil, v.classify(ctx, tok, claims, err)
	}
	if err := v.checkIssuer(claims); err != nil {
		return nil, err
	}
	if err := v.checkKind(claims); err != nil {
		return nil, err
	}
	if err := v.checkAudience(claims); err != nil {
		return nil, err
	}
	return v.identity(claims)
}

func (v *Verifier) checkIssuer(claims jwt.MapClaims) error {
	iss, ok := claims["iss"].(string)
	if !ok {
		return invalid(nil, "token has no iss claim; expected issuer %s", quote(v.issuer))
	}
	if !v.templated {
		if iss != v.issuer {
			return invalid(nil, "issuer %s is not accepted", quote(iss))
		}
		return nil
	}
	name := v.claims.IssuerTenantClaim
	tid, _, ok := v.claims.lookupString(claims, name)
	if !ok || tid == "" {
		return invalid(nil, "token carries no '%s' claim to match its issuer %s against %s", name, quote(iss), quote(v.issuer))
	}
	if strings.ContainsAny(tid, "/?#") || iss != v.issPrefix+tid+v.issSuffix {
		return invalid(nil, "issuer %s is not accepted", quote(iss))
	}
	return nil
}

func (v *Verifier) checkAudience(claims jwt.MapClaims) error {
	switch aud := claims["aud"].(type) {
	case string:
		if aud == v.audience {
			return nil
		}
	case []any:
		for _, a := range aud {
			if s, ok := a.(string); ok && s == v.audience {
				return nil
			}
		}
	case nil:
		if _, present := claims["aud"]; !present && v.claims.ClientIDAudience {
			if cid, ok := claims["client_id"].(string); ok && cid == v.audience {
				return nil
			}
		}
	}
	return invalid(nil, "audience not accepted: expected %s", quote(v.audience))
}

func (v *Verifier) identity(claims jwt.MapClaims) (*Identity, error) {
	m := map[string]any(claims)
	user, _, _ := v.claims.lookupString(m, v.userClaim)
	if user == "" {
		return nil, invalid(nil, "token carries no user claim '%s'", v.userClaim)
	}
	id := &Identity{Issuer: v.issuer, UserID: user, Claims: m}
	if name := v.claims.Tenant; name != "" {
		tid, present, isString := v.claims.lookupString(m, name)
		switch {
		case !present && v.tenantOptional:
		case !present:
			return nil, &ClaimError{Claim: name, Problem: ClaimMissing}
		case !isString:
			return nil, &ClaimError{Claim: name, Problem: ClaimNotString}
		case tid == "":
			return nil, &ClaimError{Claim: name, Problem: ClaimEmpty}
		}
		id.TenantID = tid // "" only when absent and optional
	}
	if name := v.claims.TenantName; name != "" {
		id.TenantName, _, _ = v.claims.lookupString(m, name)
	}
	id.Scopes = v.claims.scopes(m)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.ExpiresAt = exp.Time
	}
	if v.dropClaims {
		id.Claims = nil
	}
	return id, nil
}

// hashToken returns the SHA-256 of token without copying it ([]byte(token)
// would allocate for any real token; sha256 only reads its input).
func hashToken(token string) tokenKey {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// classify turns a jwt/keyfunc error into a client-safe reason.
func (v *Verifier) classify(ctx context.Context, tok *jwt.Token, claims jwt.MapClaims, err error) error {
	if tok == nil || tok.Header == nil || errors.Is(err, jwt.ErrTokenMalformed) {
		if tok == nil {
			return invalid(err, "token is malformed: expected a JWT (three base64url segments separated by dots)")
		}
		return invalid(err, "token is malformed: its header, claims or signature is not valid base64url-encoded JSON")
	}
	alg, _ := tok.Header["alg"].(string)
	if alg == "" {
		return invalid(err, "token header names no signing algorithm (alg)")
	}
	if !slices.Contains(v.algs, alg) {
		return invalid(err, "signing algorithm %s is not allowed (allowed: %s)", quote(alg), v.algList)
	}
	var refused *TokenError
	if errors.As(err, &refused) {
		return refused // by checkHeader
	}
	if errors.Is(err, jwt.ErrTokenUnverifiable) {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("auth: verification stopped while fetching signing keys: %w", cerr)
		}
		return v.keyProblem(ctx, tok, err)
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return invalid(err, "token signature is invalid")
	}
	if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
		return invalid(err, "token has no exp claim")
	}
	if errors.Is(err, jwt.ErrInvalidType) {
		return invalid(err, "token has a malformed time claim: exp, nbf and iat must be numbers")
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		if exp, e := claims.GetExpirationTime(); e == nil && exp != nil {
			return invalid(err, "token expired at %s", exp.UTC().Format(time.RFC3339))
		}
		return invalid(err, "token expired")
	}
	if errors.Is(err, jwt.ErrTokenNotValidYet) {
		if nbf, e := claims.GetNotBefore(); e == nil && nbf != nil {
			return invalid(err, "token not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
		return invalid(err, "token not valid yet")
	}
	if errors.Is(err, jwt.ErrTokenUsedBeforeIssued) {
		if iat, e := claims.GetIssuedAt(); e == nil && iat != nil {
			return invalid(err, "token issued in the future (iat %s): check the identity provider's clock", iat.UTC().Format(time.RFC3339))
		}
		return invalid(err, "token issued in the future")
	}
	return invalid(err, "token is invalid")
}

// keyProblem explains why no key could verify the token: none loaded at
// all, an unknown kid, or a known key that does not fit the algorithm.
func (v *Verifier) keyProblem(ctx context.Context, tok *jwt.Token, err error) error {
	all, rerr := v.local.KeyReadAll(ctx)
	if rerr != nil || len(all) == 0 {
		return ErrKeysUnavailable
	}
	kid, hasKid := tok.Header["kid"].(string)
	if !hasKid {
		if _, present := tok.Header["kid"]; present {
			return invalid(err, "token header kid is not a string")
		}
		return invalid(err, "token signature is invalid")
	}
	for _, k := range all {
		if k.Marshal().KID == kid {
			return invalid(err, "signing key %s cannot verify a %s token", quote(kid), tok.Method.Alg())
		}
	}
	return invalid(err, "unknown signing key id %s", quote(kid))
}
