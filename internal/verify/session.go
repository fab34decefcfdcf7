package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// checkSessionReplay: B presents A's session id with B's token, on every
// method a session has; the server must refuse them all and A's session
// must survive.
func (v *run) checkSessionReplay(ctx context.Context) {
	const id, attack = "session-replay", "B replays A's session id with B's token (POST, GET stream, DELETE)"
	if !v.connected {
		return
	}
	aL, err := dial(ctx, v.url, v.tokA, v.httpA, mcp.LATEST_LEGACY_PROTOCOL_VERSION, v.opts.Timeout)
	if err != nil {
		v.add(id, attack, StatusError, "a %s initialize as A failed: %v", mcp.LATEST_LEGACY_PROTOCOL_VERSION, err)
		return
	}
	v.aSession = aL
	sid := aL.session()
	if sid == "" {
		v.add(id, attack, StatusNA, "not applicable: the server is stateless (a %s initialize as A got no Mcp-Session-Id): there is no session to replay",
			mcp.LATEST_LEGACY_PROTOCOL_VERSION)
		return
	}
	v.rep.Stateful = true
	ctx = withCheck(ctx, id)
	calls := []rawCall{{token: v.tokB, method: string(mcp.MethodToolsList), legacy: true, session: sid, params: map[string]any{}}}
	if len(v.markers) > 0 {
		m := v.markers[0]
		calls = append(calls, rawCall{token: v.tokB, method: string(mcp.MethodToolsCall), legacy: true, session: sid,
			params: map[string]any{"name": m.set.read.Name, "arguments": m.set.read.fill(map[string]any{m.set.readKey: m.key})}})
	}
	var leaks, seen []string
	for _, c := range calls {
		r, err := v.post(ctx, v.httpB, c)
		if err != nil {
			seen = append(seen, c.method+": "+err.Error())
			continue
		}
		seen = append(seen, fmt.Sprintf("%s: HTTP %d", c.method, r.status))
		if r.ok() && r.result() {
			leaks = append(leaks, fmt.Sprintf("B's %s with A's session id was served: %s", c.method, r.describe()))
		}
	}
	legacy := http.Header{mcp.HeaderProtocolVersion: {mcp.LATEST_LEGACY_PROTOCOL_VERSION}, "Mcp-Session-Id": {sid}}
	st, err := v.stream(ctx, "GET", v.url, nil, legacy)
	if err == nil {
		seen = append(seen, fmt.Sprintf("GET: HTTP %d", st.status))
		if st.status == http.StatusOK {
			leaks = append(leaks, "B opened a GET stream on A's session")
		}
		st.stop()
	}
	if r, err := v.send(ctx, v.httpB, http.MethodDelete, v.url, v.tokB, legacy, nil); err == nil {
		seen = append(seen, fmt.Sprintf("DELETE: HTTP %d", r.status))
	}
	if _, err := aL.tools(ctx); err != nil {
		leaks = append(leaks, fmt.Sprintf("after B's DELETE with A's session id, A's session no longer works: %v", err))
	}
	v.verdict(id, attack, leaks, nil, fmt.Sprintf("B with A's session id was refused (%s); A's session still works", strings.Join(seen, ", ")))
}

// openStream is a response being read in the background: an SSE stream B
// holds open.
type openStream struct {
	status int
	ctype  string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []string
}

// stream sends a request with B's token and, if the server answers 200,
// reads the body in the background until stop. ctx marks its check.
func (v *run) stream(ctx context.Context, method, target string, body []byte, header http.Header) (*openStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, vals := range header {
		req.Header[k] = vals
	}
	req.Header.Set("Accept", "text/event-stream")
	if body != nil {
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+v.tokB)
	// Headers must come within the timeout; the stream itself may last.
	timer := time.AfterFunc(v.opts.Timeout, cancel)
	resp, err := v.httpB.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, err
	}
	st := &openStream{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, maxReply)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				st.mu.Lock()
				st.events = append(st.events, strings.TrimSpace(data))
				st.mu.Unlock()
			}
		}
	}()
	return st, nil
}

// stop ends the stream and waits for its reader.
func (s *openStream) stop() {
	s.cancel()
	<-s.done
}

func (s *openStream) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

// streamGrace is how long B's streams stay open after A's last call, for
// notifications on their way.
const streamGrace = 500 * time.Millisecond

// checkStreams: B holds GET streams (stateful servers) and a
// subscriptions/listen stream (2026-07-28) while A's tools run with
// progress and log notifications requested; nothing of A's may reach them.
func (v *run) checkStreams(ctx context.Context) {
	const (
		getID, getAttack       = "get-stream", "B holds GET streams (its own session, no session) while A's tools run and notify"
		listenID, listenAttack = "listen-stream", "B holds a subscriptions/listen stream while A's tools run and notify"
	)
	if !v.connected {
		return
	}
	legacy := http.Header{mcp.HeaderProtocolVersion: {mcp.LATEST_LEGACY_PROTOCOL_VERSION}}
	var gets []heldStream
	var getRefusals []string
	gctx := withCheck(ctx, getID)
	if st, err := v.stream(gctx, "GET", v.url, nil, legacy); err == nil {
		gets = append(gets, heldStream{"no session", st})
	} else {
		getRefusals = append(getRefusals, "no session: "+err.Error())
	}
	if v.rep.Stateful {
		bL, err := dial(ctx, v.url, v.tokB, v.httpB, mcp.LATEST_LEGACY_PROTOCOL_VERSION, v.opts.Timeout)
		if err == nil {
			defer bL.close()
			h := legacy.Clone()
			h.Set("Mcp-Session-Id", bL.session())
			if st, err := v.stream(gctx, "GET", v.url, nil, h); err == nil {
				gets = append(gets, heldStream{"B's own session", st})
			}
		}
	}
	var listen *openStream
	var listenErr error
	if v.modern {
		params := map[string]any{
			"notifications": map[string]any{"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true},
			"_meta": map[string]any{
				mcp.MetaKeyProtocolVersion: v.version, mcp.MetaKeyClientCapabilities: map[string]any{},
				mcp.MetaKeyClientInfo: map[string]any{"name": "tenantmcp-verify", "version": "1"},
			},
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": string(mcp.MethodSubscriptionsListen), "params": params})
		h := http.Header{mcp.HeaderProtocolVersion: {v.version}, mcp.HeaderMethod: {string(mcp.MethodSubscriptionsListen)}}
		listen, listenErr = v.stream(withCheck(ctx, listenID), "POST", v.url, body, h)
	}

	var open []string
	for _, g := range gets {
		if g.st.status == http.StatusOK {
			open = append(open, g.what)
		}
	}
	listening := listen != nil && listen.status == http.StatusOK && strings.HasPrefix(listen.ctype, "text/event-stream")
	acted := ""
	if len(open) > 0 || listening {
		acted = v.actWhileStreaming(ctx)
		time.Sleep(streamGrace)
	}
	for _, g := range gets {
		g.st.stop()
	}
	if listen != nil {
		listen.stop()
	}

	// The GET streams.
	switch {
	case len(open) == 0 && !v.rep.Stateful:
		v.add(getID, getAttack, StatusNA, "not applicable: the server is stateless and refuses GET streams (%s)", statuses(gets, getRefusals))
	case len(open) == 0:
		v.add(getID, getAttack, StatusNA, "not applicable: the server offers no GET stream, even on B's own session (%s)", statuses(gets, getRefusals))
	default:
		var leaks []string
		n := 0
		for _, g := range gets {
			for _, e := range g.st.received() {
				n++
				if strings.Contains(e, v.id) {
					leaks = append(leaks, fmt.Sprintf("B's GET stream (%s) received %s", g.what, excerpt([]byte(e), 160)))
				}
			}
		}
		v.verdict(getID, getAttack, leaks, nil, fmt.Sprintf("B held %d GET streams (%s) while A %s: they received %s, none of A's", len(open), strings.Join(open, ", "), acted, plural(n, "event")))
	}

	// The subscriptions/listen stream.
	switch {
	case !v.modern:
		v.add(listenID, listenAttack, StatusNA, "not applicable: A negotiated %s, which has no subscriptions/listen", v.version)
	case listenErr != nil:
		v.add(listenID, listenAttack, StatusNA, "not applicable: subscriptions/listen as B failed: %v", listenErr)
	case !listening:
		v.add(listenID, listenAttack, StatusNA, "not applicable: the server did not open a subscriptions/listen stream for B (HTTP %d, %s)", listen.status, listen.ctype)
	default:
		var leaks []string
		events := listen.received()
		for _, e := range events {
			if strings.Contains(e, v.id) {
				leaks = append(leaks, "B's listen stream received "+excerpt([]byte(e), 160))
			}
		}
		v.verdict(listenID, listenAttack, leaks, nil, fmt.Sprintf("B's subscriptions/listen stream stayed open while A %s: it received %s, none of A's", acted, plural(len(events), "event")))
	}
}

// actWhileStreaming has A write, read and list a marker of its own with
// progress and log notifications requested (in its session too, on a
// stateful server), and says what it did.
func (v *run) actWhileStreaming(ctx context.Context) string {
	meta := map[string]any{"progressToken": "tmverify-" + v.id, mcp.MetaKeyLogLevel: "debug"}
	if len(v.sets) == 0 {
		v.a.tools(ctx)
		return "listed its tools"
	}
	s := v.sets[0]
	writer := v.a
	if v.aSession != nil && v.rep.Stateful {
		writer = v.aSession
	}
	var did []string
	key := "tmverify-" + v.id + "-stream"
	content := "tmverify secret " + randomHex(12)
	v.scan.addContent(content)
	if s.key != "" {
		m := &marker{set: s, key: key, content: content}
		v.written = append(v.written, m)
		args := map[string]any{s.key: key}
		for _, val := range s.values {
			args[val] = content
		}
		if res, err := writer.call(ctx, s.write.Name, s.write.fill(args), meta); err == nil && res.ran() {
			did = append(did, "wrote")
			v.rep.Markers = append(v.rep.Markers, key)
		}
		if res, err := writer.call(ctx, s.read.Name, s.read.fill(map[string]any{s.readKey: key}), meta); err == nil && res.ran() {
			did = append(did, "read")
		}
	}
	if s.list != nil {
		if res, err := writer.call(ctx, s.list.Name, s.list.fill(map[string]any{}), meta); err == nil && res.ran() {
			did = append(did, "listed")
		}
	}
	if len(did) == 0 {
		return "called " + s.String()
	}
	return strings.Join(did, ", ") + " a marker with progress and log notifications requested"
}

// plural says n things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// heldStream is one of B's streams and what it stands for.
type heldStream struct {
	what string
	st   *openStream
}

// statuses describes how the server answered B's stream requests.
func statuses(gets []heldStream, refusals []string) string {
	out := refusals
	for _, g := range gets {
		out = append(out, fmt.Sprintf("%s: HTTP %d", g.what, g.st.status))
	}
	return strings.Join(out, ", ")
}
