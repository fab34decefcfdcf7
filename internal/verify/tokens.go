package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
)

// A JWT as three decoded parts. verify has no private key: every token it
// makes from A's is A's with something changed, so each must fail —
// whatever it claims — as a forgery.
type jwtToken struct {
	header map[string]any
	claims map[string]any
	sig    []byte
}

var b64 = base64.RawURLEncoding

// parseJWT splits and decodes a compact JWT (numbers kept exact).
func parseJWT(tok string) (*jwtToken, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT (want header.payload.signature)")
	}
	t := &jwtToken{}
	for i, dst := range []*map[string]any{&t.header, &t.claims} {
		raw, err := b64.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("not a JWT: part %d: %v", i+1, err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			return nil, fmt.Errorf("not a JWT: part %d: %v", i+1, err)
		}
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("not a JWT: signature: %v", err)
	}
	t.sig = sig
	return t, nil
}

// jwtClaims returns a JWT's claims, unverified.
func jwtClaims(tok string) (map[string]any, error) {
	t, err := parseJWT(tok)
	if err != nil {
		return nil, err
	}
	return t.claims, nil
}

// clone returns a deep enough copy to change header and claims.
func (t *jwtToken) clone() *jwtToken {
	c := &jwtToken{header: map[string]any{}, claims: map[string]any{}, sig: bytes.Clone(t.sig)}
	for k, v := range t.header {
		c.header[k] = v
	}
	for k, v := range t.claims {
		c.claims[k] = v
	}
	return c
}

// signingInput is the header and payload as sent.
func (t *jwtToken) signingInput() string {
	h, _ := json.Marshal(t.header)
	c, _ := json.Marshal(t.claims)
	return b64.EncodeToString(h) + "." + b64.EncodeToString(c)
}

// encode returns the token with its (old, or given) signature.
func (t *jwtToken) encode() string { return t.signingInput() + "." + b64.EncodeToString(t.sig) }

// hmacSigned returns the token signed with HMAC under alg ("HS256",
// "HS512") and key.
func (t *jwtToken) hmacSigned(alg string, key []byte) string {
	c := t.clone()
	c.header["alg"] = alg
	c.header["typ"] = "JWT"
	var h func() hash.Hash = sha256.New
	if alg == "HS512" {
		h = sha512.New
	}
	in := c.signingInput()
	mac := hmac.New(h, key)
	mac.Write([]byte(in))
	return in + "." + b64.EncodeToString(mac.Sum(nil))
}

// tokenVariant is one token to try.
type tokenVariant struct {
	what  string
	token string // "" sends no bearer token
	// url replaces the MCP URL (a token in the query string); auth is an
	// Authorization header sent instead of a bearer token.
	url  string
	auth string
}

// tokenAttack is a family of variants reported on one line.
type tokenAttack struct {
	id, attack string
	variants   []tokenVariant
	// na, if set, is why the attack does not apply.
	na string
}

// tokenAttacks builds every forged token from A's (and B's) token.
func (v *run) tokenAttacks(ctx context.Context) []tokenAttack {
	a, err := parseJWT(v.tokA)
	if err != nil {
		out := []tokenAttack{v.noTokenAttack()}
		for _, id := range forgedTokenChecks {
			out = append(out, tokenAttack{id: id, attack: tokenAttackNames[id], na: "not applicable: token A is " + err.Error()})
		}
		return out
	}
	now := time.Now().Unix()
	with := func(change func(*jwtToken)) string {
		c := a.clone()
		change(c)
		return c.encode()
	}
	garbage := make([]byte, max(len(a.sig), 64))
	copy(garbage, randomHex(len(garbage)))
	flipped := bytes.Clone(a.sig)
	if len(flipped) > 0 {
		flipped[len(flipped)/2] ^= 0x01
	}
	b, _ := parseJWT(v.tokB)
	forgedSig := []tokenVariant{
		{what: "random signature", token: with(func(c *jwtToken) { c.sig = garbage })},
		{what: "one bit of the signature flipped", token: with(func(c *jwtToken) { c.sig = flipped })},
		{what: "empty signature", token: a.signingInput() + "."},
	}
	if b != nil {
		forgedSig = append(forgedSig, tokenVariant{what: "B's signature on A's claims", token: with(func(c *jwtToken) { c.sig = b.sig })})
	}
	var forgedClaims []tokenVariant
	if b != nil {
		forgedClaims = append(forgedClaims, tokenVariant{what: "B's tenant claims in A's token", token: with(func(c *jwtToken) {
			for k, val := range b.claims {
				if !isTimeOrID(k) && k != "sub" {
					c.claims[k] = val
				}
			}
		})})
		forgedClaims = append(forgedClaims, tokenVariant{what: "B's claims under A's signature", token: b.signingInput() + "." + b64.EncodeToString(a.sig)})
	}
	forgedClaims = append(forgedClaims,
		tokenVariant{what: "expiry a year later", token: with(func(c *jwtToken) { c.claims["exp"] = now + 365*24*3600 })},
		tokenVariant{what: "admin scope added", token: with(func(c *jwtToken) {
			c.claims["scope"] = strings.TrimSpace(fmt.Sprint(c.claims["scope"]) + " admin:global")
		})},
		tokenVariant{what: "another user", token: with(func(c *jwtToken) { c.claims["sub"] = "tmverify-intruder" })},
	)
	expired := []tokenVariant{
		{what: "expired an hour ago", token: with(func(c *jwtToken) {
			c.claims["exp"], c.claims["iat"], c.claims["nbf"] = now-3600, now-7200, now-7200
		})},
		{what: "not valid for another hour", token: with(func(c *jwtToken) { c.claims["nbf"], c.claims["iat"] = now+3600, now+3600 })},
		{what: "no expiry", token: with(func(c *jwtToken) { delete(c.claims, "exp") })},
	}
	var none []tokenVariant
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		c := a.clone()
		c.header = map[string]any{"alg": alg, "typ": "JWT"}
		none = append(none, tokenVariant{what: `alg "` + alg + `", no signature`, token: c.signingInput() + "."})
	}
	c := a.clone()
	c.header["alg"] = "none"
	none = append(none, tokenVariant{what: `alg "none" with A's kid and signature`, token: c.encode()})

	hs := tokenAttack{id: "hs256-public-key", attack: tokenAttackNames["hs256-public-key"]}
	keys, raw, from, tried := v.fetchJWKS(ctx, a)
	if len(keys) == 0 {
		hs.na = "not applicable: no JWK Set found (tried " + strings.Join(tried, ", ") + ")"
	} else {
		for _, k := range keys {
			for _, sec := range k.secrets() {
				for _, alg := range []string{"HS256", "HS512"} {
					if alg == "HS512" && sec.name != "PEM" {
						continue
					}
					signed := a.clone()
					if k.Kid != "" {
						signed.header["kid"] = k.Kid
					}
					hs.variants = append(hs.variants, tokenVariant{what: fmt.Sprintf("%s with key %s's %s", alg, k.label(), sec.name), token: signed.hmacSigned(alg, sec.key)})
				}
			}
		}
		hs.variants = append(hs.variants, tokenVariant{what: "HS256 with the JWK Set document", token: a.hmacSigned("HS256", raw)})
		hs.attack += " (JWK Set from " + from + ")"
	}
	aud := []tokenVariant{
		{what: "another audience", token: with(func(c *jwtToken) { c.claims["aud"] = "https://tmverify.invalid/mcp" })},
		{what: "the server's origin as audience", token: with(func(c *jwtToken) { c.claims["aud"] = v.origin.String() })},
		{what: "no audience", token: with(func(c *jwtToken) { delete(c.claims, "aud") })},
	}
	iss := []tokenVariant{
		{what: "another issuer", token: with(func(c *jwtToken) { c.claims["iss"] = "https://tmverify.invalid/" })},
		{what: "issuer with a trailing slash changed", token: with(func(c *jwtToken) {
			s := fmt.Sprint(c.claims["iss"])
			if strings.HasSuffix(s, "/") {
				c.claims["iss"] = strings.TrimSuffix(s, "/")
			} else {
				c.claims["iss"] = s + "/"
			}
		})},
		{what: "no issuer", token: with(func(c *jwtToken) { delete(c.claims, "iss") })},
	}
	kid := []tokenVariant{
		{what: "unknown kid", token: func() string { c := a.clone(); c.header["kid"] = "tmverify-unknown-kid"; return c.encode() }()},
		{what: "kid with a path", token: func() string { c := a.clone(); c.header["kid"] = "../../../../dev/null"; return c.encode() }()},
		{what: "jku pointing elsewhere", token: func() string {
			c := a.clone()
			c.header["jku"] = "https://tmverify.invalid/jwks.json"
			return c.encode()
		}()},
	}
	return []tokenAttack{
		v.noTokenAttack(),
		{id: "forged-signature", attack: tokenAttackNames["forged-signature"], variants: forgedSig},
		{id: "forged-claims", attack: tokenAttackNames["forged-claims"], variants: forgedClaims},
		{id: "expired", attack: tokenAttackNames["expired"], variants: expired},
		{id: "alg-none", attack: tokenAttackNames["alg-none"], variants: none},
		hs,
		{id: "wrong-audience", attack: tokenAttackNames["wrong-audience"], variants: aud},
		{id: "wrong-issuer", attack: tokenAttackNames["wrong-issuer"], variants: iss},
		{id: "unknown-kid", attack: tokenAttackNames["unknown-kid"], variants: kid},
	}
}

// forgedTokenChecks are the checks of tokens made from A's.
var forgedTokenChecks = []string{"forged-signature", "forged-claims", "expired", "alg-none", "hs256-public-key", "wrong-audience", "wrong-issuer", "unknown-kid"}

var tokenAttackNames = map[string]string{
	"no-token":         "no token, or A's token outside the Authorization header",
	"forged-signature": "A's token re-signed with garbage",
	"forged-claims":    "A's token with changed claims (B's tenant, later expiry, admin scope), old signature",
	"expired":          "A's token made expired or not yet valid (signature kept)",
	"alg-none":         "A's claims unsigned (alg none)",
	"hs256-public-key": "A's claims HMAC-signed with the issuer's public key",
	"wrong-audience":   "A's token for another audience (signature kept)",
	"wrong-issuer":     "A's token from another issuer (signature kept)",
	"unknown-kid":      "A's token naming an unknown key (kid, jku)",
}

func (v *run) noTokenAttack() tokenAttack {
	return tokenAttack{id: "no-token", attack: tokenAttackNames["no-token"], variants: []tokenVariant{
		{what: "no Authorization header"},
		{what: "empty bearer token", auth: "Bearer "},
		{what: "A's token in the query string", url: v.url + "?access_token=" + v.tokA},
		{what: "A's token as Basic credentials", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("tenant:"+v.tokA))},
	}}
}

// checkTokens sends a request that A's own token gets served (a read of
// A's marker) with every forged token instead; each must get 401.
func (v *run) checkTokens(ctx context.Context) {
	v.restore(ctx) // the control reads a marker: on a leaking server B may have changed it
	control := rawCall{method: "tools/list", params: map[string]any{}}
	var m *marker
	if len(v.markers) > 0 {
		m = v.markers[0]
		control = rawCall{method: "tools/call", params: map[string]any{"name": m.set.read.Name, "arguments": m.set.read.fill(map[string]any{m.set.readKey: m.key})}}
	}
	control.session = v.sessionOf(v.a)
	control.token = v.tokA
	r, err := v.post(ctx, v.httpA, control)
	attacks := v.tokenAttacks(ctx)
	if err != nil || !r.ok() || !r.result() || (m != nil && !bytes.Contains(r.body, []byte(m.content))) {
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			why = r.describe()
		}
		for _, at := range attacks {
			v.add(at.id, at.attack, StatusError, "the request the forged tokens are tried with is not served with A's own token (%s), so their refusals prove nothing", why)
		}
		return
	}
	for _, at := range attacks {
		if at.na != "" {
			v.add(at.id, at.attack, StatusNA, "%s", at.na)
			continue
		}
		actx := withCheck(ctx, at.id)
		var leaks, errs, codes []string
		for _, tv := range at.variants {
			c := control
			c.token, c.url = tv.token, tv.url
			if tv.auth != "" {
				c.header = map[string]string{"Authorization": tv.auth}
			}
			rr, err := v.post(actx, v.httpB, c)
			if err != nil {
				errs = append(errs, tv.what+": "+err.Error())
				continue
			}
			codes = append(codes, fmt.Sprint(rr.status))
			refused := rr.status == http.StatusUnauthorized || at.id == "no-token" && rr.status == http.StatusBadRequest
			switch {
			case refused:
			case rr.status >= 500:
				errs = append(errs, fmt.Sprintf("%s: %s (a server error, not 401)", tv.what, rr.describe()))
			case rr.ok():
				leaks = append(leaks, fmt.Sprintf("%s was accepted: %s", tv.what, rr.describe()))
			default:
				leaks = append(leaks, fmt.Sprintf("%s got past authentication (%s; an invalid token gets 401)", tv.what, rr.describe()))
			}
		}
		leaks = append(leaks, v.scan.hitsFor(at.id)...)
		switch {
		case len(leaks) > 0:
			v.add(at.id, at.attack, StatusLeak, "%s", summarize(leaks))
		case len(errs) > 0:
			v.add(at.id, at.attack, StatusError, "%s", summarize(errs))
		default:
			v.add(at.id, at.attack, StatusPass, "%d variants (%s): all refused with HTTP %s", len(at.variants), variantNames(at.variants), strings.Join(dedupe(codes), "/"))
		}
	}
}

func variantNames(vs []tokenVariant) string {
	names := make([]string, len(vs))
	for i, tv := range vs {
		names[i] = tv.what
	}
	return summarize(names)
}

// jwk is a public key of the issuer's JWK Set.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	raw json.RawMessage
}

func (k *jwk) label() string {
	if k.Kid == "" {
		return k.Kty
	}
	if len(k.Kid) > 12 {
		return k.Kid[:8] + "…"
	}
	return k.Kid
}

type hmacSecret struct {
	name string
	key  []byte
}

// secrets returns the byte strings a confused verifier might take as an
// HMAC secret for this key: its PEM (with and without the final newline),
// its DER and its JWK JSON.
func (k *jwk) secrets() []hmacSecret {
	out := []hmacSecret{{"JWK JSON", k.raw}}
	var pub any
	switch k.Kty {
	case "EC":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k.Crv]
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if curve == nil || errX != nil || errY != nil {
			return out
		}
		size := (curve.Params().BitSize + 7) / 8
		pt := append([]byte{4}, append(leftPad(x, size), leftPad(y, size)...)...)
		ek, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return out
		}
		pub = ek
	case "RSA":
		n, errN := b64.DecodeString(k.N)
		e, errE := b64.DecodeString(k.E)
		if errN != nil || errE != nil {
			return out
		}
		rk := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		pub = rk
		pk1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rk)})
		out = append(out, hmacSecret{"PKCS #1 PEM", pk1})
	default:
		return out
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return out
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return append(out, hmacSecret{"PEM", p}, hmacSecret{"PEM without its final newline", bytes.TrimSpace(p)}, hmacSecret{"DER", der})
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// fetchJWKS finds the issuer's JWK Set from the protected-resource
// metadata (RFC 9728) and the authorization server's metadata (RFC 8414,
// OpenID discovery), falling back to the usual locations. It returns the
// keys, the document, where it came from and everything tried.
func (v *run) fetchJWKS(ctx context.Context, a *jwtToken) ([]*jwk, []byte, string, []string) {
	var tried []string
	getJSON := func(u string, dst any) []byte {
		tried = append(tried, u)
		r, err := v.send(ctx, v.httpA, http.MethodGet, u, "", http.Header{"Accept": {"application/json"}}, nil)
		if err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, dst) != nil {
			return nil
		}
		return r.body
	}
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
		JWKSURI              string   `json:"jwks_uri"`
	}
	getJSON(auth.MetadataURL(v.url), &prm)
	var candidates []string
	if prm.JWKSURI != "" {
		candidates = append(candidates, prm.JWKSURI)
	}
	issuers := prm.AuthorizationServers
	if iss, ok := a.claims["iss"].(string); ok && iss != "" {
		issuers = append(issuers, iss)
	}
	for _, iss := range dedupe(issuers) {
		base := strings.TrimSuffix(iss, "/")
		for _, md := range []string{base + "/.well-known/openid-configuration", wellKnown(iss, "oauth-authorization-server")} {
			var doc struct {
				JWKSURI string `json:"jwks_uri"`
			}
			if getJSON(md, &doc) != nil && doc.JWKSURI != "" {
				candidates = append(candidates, doc.JWKSURI)
			}
		}
		candidates = append(candidates, base+"/.well-known/jwks.json", base+"/jwks.json")
	}
	for _, u := range dedupe(candidates) {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		raw := getJSON(u, &set)
		if raw == nil || len(set.Keys) == 0 {
			continue
		}
		var keys []*jwk
		for _, kr := range set.Keys {
			k := &jwk{raw: kr}
			if json.Unmarshal(kr, k) == nil {
				keys = append(keys, k)
			}
			if len(keys) == 2 {
				break
			}
		}
		return keys, raw, u, tried
	}
	return nil, nil, "", tried
}

// wellKnown returns RFC 8414's metadata URL of issuer: the well-known
// path inserted between host and path.
func wellKnown(issuer, name string) string {
	scheme, rest, ok := strings.Cut(issuer, "://")
	if !ok {
		return issuer
	}
	host, path, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/.well-known/" + name + strings.TrimSuffix("/"+path, "/")
}
