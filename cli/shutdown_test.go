package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/sqliteaudit"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

// This file stops the real binary with SIGTERM, as an orchestrator does,
// and checks what docs/operations.md "Shutdown" promises: the listener
// closes at once, requests in flight are answered, every answered request
// has exactly one audit event (and no unanswered one has any), the final
// checkpoints cover the last events, and the exit status says whether
// anything had to be cut.

// buildShutdownServer builds testdata/shutdownserver (the tenantmcp
// command line plus a "slow" tool) into a temporary directory.
func buildShutdownServer(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the go command is needed to build the server binary: %v", err)
		}
		t.Skipf("the go command is not on PATH (%v): install Go to run this test (CI=true makes this a failure)", err)
	}
	bin := filepath.Join(t.TempDir(), "shutdown-server")
	cmd := exec.Command(goBin, "build", "-o", bin, "./testdata/shutdownserver")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/shutdownserver: %v\n%s", err, out)
	}
	return bin
}

// process is the server binary running.
type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed when it has exited
	err    error         // cmd.Wait's, once done
}

// startProcess runs bin with args, and env added to the environment, and
// waits for "serving MCP"; it is killed when the test ends if it is still
// running.
func startProcess(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	p.cmd.Env = append(append(os.Environ(), "TENANTMCP_LOG_LEVEL=info"), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(p.stderr.String(), "serving MCP") {
		select {
		case <-p.done:
			t.Fatalf("%s exited before serving (%v):\n%s", filepath.Base(bin), p.err, p.stderr)
		case <-deadline:
			t.Fatalf("%s not serving after 60s:\n%s", filepath.Base(bin), p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

// waitStderr waits until the process has written want to stderr.
func (p *process) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("exited (%v) before writing %q:\n%s", p.err, want, p.stderr)
		case <-deadline:
			t.Fatalf("no %q on stderr after 30s:\n%s", want, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exitCode waits for the process to exit, at most within, and returns its
// exit status.
func (p *process) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("still running %s after SIGTERM:\n%s", within, p.stderr)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	t.Fatalf("did not exit normally: %v\n%s", p.err, p.stderr)
	return -1
}

// shutdownDeployment writes a serve configuration (SQLite registry, one
// database per tenant, audit on with checkpoints every second) for the
// fake IdP, registers tenants with the binary, and returns the config
// path, the data directory and the listen address.
func shutdownDeployment(t *testing.T, bin string, idp *idptest.IdP, shutdownTimeout string, orgs ...string) (path, data, addr string) {
	t.Helper()
	addr, data = freeAddr(t), t.TempDir()
	path = writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
shutdown_timeout = %q

[auth]
provider = "generic"
issuer = %q
jwks_url = %q

[auth.multi_tenant]
enabled = true
tenant_claim = "org_id"

[audit]
enabled = true
checkpoint_interval = "1s"
`, addr, data, shutdownTimeout, idp.Issuer(), idp.JWKSURL()))
	for _, org := range orgs {
		if out, err := exec.Command(bin, "tenant", "add", "--config", path, "--external-id", org).CombinedOutput(); err != nil {
			t.Fatalf("tenant add %s: %v\n%s", org, err, out)
		}
	}
	return path, data, addr
}

// outcome is what the client saw of one request.
type outcome int

const (
	answered outcome = iota // a complete HTTP response
	refused                 // the connection was refused: nothing listens
	failed                  // anything else: the request may or may not have been read
)

// sent is one request the load sent and what came of it.
type sent struct {
	trace, org, tool string
	outcome          outcome
	status           int
	body             string
	err              error
}

// newTrace returns a fresh W3C trace id, which the request carries in
// traceparent and its audit event records.
func newTrace() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// postMCP sends one JSON-RPC request as org's user with a fresh trace id.
func postMCP(c *http.Client, url, token, org, tool, body string) sent {
	s := sent{trace: newTrace(), org: org, tool: tool}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Traceparent", "00-"+s.trace+"-00f067aa0ba902b7-01")
	resp, err := c.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		s.status, s.body = resp.StatusCode, string(b)
	}
	switch {
	case err == nil:
		s.outcome = answered
	case errors.Is(err, syscall.ECONNREFUSED):
		s.outcome, s.err = refused, err
	default:
		s.outcome, s.err = failed, err
	}
	return s
}

func toolCallBody(tool, args string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`
}

// auditByTrace opens the deployment's audit store after the server has
// exited, verifies every chain with pub, checks that each chain's latest
// checkpoint covers its last event, and returns the events of MCP
// requests (not the admin and lifecycle events of "tenant add") by trace
// id.
func auditByTrace(t *testing.T, data string, pub ed25519.PublicKey) map[string][]*audit.Event {
	t.Helper()
	s, err := sqliteaudit.Open(filepath.Join(data, "audit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	chains, err := s.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byTrace := map[string][]*audit.Event{}
	for _, c := range chains {
		rep, err := audit.VerifyStore(ctx, s, c, pub)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("chain %q does not verify: %v", c, rep.Err())
		}
		if rep.Signed != rep.Events {
			t.Errorf("chain %q: the latest checkpoint covers %d of its %d events; the final checkpoint must cover the last", c, rep.Signed, rep.Events)
		}
		err = s.Scan(ctx, c, 1, func(r *audit.Record) error {
			e, err := r.Event()
			if err != nil {
				return err
			}
			if e.Kind != audit.KindAdmin && e.Kind != audit.KindLifecycle { // tenant add's, before serve
				byTrace[e.TraceID] = append(byTrace[e.TraceID], e)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return byTrace
}

// publicAuditKey reads the key the server publishes.
func publicAuditKey(t *testing.T, base string) ed25519.PublicKey {
	t.Helper()
	code, body := get(t, base+"/.well-known/tenantmcp-audit-key")
	if code != 200 {
		t.Fatalf("audit key: %d %q", code, body)
	}
	pub, err := audit.ParsePublicKey(strings.TrimSpace(body))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestGracefulShutdownUnderLoad: the binary serving three tenants under
// steady concurrent load (documents tools, tools/list and a 300ms tool)
// gets SIGTERM while long calls are in flight. The listener is closed at
// once (new connections are refused while the long calls still run),
// every long call and every other request the server read is answered in
// full, the process exits 0 (within server.shutdown_timeout and a
// margin), and the audit
// trail holds exactly one event for each answered request — with its
// tenant, tool and outcome — none for a request the client saw fail, every
// chain verifies, and each chain's final checkpoint covers its last event.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	bin := buildShutdownServer(t)
	idp := idptest.New(t)
	orgs := []string{"org_acme", "org_globex", "org_initech"}
	const timeout = 10 * time.Second
	path, data, addr := shutdownDeployment(t, bin, idp, timeout.String(), orgs...)
	p := startProcess(t, nil, bin, "serve", "--config", path)
	base := "http://" + addr
	url := base + "/mcp"
	pub := publicAuditKey(t, base)
	tokens := map[string]string{}
	for _, org := range orgs {
		tokens[org] = idp.Sign(idp.GenericClaims(url, "user@"+org, []string{"execute:tools"}, map[string]any{"org_id": org}))
	}

	var (
		mu      sync.Mutex
		results []sent
		counts  = map[outcome]int{}
	)
	keep := func(s sent) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, s)
		counts[s.outcome]++
	}
	answeredSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return counts[answered]
	}

	// Steady load: each worker is one client with its own keep-alive
	// connection, cycling through a mix of requests, until the server
	// refuses its connection.
	const workers = 12
	var load sync.WaitGroup
	for w := range workers {
		org := orgs[w%len(orgs)]
		load.Go(func() {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d-%d", w, i/5*5)
				var s sent
				switch i % 5 {
				case 0:
					s = postMCP(c, url, tokens[org], org, "put_document", toolCallBody("put_document", `{"key":"`+key+`","content":"`+org+`"}`))
				case 1:
					s = postMCP(c, url, tokens[org], org, "get_document", toolCallBody("get_document", `{"key":"`+key+`"}`))
				case 2:
					s = postMCP(c, url, tokens[org], org, "list_documents", toolCallBody("list_documents", `{}`))
				case 3:
					s = postMCP(c, url, tokens[org], org, "slow", toolCallBody("slow", `{"millis":300}`))
				default:
					s = postMCP(c, url, tokens[org], org, "", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
				}
				keep(s)
				if s.outcome == refused {
					return
				}
			}
		})
	}
	for answeredSoFar() < 10*workers {
		select {
		case <-p.done:
			t.Fatalf("exited under load: %v\n%s", p.err, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Long calls, one per tenant, each known to be in its tool when the
	// signal comes.
	long := make(chan sent, len(orgs))
	for i, org := range orgs {
		label := fmt.Sprintf("long-%d", i)
		go func() {
			long <- postMCP(&http.Client{}, url, tokens[org], org, "slow", toolCallBody("slow", `{"millis":3000,"label":"`+label+`"}`))
		}()
		p.waitStderr(t, "slow tool entered: "+label)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The listener closes at once: new connections are refused while the
	// long calls are still being served.
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			select {
			case <-p.done:
				t.Fatalf("exited before the long calls were answered: %v\n%s", p.err, p.stderr)
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		if errors.Is(err, syscall.ECONNRESET) {
			continue // accepted by the kernel as the listener closed, then reset
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial during the drain: %v; want connection refused", err)
		}
		break
	}
	if n := len(long); n != 0 {
		t.Fatalf("%d long calls were answered before the listener closed; it must close at once", n)
	}

	if code := p.exitCode(t, timeout+10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; want 0:\n%s", code, p.stderr)
	}
	load.Wait()
	for range orgs {
		s := <-long
		if s.outcome != answered || s.status != 200 || !strings.Contains(s.body, `"done"`) || strings.Contains(s.body, `"isError":true`) {
			t.Errorf("a long call in flight at SIGTERM: %v %d %.300s; want its full answer", s.err, s.status, s.body)
		}
		results = append(results, s)
		counts[answered]++
	}
	for _, want := range []string{"shutting down: draining requests in flight"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.stderr)
		}
	}

	byTrace := auditByTrace(t, data, pub)
	events := 0
	for _, es := range byTrace {
		events += len(es)
	}
	for _, s := range results {
		es := byTrace[s.trace]
		switch s.outcome {
		case answered:
			if s.status != 200 || !strings.Contains(s.body, `"result"`) {
				t.Errorf("%s %s as %s: answered %d %.300s; want a result", s.tool, s.trace, s.org, s.status, s.body)
			}
			if s.tool == "get_document" && !strings.Contains(s.body, s.org) {
				t.Errorf("%s as %s: %.300s does not hold the tenant's own document", s.tool, s.org, s.body)
			}
			if len(es) != 1 {
				t.Errorf("answered %s %s as %s has %d audit events; want exactly 1", s.tool, s.trace, s.org, len(es))
				continue
			}
			e := es[0]
			if e.ExternalID != s.org || e.Tool != s.tool || e.Outcome != audit.OutcomeOK {
				t.Errorf("event of %s as %s: tenant %q tool %q outcome %q (%s); want %s, %s, ok", s.tool, s.org, e.ExternalID, e.Tool, e.Outcome, e.ErrorClass, s.org, s.tool)
			}
			for _, other := range orgs {
				if other != s.org && strings.Contains(s.body, `"`+other+`"`) {
					t.Errorf("%s as %s answered with %s's data: %.300s", s.tool, s.org, other, s.body)
				}
			}
		default:
			// Refused at the closed listener, or sent on a keep-alive
			// connection the server closed as idle: never read, so never
			// audited.
			if len(es) != 0 {
				t.Errorf("%s %s as %s failed on the client (%v) but has %d audit events: half-done", s.tool, s.trace, s.org, s.err, len(es))
			}
		}
	}
	known := map[string]bool{}
	for _, s := range results {
		known[s.trace] = true
	}
	for trace, es := range byTrace {
		if !known[trace] {
			for _, e := range es {
				t.Errorf("an audit event of no request sent: %+v", e)
			}
		}
	}
	if events != counts[answered] {
		t.Errorf("the audit trail holds %d events for %d answered requests; want one each and no other", events, counts[answered])
	}
	if counts[refused] != workers {
		t.Errorf("%d of %d workers saw their connection refused", counts[refused], workers)
	}
	t.Logf("answered %d, refused %d, failed %d (sent on a connection closed as idle); %d audit events", counts[answered], counts[refused], counts[failed], events)
}

// TestShutdownCutsRequestPastTimeout: a call still running when
// server.shutdown_timeout ends is cut: the client's connection is closed
// without an answer, the tool's context is cancelled, the call is audited
// as failed (error class "cut_at_shutdown"), the trail still verifies up to
// a final checkpoint, and the process exits 1 saying that requests were
// cut off.
func TestShutdownCutsRequestPastTimeout(t *testing.T) {
	bin := buildShutdownServer(t)
	idp := idptest.New(t)
	path, data, addr := shutdownDeployment(t, bin, idp, "1s", "org_acme")
	p := startProcess(t, nil, bin, "serve", "--config", path)
	base := "http://" + addr
	url := base + "/mcp"
	pub := publicAuditKey(t, base)
	tok := idp.Sign(idp.GenericClaims(url, "user@org_acme", []string{"execute:tools"}, map[string]any{"org_id": "org_acme"}))

	quick := postMCP(&http.Client{}, url, tok, "org_acme", "slow", toolCallBody("slow", `{"millis":1}`))
	if quick.outcome != answered || quick.status != 200 {
		t.Fatalf("a quick call: %v %d %s", quick.err, quick.status, quick.body)
	}
	cut := make(chan sent, 1)
	go func() {
		cut <- postMCP(&http.Client{}, url, tok, "org_acme", "slow", toolCallBody("slow", `{"millis":60000,"label":"past-timeout"}`))
	}()
	p.waitStderr(t, "slow tool entered: past-timeout")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The drain (1s) ends with the call still running; the audit queue
	// is then drained, bounded by shutdown_timeout again.
	code := p.exitCode(t, 2*time.Second+10*time.Second)
	if want := "shutdown: requests still in flight after 1s were cut off"; code != 1 || !strings.Contains(p.stderr.String(), want) {
		t.Errorf("exit status %d; want 1 and %q on stderr:\n%s", code, want, p.stderr)
	}
	s := <-cut
	if s.outcome != failed || s.status != 0 {
		t.Errorf("the call past the timeout: %v %d %.300s; want its connection closed without an answer", s.err, s.status, s.body)
	}
	byTrace := auditByTrace(t, data, pub)
	if es := byTrace[quick.trace]; len(es) != 1 || es[0].Outcome != audit.OutcomeOK {
		t.Errorf("the quick call's events: %+v; want one, ok", es)
	}
	es := byTrace[s.trace]
	if len(es) != 1 || es[0].Tool != "slow" || es[0].Outcome != audit.OutcomeError || es[0].ErrorClass != "cut_at_shutdown" {
		t.Fatalf("the cut call's events: %+v; want one, outcome error, class cut_at_shutdown", es)
	}
	if len(byTrace) != 2 {
		t.Errorf("%d requests audited; want the 2 sent", len(byTrace))
	}
}

// TestShutdownEndsSessionStreams: with stateful sessions, a client
// holding its session's GET stream does not hold the shutdown up: the
// stream ends cleanly when the drain starts, a tool call in flight is
// still answered, the process exits 0, and both are audited.
func TestShutdownEndsSessionStreams(t *testing.T) {
	bin := buildShutdownServer(t)
	idp := idptest.New(t)
	// Far longer than the test: only a stream that held the shutdown up
	// would make it wait that long.
	const timeout = 10 * time.Minute
	path, data, addr := shutdownDeployment(t, bin, idp, timeout.String(), "org_acme")
	p := startProcess(t, []string{"TENANTMCP_SERVER_STATEFUL_SESSIONS=true"}, bin, "serve", "--config", path)
	base := "http://" + addr
	url := base + "/mcp"
	pub := publicAuditKey(t, base)
	tok := idp.Sign(idp.GenericClaims(url, "user@org_acme", []string{"execute:tools"}, map[string]any{"org_id": "org_acme"}))
	trace := newTrace()
	do := func(method, body, sid string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, "")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, sid)
	}
	resp = do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid)
	resp.Body.Close()
	stream := do(http.MethodGet, "", sid)
	if stream.StatusCode != 200 || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET stream: %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, stream.Body)
		stream.Body.Close()
		ended <- err
	}()
	call := make(chan *http.Response, 1)
	go func() {
		call <- do(http.MethodPost, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"millis":1000,"label":"in-session"}}}`, sid)
	}()
	p.waitStderr(t, "slow tool entered: in-session")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Errorf("the session's stream at shutdown: %v; want it ended cleanly", err)
	}
	res := <-call
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"done"`) {
		t.Errorf("the call in flight: %d %.300s; want its answer", res.StatusCode, b)
	}
	if code := p.exitCode(t, time.Minute); code != 0 {
		t.Fatalf("exit %d with a session stream open; want 0:\n%s", code, p.stderr)
	}
	methods := map[string]int{}
	for _, e := range auditByTrace(t, data, pub)[trace] {
		methods[e.Method]++
		if e.Outcome != audit.OutcomeOK {
			t.Errorf("%s audited %s (%s); want ok", e.Method, e.Outcome, e.ErrorClass)
		}
	}
	if methods["GET"] != 1 || methods["tools/call"] != 1 {
		t.Errorf("audited %v; want the stream (GET) and the call once each", methods)
	}
}
