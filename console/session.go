package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Cookie names. The session cookie holds only a random id; the session is
// in memory on this replica.
const (
	sessionCookie = "tenantmcp_console"
	signInCookie  = "tenantmcp_console_signin"
)

// session is one signed-in browser.
type session struct {
	id      string
	csrf    string
	subject string
	issuer  string
	name    string // shown in the header
	admin   bool   // false: a valid sign-in without admin rights
	created time.Time
	expires time.Time

	mu    sync.Mutex
	flash *flash // shown once, on the next page
}

// flash is a message for the next page after a redirect (POST-redirect-GET).
type flash struct {
	Kind string // "ok" or "error"
	Text string
	// Secret is shown once and then forgotten (an impersonation credential).
	Secret string
}

func (s *session) setFlash(f *flash) {
	s.mu.Lock()
	s.flash = f
	s.mu.Unlock()
}

func (s *session) takeFlash() *flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

// sessions is the bounded, expiring session table, the key that seals
// the sign-ins in progress (which live in the browser's sign-in cookie,
// see signin.go) and the states of the sign-ins finished.
type sessions struct {
	mu   sync.Mutex
	max  int
	now  func() time.Time
	byID map[string]*session
	// seal seals sign-in cookies: AES-256-GCM under a random key of this
	// process, so a sign-in finishes on the replica that started it.
	seal cipher.AEAD
	// used are the states of sign-ins whose code was traded for tokens,
	// until the attempt would have expired anyway: a sign-in cookie is
	// used once.
	used map[string]time.Time
}

// maxUsedSignIns bounds the states of finished sign-ins remembered. The
// set grows only with codes the identity provider redeemed (a real
// sign-in there each), and each entry lasts at most SignInTimeout.
const maxUsedSignIns = 10000

func newSessions(max int, now func() time.Time) *sessions {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // a 32-byte key is always a valid AES key
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic(err) // AES has GCM's block size
	}
	return &sessions{max: max, now: now, byID: map[string]*session{}, seal: aead, used: map[string]time.Time{}}
}

// add stores s, making room if the table is full: expired sessions first,
// then ones without admin access, then the oldest.
func (t *sessions) add(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byID) >= t.max {
		now := t.now()
		for id, o := range t.byID {
			if !now.Before(o.expires) {
				delete(t.byID, id)
			}
		}
	}
	for len(t.byID) >= t.max {
		var victim *session
		for _, o := range t.byID {
			if victim == nil || (victim.admin && !o.admin) || (victim.admin == o.admin && o.created.Before(victim.created)) {
				victim = o
			}
		}
		delete(t.byID, victim.id)
	}
	t.byID[s.id] = s
}

// get returns the live session with id, or nil.
func (t *sessions) get(id string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byID[id]
	if s == nil {
		return nil
	}
	if !t.now().Before(s.expires) {
		delete(t.byID, id)
		return nil
	}
	return s
}

func (t *sessions) remove(id string) {
	t.mu.Lock()
	delete(t.byID, id)
	t.mu.Unlock()
}

// len is the number of sessions held (expired ones included until they
// are looked up or evicted).
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// signInUsed reports whether the sign-in with state has finished (its
// code was traded for tokens).
func (t *sessions) signInUsed(state string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.used[state]
	return ok && t.now().Before(exp)
}

// useSignIn records that the sign-in with state, live until expires, has
// finished; false if it had already. When the set is full the expired
// states go, then those expiring first.
func (t *sessions) useSignIn(state string, expires time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if exp, ok := t.used[state]; ok && now.Before(exp) {
		return false
	}
	if len(t.used) >= maxUsedSignIns {
		for st, exp := range t.used {
			if !now.Before(exp) {
				delete(t.used, st)
			}
		}
	}
	for len(t.used) >= maxUsedSignIns {
		var first string
		for st, exp := range t.used {
			if first == "" || exp.Before(t.used[first]) {
				first = st
			}
		}
		delete(t.used, first)
	}
	t.used[state] = expires
	return true
}

// randomID returns n random bytes, base64url.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionOf returns the request's live session, or nil.
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	return c.sessions.get(ck.Value)
}

// cookie returns a console cookie: HttpOnly, SameSite=Lax (Strict would
// drop it on the identity provider's redirect back), Secure except on a
// loopback http URL, scoped to Path.
func (c *Console) cookie(name, value string, expires time.Time) *http.Cookie {
	ck := &http.Cookie{
		Name: name, Value: value, Path: Path,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
	}
	return ck
}

// checkCSRF checks a change: it must come from the console's own origin
// (checkOrigin), and the form's csrf field must equal the session's
// token. It returns why it refuses, or "".
func (c *Console) checkCSRF(r *http.Request, s *session) string {
	if why := c.checkOrigin(r); why != "" {
		return why
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return "the form could not be read"
	}
	tok := r.PostForm.Get("csrf")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		return "the form's security token is missing or does not match this session"
	}
	return ""
}

// checkOrigin is the part of checkCSRF that reads only headers (so it
// runs before any body is read): an Origin other than the console's, or a
// Sec-Fetch-Site other than same-origin, is refused, and one of them must
// be there (Origin "null", which browsers send under Referrer-Policy
// no-referrer, counts as absent). Origins are compared normalised
// (normalOrigin). It returns why it refuses, or "".
func (c *Console) checkOrigin(r *http.Request) string {
	origin := r.Header.Get("Origin")
	site := r.Header.Get("Sec-Fetch-Site")
	if origin == "null" {
		// What browsers send for a same-origin form under Referrer-Policy
		// no-referrer: Sec-Fetch-Site must then say where it came from.
		origin = ""
	}
	switch {
	case origin != "" && normalOrigin(origin) != c.origin:
		return "it came from another site (" + originText(origin) + ")"
	case site != "" && site != "same-origin":
		return "it came from another site (Sec-Fetch-Site: " + originText(site) + ")"
	case origin == "" && site == "":
		return "the browser did not say where it came from (no Origin or Sec-Fetch-Site header)"
	}
	return ""
}

// normalOrigin is origin (scheme://host[:port]) as browsers serialise it:
// scheme and host lower-case, without the scheme's default port (443 for
// https, 80 for http). Anything that is not such an origin (a path, user
// info, no host) is returned as it is, and so matches no console.
func normalOrigin(origin string) string {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return origin
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return scheme + "://" + host
}

// maxForm bounds a form body.
const maxForm = 64 << 10

// originText is an Origin header value fit to show (bounded, no
// surprises).
func originText(v string) string {
	if len(v) > 100 {
		v = v[:100] + "…"
	}
	if u, err := url.Parse(v); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return url.PathEscape(v)
}
