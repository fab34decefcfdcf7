package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// run is one verification: the target, the clients and what was learnt.
type run struct {
	url     string   // the MCP endpoint
	origin  *url.URL // its scheme and host
	mcpPath string   // its path
	tokA    string
	tokB    string
	opts    *Options
	rep     *Report
	id      string // in every marker key

	base  http.RoundTripper
	retry *retryTransport
	scan  *scanner
	// httpA sends tenant A's and the admin's requests; httpB everything
	// else (tenant B's, forged and anonymous requests), through the
	// scanner.
	httpA, httpB *http.Client

	a, b    *mcpClient // tenant A's and B's clients (negotiated revision)
	version string     // the revision A negotiated
	modern  bool       // it is 2026-07-28 or later: no sessions

	toolsA, toolsB []toolInfo
	sets           []*toolset
	markers        []*marker  // A's markers, written and read back
	written        []*marker  // everything A may have written, for the cleanup
	bCopies        []*marker  // what B may have written (its overwrite attempts)
	aSession       *mcpClient // A's legacy client, when the server is stateful
	claimsA        map[string]any
	claimsB        map[string]any
	tenantValues   []string // A's identity in the token (its tenant claim's value...)
	connected      bool
}

func newRun(mcpURL string, u *url.URL, tokA, tokB string, o *Options) *run {
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	rt := &retryTransport{next: base}
	v := &run{
		url:     mcpURL,
		origin:  &url.URL{Scheme: u.Scheme, Host: u.Host},
		mcpPath: u.Path,
		tokA:    tokA,
		tokB:    tokB,
		opts:    o,
		rep:     &Report{URL: mcpURL, Toolsets: []string{}, Markers: []string{}},
		id:      newRunID(),
		base:    base,
		retry:   rt,
	}
	v.scan = newScanner(v.id)
	// Redirects are never followed: a server (or something in front of it)
	// answering 307 must not get the tokens' requests and bodies sent on
	// to another address. The redirect is an answer like any other.
	v.httpA = &http.Client{Transport: rt, CheckRedirect: noRedirects}
	v.httpB = &http.Client{Transport: &scanTransport{next: rt, s: v.scan}, CheckRedirect: noRedirects}
	return v
}

// noRedirects is an http.Client's CheckRedirect that stops at the first
// redirect and returns it.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// close closes the clients and their idle connections.
func (v *run) close() {
	for _, c := range []*mcpClient{v.a, v.b, v.aSession} {
		if c != nil {
			c.close()
		}
	}
	if ci, ok := v.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// originURL returns path on the server's origin.
func (v *run) originURL(path string) string {
	u := *v.origin
	u.Path = path
	return u.String()
}

// retryTransport retries requests answered 429 after the Retry-After the
// server asks for, so that rate limits slow verify down instead of
// deciding checks.
type retryTransport struct {
	next     http.RoundTripper
	waitedNs atomic.Int64
}

const (
	maxRetries   = 8
	maxRetryWait = 30 * time.Second
)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt == maxRetries || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		wait = min(max(wait, 100*time.Millisecond), maxRetryWait)
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		timer := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
		t.waitedNs.Add(int64(wait))
		next := req.Clone(req.Context())
		if req.GetBody != nil {
			if next.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		req = next
	}
}

func (t *retryTransport) waited() time.Duration { return time.Duration(t.waitedNs.Load()) }

// rawCall is one JSON-RPC POST, built by hand for the attacks a protocol
// client would not send.
type rawCall struct {
	token string
	// method and params make the message, with the protocol metadata of
	// the run's revision added; body, if set, is sent instead, as is.
	method string
	params map[string]any
	body   []byte
	// tool is the tool a hand-made body calls (for the Mcp-Name header).
	tool string
	// legacy sends it as a 2025-11-25 request; session is its
	// Mcp-Session-Id.
	legacy  bool
	session string
	header  map[string]string
	// url, if set, is where it is sent instead of the MCP endpoint.
	url string
}

// rawReply is what came back.
type rawReply struct {
	status int
	header http.Header
	body   []byte
}

// maxReply bounds how much of a response is read.
const maxReply = 8 << 20

// post sends c to the MCP endpoint with hc.
func (v *run) post(ctx context.Context, hc *http.Client, c rawCall) (*rawReply, error) {
	body, header := c.body, http.Header{}
	version := v.version
	if version == "" || c.legacy && mcp.IsModernProtocol(version) {
		version = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	}
	method := c.method
	if body == nil {
		params := map[string]any{}
		for k, val := range c.params {
			params[k] = val
		}
		if mcp.IsModernProtocol(version) {
			meta, _ := params["_meta"].(map[string]any)
			m := map[string]any{
				mcp.MetaKeyProtocolVersion:    version,
				mcp.MetaKeyClientCapabilities: map[string]any{},
				mcp.MetaKeyClientInfo:         map[string]any{"name": "tenantmcp-verify", "version": "1"},
			}
			for k, val := range meta {
				m[k] = val
			}
			params["_meta"] = m
		}
		var err error
		body, err = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": c.method, "params": params})
		if err != nil {
			return nil, err
		}
		if name, ok := params["name"].(string); ok {
			c.tool = name
		}
	} else if method == "" {
		method = string(mcp.MethodToolsCall)
	}
	if mcp.IsModernProtocol(version) {
		header.Set(mcp.HeaderMethod, method)
		if c.tool != "" {
			if enc, ok := mcp.EncodeHeaderValue(c.tool); ok {
				header.Set(mcp.HeaderName, enc)
			}
		}
	}
	header.Set(mcp.HeaderProtocolVersion, version)
	if c.session != "" {
		header.Set("Mcp-Session-Id", c.session)
	}
	for k, val := range c.header {
		header.Set(k, val)
	}
	target := v.url
	if c.url != "" {
		target = c.url
	}
	return v.send(ctx, hc, http.MethodPost, target, c.token, header, body)
}

// send sends one request and reads the reply (at most maxReply bytes, an
// event stream until it ends), within the run's timeout.
func (v *run) send(ctx context.Context, hc *http.Client, method, target, token string, header http.Header, body []byte) (*rawReply, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	for k, vals := range header {
		req.Header[k] = vals
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil && len(b) == 0 {
		return nil, err
	}
	return &rawReply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// ok reports a 2xx status.
func (r *rawReply) ok() bool { return r.status >= 200 && r.status < 300 }

// result reports whether the reply carries a JSON-RPC result (rather than
// an error): the request was served.
func (r *rawReply) result() bool {
	for _, m := range r.messages() {
		var msg struct {
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(m, &msg) == nil && len(msg.Result) > 0 {
			return true
		}
	}
	return false
}

// messages returns the JSON messages of the reply: the body, or each data
// line of an event stream.
func (r *rawReply) messages() []json.RawMessage {
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		if json.Valid(r.body) {
			return []json.RawMessage{r.body}
		}
		return nil
	}
	var out []json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, maxReply)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
			if d := strings.TrimSpace(data); json.Valid([]byte(d)) {
				out = append(out, json.RawMessage(d))
			}
		}
	}
	return out
}

// describe sums a reply up for evidence: status and a short excerpt.
func (r *rawReply) describe() string {
	return fmt.Sprintf("HTTP %d %s", r.status, excerpt(r.body, 120))
}

// excerpt returns the start of b as one line of at most n bytes.
func excerpt(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}

// checkKey is the context key of the check a request belongs to.
type checkKey struct{}

// withCheck marks ctx's requests as check id's, for the scanner.
func withCheck(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, checkKey{}, id)
}

func checkFrom(ctx context.Context) string {
	id, _ := ctx.Value(checkKey{}).(string)
	return id
}

// scanner looks for A's marker data in everything B receives. Contents
// are secret everywhere; the run id (which every marker key contains)
// only in replies to requests that did not mention it themselves, since
// an error message may quote the key B asked for.
type scanner struct {
	runID string
	mu    sync.Mutex
	// contents are A's marker contents.
	contents []string
	// keysOff: B's own data now contains the run id (its overwrite
	// attempts that could not be cleaned), so it is no longer a secret.
	keysOff bool
	hits    map[string][]string // by check id
}

func newScanner(runID string) *scanner {
	return &scanner{runID: runID, hits: map[string][]string{}}
}

func (s *scanner) addContent(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contents = append(s.contents, c)
}

func (s *scanner) stopKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keysOff = true
}

// secrets returns what to look for in the reply to a request that sent
// sent.
func (s *scanner) secrets(sent []byte) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, c := range s.contents {
		out[c] = "A's marker content"
	}
	if !s.keysOff && !bytes.Contains(sent, []byte(s.runID)) {
		out[s.runID] = "A's marker key"
	}
	return out
}

func (s *scanner) hit(check, evidence string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits[check] = append(s.hits[check], evidence)
}

// hitsFor returns the hits of check id and forgets them.
func (s *scanner) hitsFor(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hits[id]
	delete(s.hits, id)
	return h
}

// scanTransport passes every response body through the scanner.
type scanTransport struct {
	next http.RoundTripper
	s    *scanner
}

func (t *scanTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := []byte(req.URL.String())
	if req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			b, _ := io.ReadAll(io.LimitReader(rc, maxReply))
			rc.Close()
			sent = append(sent, b...)
		}
	}
	for _, vals := range req.Header {
		for _, val := range vals {
			sent = append(sent, val...)
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	what := req.Method + " " + req.URL.Path
	if m := req.Header.Get(mcp.HeaderName); m != "" {
		what += " " + m
	} else if m := toolOf(sent); m != "" {
		what += " " + m
	}
	resp.Body = &scanBody{ReadCloser: resp.Body, secrets: t.s.secrets(sent), check: checkFrom(req.Context()), what: what, s: t.s, seen: map[string]bool{}}
	return resp, nil
}

// toolOf returns the tool a JSON-RPC body calls, if any.
func toolOf(body []byte) string {
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return ""
	}
	var m struct {
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body[i:], &m) != nil {
		return ""
	}
	return m.Params.Name
}

// scanBody scans a response body as it is read, across reads.
type scanBody struct {
	io.ReadCloser
	secrets map[string]string
	check   string
	what    string
	s       *scanner
	tail    []byte
	seen    map[string]bool
}

// scanWindow is how much of the previous read is kept so that a secret
// split across two reads is found (longer than any secret).
const scanWindow = 256

func (b *scanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && len(b.secrets) > 0 {
		win := append(append([]byte(nil), b.tail...), p[:n]...)
		for secret, kind := range b.secrets {
			if b.seen[secret] {
				continue
			}
			if i := bytes.Index(win, []byte(secret)); i >= 0 {
				b.seen[secret] = true
				lo, hi := max(0, i-60), min(len(win), i+len(secret)+60)
				b.s.hit(b.check, fmt.Sprintf("%s received %s: %s", b.what, kind, excerpt(win[lo:hi], 200)))
			}
		}
		if len(win) > scanWindow {
			win = win[len(win)-scanWindow:]
		}
		b.tail = win
	}
	return n, err
}
