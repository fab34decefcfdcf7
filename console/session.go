package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
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

// signInAttempt is a sign-in sent to the identity provider and not back yet.
type signInAttempt struct {
	state, nonce, verifier string
	next                   string
	created                time.Time
}

// sessions is the bounded, expiring session table and the sign-ins in
// progress.
type sessions struct {
	mu        sync.Mutex
	max       int
	maxSignIn int
	now       func() time.Time
	byID      map[string]*session
	signIns   map[string]*signInAttempt // by state
}

func newSessions(max, maxSignIn int, now func() time.Time) *sessions {
	return &sessions{max: max, maxSignIn: maxSignIn, now: now, byID: map[string]*session{}, signIns: map[string]*signInAttempt{}}
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

// startSignIn records a sign-in attempt, dropping expired ones and, when
// full, the oldest.
func (t *sessions) startSignIn(a *signInAttempt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for st, o := range t.signIns {
		if now.Sub(o.created) > SignInTimeout {
			delete(t.signIns, st)
		}
	}
	for len(t.signIns) >= t.maxSignIn {
		var oldest *signInAttempt
		for _, o := range t.signIns {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(t.signIns, oldest.state)
	}
	t.signIns[a.state] = a
}

// finishSignIn removes and returns the live attempt with state, or nil: an
// attempt is used once.
func (t *sessions) finishSignIn(state string) *signInAttempt {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.signIns[state]
	delete(t.signIns, state)
	if a == nil || t.now().Sub(a.created) > SignInTimeout {
		return nil
	}
	return a
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

// checkCSRF checks a change: the form's csrf field must equal the
// session's token, and the request must come from the console's own
// origin: an Origin other than the console's, or a Sec-Fetch-Site other
// than same-origin, is refused, and one of them must be there (Origin
// "null", which browsers send under Referrer-Policy no-referrer, counts as
// absent). It returns why it
// refuses, or "".
func (c *Console) checkCSRF(r *http.Request, s *session) string {
	origin := r.Header.Get("Origin")
	site := r.Header.Get("Sec-Fetch-Site")
	if origin == "null" {
		// What browsers send for a same-origin form under Referrer-Policy
		// no-referrer: Sec-Fetch-Site must then say where it came from.
		origin = ""
	}
	switch {
	case origin != "" && origin != c.origin:
		return "it came from another site (" + originText(origin) + ")"
	case site != "" && site != "same-origin":
		return "it came from another site (Sec-Fetch-Site: " + originText(site) + ")"
	case origin == "" && site == "":
		return "the browser did not say where it came from (no Origin or Sec-Fetch-Site header)"
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
