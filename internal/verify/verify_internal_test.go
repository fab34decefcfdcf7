package verify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/auth"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// devToken mints a real token and returns it with the issuer's JWK Set.
func devToken(t *testing.T, org string) (string, []byte) {
	t.Helper()
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := auth.NewDevIssuer("https://issuer.example/dev", key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Mint(auth.TokenRequest{Audience: "https://mcp.example/mcp", TenantID: org, UserID: "u@" + org, Scopes: []string{"read:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok, iss.JWKS()
}

// TestForgedTokens: what verify makes of a token keeps everything but
// what each attack changes, and the HMAC variants are signed with the
// issuer's public key as a confused verifier would read it.
func TestForgedTokens(t *testing.T) {
	tok, jwks := devToken(t, "acme")
	a, err := parseJWT(tok)
	if err != nil {
		t.Fatal(err)
	}
	if a.claims["org_id"] != "acme" || a.header["alg"] != "ES256" {
		t.Fatalf("parsed %v %v", a.header, a.claims)
	}
	// Re-encoding keeps the claims (numbers exactly) and the signature.
	re, err := parseJWT(a.encode())
	if err != nil || fmt.Sprint(re.claims) != fmt.Sprint(a.claims) || !bytes.Equal(re.sig, a.sig) {
		t.Fatalf("round trip: %v %v", re, err)
	}
	if _, ok := re.claims["exp"].(json.Number); !ok {
		t.Fatalf("exp is %T, want the exact number", re.claims["exp"])
	}
	// HS256 over the unchanged claims, checkable with the key's PEM.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	k := &jwk{raw: set.Keys[0]}
	if err := json.Unmarshal(set.Keys[0], k); err != nil {
		t.Fatal(err)
	}
	var pemKey []byte
	for _, s := range k.secrets() {
		if s.name == "PEM" {
			pemKey = s.key
		}
	}
	block, _ := pem.Decode(pemKey)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("PEM secret %q", pemKey)
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		t.Fatalf("the PEM is not the public key: %v", err)
	}
	hs := a.hmacSigned("HS256", pemKey)
	parts := strings.Split(hs, ".")
	mac := hmac.New(sha256.New, pemKey)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if b64.EncodeToString(mac.Sum(nil)) != parts[2] {
		t.Fatal("HS256 signature does not verify with the PEM")
	}
	h, _ := parseJWT(hs)
	if h.header["alg"] != "HS256" || fmt.Sprint(h.claims) != fmt.Sprint(a.claims) {
		t.Fatalf("HS256 token: %v %v", h.header, h.claims)
	}
	// No wrong-audience variant lost the signature or kept the audience.
	v := &run{tokA: tok, url: "https://mcp.example/mcp"}
	v.tokB, _ = devToken(t, "globex")
	v.origin = mustURL(t, "https://mcp.example")
	for _, at := range []string{"wrong-audience", "wrong-issuer", "expired", "forged-claims"} {
		for _, tv := range attackVariants(t, v, at) {
			f, err := parseJWT(tv.token)
			if err != nil {
				t.Fatalf("%s %s: %v", at, tv.what, err)
			}
			if !bytes.Equal(f.sig, a.sig) && tv.what != "B's claims under A's signature" {
				t.Errorf("%s %s: signature changed", at, tv.what)
			}
			if fmt.Sprint(f.claims) == fmt.Sprint(a.claims) {
				t.Errorf("%s %s: claims unchanged", at, tv.what)
			}
		}
	}
	for _, tv := range attackVariants(t, v, "alg-none") {
		f, _ := parseJWT(tv.token)
		if !strings.EqualFold(fmt.Sprint(f.header["alg"]), "none") || fmt.Sprint(f.claims) != fmt.Sprint(a.claims) {
			t.Errorf("alg-none %s: %v %v", tv.what, f.header, f.claims)
		}
	}
}

func attackVariants(t *testing.T, v *run, id string) []tokenVariant {
	t.Helper()
	v.opts = &Options{Timeout: defaultTimeout}
	v.base = http.DefaultTransport
	v.httpA = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 404, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
	})}
	for _, at := range v.tokenAttacks(t.Context()) {
		if at.id == id {
			if len(at.variants) == 0 {
				t.Fatalf("%s: no variants", id)
			}
			return at.variants
		}
	}
	t.Fatalf("no attack %s", id)
	return nil
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFindToolsets: the documents and notes families are found by name,
// arguments from their schemas; named tools must exist.
func TestFindToolsets(t *testing.T) {
	tool := func(name string, props map[string]string, required ...string) toolInfo {
		var ti toolInfo
		ti.Name = name
		ti.InputSchema.Properties = map[string]struct {
			Type any `json:"type"`
		}{}
		for p, typ := range props {
			ti.InputSchema.Properties[p] = struct {
				Type any `json:"type"`
			}{typ}
		}
		ti.InputSchema.Required = required
		return ti
	}
	docs := []toolInfo{
		tool("put_document", map[string]string{"key": "string", "content": "string"}, "key", "content"),
		tool("get_document", map[string]string{"key": "string"}, "key"),
		tool("list_documents", map[string]string{"prefix": "string"}),
		tool("delete_document", map[string]string{"key": "string"}, "key"),
	}
	notesTools := []toolInfo{
		tool("save_note", map[string]string{"key": "string", "text": "string"}, "key", "text"),
		tool("get_note", map[string]string{"key": "string"}, "key"),
		tool("list_notes", nil),
	}
	tickets := []toolInfo{
		tool("create_ticket", map[string]string{"title": "string", "priority": "integer"}, "title", "priority"),
		tool("get_ticket", map[string]string{"id": "string"}, "id"),
	}
	all := slices.Concat(docs, notesTools, tickets)
	sets, err := findToolsets(all, &Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sets {
		got = append(got, fmt.Sprintf("%s key=%q read=%q values=%v list=%q", s, s.key, s.readKey, s.values, s.listArg))
	}
	want := []string{
		`put_document/get_document/list_documents/delete_document key="key" read="key" values=[content] list="prefix"`,
		`save_note/get_note/list_notes key="key" read="key" values=[text] list=""`,
		`create_ticket/get_ticket key="" read="id" values=[title] list=""`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("toolsets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if args := sets[2].write.fill(map[string]any{"title": "x"}); args["priority"] != 1 {
		t.Errorf("fill: %v", args)
	}
	named, err := findToolsets(all, &Options{WriteTool: "save_note", ReadTool: "get_note"})
	if err != nil || len(named) != 1 || named[0].String() != "save_note/get_note" {
		t.Fatalf("named: %v %v", named, err)
	}
	if _, err := findToolsets(all, &Options{WriteTool: "put_ticket", ReadTool: "get_ticket"}); err == nil || !strings.Contains(err.Error(), `"put_ticket"`) {
		t.Fatalf("unknown named tool: %v", err)
	}
}

// TestScanner: A's content is found in a reply however it is split
// across reads; the run id counts only where the request did not send
// it, and not at all once B's own data holds it.
func TestScanner(t *testing.T) {
	s := newScanner("run123")
	s.addContent("tmverify secret abc")
	body := `{"x":"` + strings.Repeat("y", 1000) + `tmverify secret abc","keys":["tmverify-run123-a"]}`
	read := func(sent, check string) []string {
		b := &scanBody{ReadCloser: io.NopCloser(iotest.OneByteReader(strings.NewReader(body))), secrets: s.secrets([]byte(sent)), check: check, what: "POST /mcp", s: s, seen: map[string]bool{}}
		io.Copy(io.Discard, b)
		return s.hitsFor(check)
	}
	if h := read(`{"prefix":""}`, "list"); len(h) != 2 {
		t.Fatalf("hits %v, want content and key", h)
	}
	if h := read(`{"key":"tmverify-run123-a"}`, "read"); len(h) != 1 || !strings.Contains(h[0], "content") {
		t.Fatalf("hits %v, want only the content (the key was sent)", h)
	}
	s.stopKeys()
	if h := read(`{}`, "later"); len(h) != 1 {
		t.Fatalf("hits %v, want only the content once keys are off", h)
	}
}

// TestTricks: every trick differs from A's key but the first; they
// include climbs through A's tenant and look-alikes.
func TestTricks(t *testing.T) {
	k := "tmverify-r/a/doc.md"
	tricks := keyTricks(k, []string{"acme"})
	if tricks[0] != k || slices.Contains(tricks[1:], k) {
		t.Fatalf("tricks %q", tricks)
	}
	for _, want := range []string{"../acme/" + k, "./" + k, "tmv\u0435rify-r/a/doc.md", "tmverify\u2010r/a/doc.md"} {
		if !slices.Contains(tricks, want) {
			t.Errorf("no trick %q", want)
		}
	}
	for _, p := range prefixTricks([]string{"acme"}) {
		if strings.Contains(p, "tmverify-r") {
			t.Errorf("prefix %q names the run: a reply quoting it would look like a leak", p)
		}
	}
}

// FuzzParseJWT: parsing untrusted tokens never panics, and what parses
// re-encodes to a token that parses the same.
func FuzzParseJWT(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjEuNWUxMH0.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := parseJWT(tok)
		if err != nil {
			return
		}
		q, err := parseJWT(p.encode())
		if err != nil || fmt.Sprint(q.claims) != fmt.Sprint(p.claims) {
			t.Fatalf("re-encoded %q: %v", p.encode(), err)
		}
	})
}

// TestTokensNotInReport: evidence quoting a URL or header with a token in
// it shows a placeholder instead.
func TestTokensNotInReport(t *testing.T) {
	tok, _ := devToken(t, "acme")
	v := newRun("https://mcp.example/mcp", mustURL(t, "https://mcp.example/mcp"), tok, "token-of-tenant-b-0123456789", &Options{AdminToken: "short"})
	v.add("no-token", "x", StatusError, "Post %q: refused; B sent %s; admin short", "https://mcp.example/mcp?access_token="+tok, "token-of-tenant-b-0123456789")
	ev := v.rep.Checks[0].Evidence
	if strings.Contains(ev, tok) || strings.Contains(ev, "token-of-tenant-b") || !strings.Contains(ev, "<token A>") || !strings.Contains(ev, "<token B>") || !strings.Contains(ev, "admin short") {
		t.Fatalf("evidence %q", ev)
	}
}

// TestRedirectsNotFollowed: a server answering 307 to another address
// (GO-2026-6911: mcp-go's client follows redirects) gets the redirect back
// as its answer; nothing, token or body, reaches the other address.
func TestRedirectsNotFollowed(t *testing.T) {
	var reached atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	u, err := url.Parse(redirecting.URL + "/mcp")
	if err != nil {
		t.Fatal(err)
	}
	v := newRun(u.String(), u, "token-a", "token-b", &Options{})
	defer v.close()
	for _, c := range []*http.Client{v.httpA, v.httpB} {
		resp, err := c.Post(u.String(), "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Errorf("status %d, want the 307 itself", resp.StatusCode)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d requests followed the redirect to another address", n)
	}
	elsewhere.CloseClientConnections()
}
