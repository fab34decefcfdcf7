package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// chattyTool sends progress and log notifications naming its caller's
// tenant while it runs, as any tool may through the protocol library.
func chattyTool() server.Tool {
	return server.NewTool("chatty", "Sends notifications naming the caller.", func(ctx context.Context, _ empty) (string, error) {
		tc, err := tenant.From(ctx)
		if err != nil {
			return "", err
		}
		ms := mcpserver.ServerFromContext(ctx)
		for i := range 5 {
			ms.SendNotificationToClient(ctx, "notifications/progress", map[string]any{
				"progressToken": "p", "progress": i, "message": "progress for " + tc.ExternalID,
			})
			ms.SendLogMessageToClient(ctx, mcp.NewLoggingMessageNotification(mcp.LoggingLevelEmergency, "chatty", "log for "+tc.ExternalID))
			time.Sleep(time.Millisecond)
		}
		return "done for " + tc.ExternalID, nil
	})
}

// sseEvents posts body and returns the status and every JSON message of
// the response (one for a JSON response, each data line of an SSE stream).
func sseEvents(t *testing.T, url, token, body string, header map[string]string) (int, []string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, []string{string(b)}
	}
	var msgs []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			msgs = append(msgs, data)
		}
	}
	return resp.StatusCode, msgs
}

// TestNotificationsStayWithTheirRequest: several tenants call a tool that
// sends notifications, concurrently, on both protocol revisions, while
// other tenants try to open GET streams and send POSTs with forged session
// ids. Every notification reaches its caller's own response and nobody
// else's; stateless mode has no GET stream at all.
func TestNotificationsStayWithTheirRequest(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Tools = append(o.Tools, chattyTool())
	}})
	callers := []string{"acme", "globex", "initech", "umbrella"}
	for _, org := range append(callers, "eavesdropper") {
		f.addTenant(t, org, nil)
	}

	// GET and DELETE are refused in stateless mode, before anything else.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(method, f.url, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+f.genericToken("eavesdropper", "eve"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("%s /mcp in stateless mode: %d Allow=%q, want 405 Allow=POST", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		overheard []string
	)
	// Eavesdroppers: GET streams held open (if the server let them), on
	// both revisions, with and without a session id.
	for i, sid := range []string{"", "", "forged", "stateless-x-1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+f.genericToken("eavesdropper", fmt.Sprintf("eve%d", i)))
			req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20251125)
			if sid != "" {
				req.Header.Set("Mcp-Session-Id", sid)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // cancelled at the end
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.Contains(sc.Text(), " for ") {
					mu.Lock()
					overheard = append(overheard, "GET stream: "+sc.Text())
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the streams open (if they can)

	legacyBody := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"chatty","arguments":{},"_meta":{"progressToken":"p"}}}`
	modernBody := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"chatty","arguments":{},"_meta":{"progressToken":"p","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/logLevel":"debug","io.modelcontextprotocol/clientCapabilities":{}}}}`
	type era struct {
		body   string
		header map[string]string
	}
	eras := map[string]era{
		"legacy": {legacyBody, map[string]string{"Mcp-Protocol-Version": mcp.ProtocolVersion20251125}},
		"modern": {modernBody, map[string]string{"Mcp-Protocol-Version": mcp.ProtocolVersion20260728, "Mcp-Method": "tools/call", "Mcp-Name": "chatty"}},
	}
	var (
		cmu       sync.Mutex
		delivered = map[string]int{}
	)
	var callersWG sync.WaitGroup
	for round := range 3 {
		for _, org := range callers {
			for name, e := range eras {
				for _, sid := range []string{"", "", "forged-" + org} {
					callersWG.Add(1)
					go func() {
						defer callersWG.Done()
						h := map[string]string{}
						for k, v := range e.header {
							h[k] = v
						}
						if sid != "" {
							h["Mcp-Session-Id"] = sid
						}
						status, msgs := sseEvents(t, f.url, f.genericToken(org, fmt.Sprintf("u%d", round)), e.body, h)
						if status != http.StatusOK {
							t.Errorf("%s %s call: status %d: %v", org, name, status, msgs)
							return
						}
						sawResult := false
						for _, m := range msgs {
							for _, other := range append(callers, "eavesdropper") {
								if other != org && strings.Contains(m, " for "+other) {
									mu.Lock()
									overheard = append(overheard, fmt.Sprintf("%s (%s) received %s", org, name, m))
									mu.Unlock()
								}
							}
							if strings.Contains(m, `"result"`) && strings.Contains(m, "done for "+org) {
								sawResult = true
							}
							if strings.Contains(m, "notifications/") {
								cmu.Lock()
								delivered[name]++
								cmu.Unlock()
							}
						}
						if !sawResult {
							t.Errorf("%s (%s) got no result of its own: %v", org, name, msgs)
						}
					}()
				}
			}
		}
	}
	// A client that accepts only JSON gets its result as JSON; the
	// notifications are dropped, not sent anywhere else.
	callersWG.Add(1)
	go func() {
		defer callersWG.Done()
		req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(legacyBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+f.genericToken("acme", "json-only"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !strings.Contains(string(b), "done for acme") || strings.Contains(string(b), "notifications/") {
			t.Errorf("JSON-only client: %s %s", ct, b)
		}
	}()
	callersWG.Wait()
	cancel()
	wg.Wait()
	for _, o := range overheard {
		t.Error("leak: " + o)
	}
	// The notifications are not merely dropped: each caller gets its own.
	for name := range eras {
		if delivered[name] == 0 {
			t.Errorf("%s: no notification reached any caller's own stream", name)
		}
	}
}

// TestSessionIDIgnoredWhereThereAreNoSessions: a 2026-07-28 request is
// served whatever Mcp-Session-Id it carries, also with stateful sessions
// enabled (the revision says to ignore it).
func TestSessionIDIgnoredWhereThereAreNoSessions(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) { o.Stateful = true }})
	f.addTenant(t, "acme", nil)
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	status, msgs := sseEvents(t, f.url, f.genericToken("acme", "alice"), body, map[string]string{
		"Mcp-Protocol-Version": mcp.ProtocolVersion20260728, "Mcp-Method": "tools/list", "Mcp-Session-Id": "someone-elses-session",
	})
	if status != http.StatusOK || len(msgs) != 1 || !strings.Contains(msgs[0], `"tools"`) {
		t.Fatalf("modern request with a foreign session id: %d %v", status, msgs)
	}
}
