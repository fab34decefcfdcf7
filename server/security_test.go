package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
)

// syncBuffer collects output written while the test reads it.
type syncBuffer = testenv.SyncBuffer

// TestMetricsNotPublic: the public listener does not serve metrics (they
// span every tenant), and the loopback Host check covers every path.
func TestMetricsNotPublic(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims})
	f.addTenant(t, "acme", nil)
	for _, path := range []string{"/metrics", "/metrics/", "/mcp/../metrics"} {
		resp, err := http.Get(f.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s on the public listener: 200, want no metrics there", path)
		}
	}
	if !strings.Contains(f.metrics(t), "tenantmcp_requests_admitted_total") {
		t.Error("MetricsHandler serves no tenantmcp metrics")
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp", "/healthz", "/readyz", "/mcp"} {
		req, _ := http.NewRequest(http.MethodGet, f.base+path, nil)
		req.Host = "attacker.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s with a rebinding Host: %d, want 403", path, resp.StatusCode)
		}
	}
}

// TestToolErrorsDoNotLeakInternals: a tool's internal error reaches the
// client only as "internal error (request id …)", logged in full with the
// tenant and request id; errors meant for the user pass through; a panic
// is an internal error too.
func TestToolErrorsDoNotLeakInternals(t *testing.T) {
	var logs syncBuffer
	secret := "dial tcp db.internal:5432: user tenantmcp_app password authentication failed (/var/lib/tenantmcp/t1.db)"
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.Tools = append(o.Tools,
			server.NewTool("broken", "Fails with a backend error.", func(ctx context.Context, _ empty) (string, error) {
				return "", errors.New(secret)
			}),
			server.NewTool("panicky", "Panics.", func(ctx context.Context, _ empty) (string, error) {
				panic(secret)
			}),
			server.NewTool("picky", "Refuses with a message for the user.", func(ctx context.Context, _ empty) (string, error) {
				return "", server.UserErrorf("the report %q does not exist", "q3")
			}),
			server.NewTool("missing", "A store error meant for the user.", func(ctx context.Context, _ empty) (string, error) {
				return "", store.ErrNotFound
			}),
		)
	}})
	rec := f.addTenant(t, "acme", nil)
	c := connect(t, f.url, f.genericToken("acme", "alice"), "")
	for _, tool := range []string{"broken", "panicky"} {
		res, err := call(t, c, tool, nil)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		msg := text(res)
		if !res.IsError || strings.Contains(msg, "db.internal") || strings.Contains(msg, "/var/lib") || !strings.HasPrefix(msg, "internal error (request id ") {
			t.Fatalf("%s: client sees %q", tool, msg)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(msg, "internal error (request id "), ")")
		found := false
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, `"tenant_id":"`+string(rec.ID)+`"`) && strings.Contains(line, "db.internal") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no log line with request_id %s, tenant_id %s and the full error:\n%s", tool, id, rec.ID, logs.String())
		}
	}
	for tool, want := range map[string]string{"picky": `the report "q3" does not exist`, "missing": "store: not found"} {
		res, err := call(t, c, tool, nil)
		if err != nil || !res.IsError || text(res) != want {
			t.Errorf("%s: %v %q, want %q", tool, err, text(res), want)
		}
	}
	// Bad arguments are the caller's to fix.
	res, _ := call(t, c, "get_document", map[string]any{"nope": 1})
	if !res.IsError || !strings.Contains(text(res), "invalid arguments") {
		t.Errorf("bad arguments: %q", text(res))
	}
}

// TestProtocolEdges: Origin, JSON-RPC ids and codes on refusals, batches,
// header values, the no-token challenge.
func TestProtocolEdges(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.AllowedOrigins = []string{"https://app.example.com"}
	}})
	f.addTenant(t, "acme", nil)
	tok := "Bearer " + f.genericToken("acme", "alice")
	post := func(t *testing.T, authorization, body string, header map[string]string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		return resp, m
	}
	list := `{"jsonrpc":"2.0","id":"req-42","method":"tools/list","params":{}}`
	errorOf := func(m map[string]any) (float64, string) {
		e, _ := m["error"].(map[string]any)
		code, _ := e["code"].(float64)
		msg, _ := e["message"].(string)
		return code, msg
	}

	t.Run("origin", func(t *testing.T) {
		for origin, want := range map[string]int{
			"https://evil.example":    403,
			"null":                    403,
			"http://localhost:6274":   403, // loopback origins only in dev (AllowLoopbackOrigins)
			"https://app.example.com": 200,
			f.base:                    200, // same origin
		} {
			resp, m := post(t, tok, list, map[string]string{"Origin": origin})
			if resp.StatusCode != want {
				t.Errorf("Origin %s: %d %v, want %d", origin, resp.StatusCode, m, want)
			}
		}
		if resp, _ := post(t, tok, list, nil); resp.StatusCode != 200 {
			t.Errorf("no Origin: %d", resp.StatusCode)
		}
	})

	t.Run("refusals echo the id with standard codes", func(t *testing.T) {
		cases := []struct {
			name, auth, body string
			header           map[string]string
			status           int
			code             float64
			id               any
			message          string
		}{
			{"no token", "", list, nil, 401, -32600, "req-42", "no bearer token"},
			{"bad token", "Bearer x.y.z", `{"jsonrpc":"2.0","id":17,"method":"tools/list"}`, nil, 401, -32600, 17.0, "token is malformed"},
			{"unknown tenant", "Bearer " + f.genericToken("nobody", "u"), list, nil, 403, -32600, "req-42", "not registered"},
			{"batch", tok, `[` + list + `]`, nil, 400, -32600, nil, "batches are not supported"},
			{"non-ASCII Mcp-Name", tok, list, map[string]string{"Mcp-Name": "caf\xc3\xa9"}, 400, -32020, "req-42", "Mcp-Name"},
			{"object id is not echoed", "", `{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}`, nil, 401, -32600, nil, "no bearer token"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, m := post(t, tc.auth, tc.body, tc.header)
				code, msg := errorOf(m)
				if resp.StatusCode != tc.status || code != tc.code || m["id"] != tc.id || !strings.Contains(msg, tc.message) {
					t.Fatalf("got %d %v, want %d code %v id %v message ~%q", resp.StatusCode, m, tc.status, tc.code, tc.id, tc.message)
				}
			})
		}
	})

	t.Run("no-token challenge", func(t *testing.T) {
		resp, _ := post(t, "", list, nil)
		wa := resp.Header.Get("WWW-Authenticate")
		if strings.Contains(wa, "error=") || strings.Contains(wa, "error_description") || !strings.Contains(wa, `scope="read:tools execute:tools"`) {
			t.Fatalf("challenge without a token = %q: want no error, and the supported scopes", wa)
		}
		resp, _ = post(t, "Bearer x.y.z", list, nil)
		if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="invalid_token"`) {
			t.Fatalf("challenge for a bad token = %q", wa)
		}
	})
}

// TestToolsListIsPrivate: tools/list varies by tenant, and says so.
func TestToolsListIsPrivate(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims})
	f.addTenant(t, "acme", nil)
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	status, msgs := sseEvents(t, f.url, f.genericToken("acme", "alice"), body, map[string]string{
		"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list",
	})
	var res struct {
		Result struct {
			CacheScope string `json:"cacheScope"`
		} `json:"result"`
	}
	if status != 200 || len(msgs) != 1 || json.Unmarshal([]byte(msgs[0]), &res) != nil || res.Result.CacheScope != "private" {
		t.Fatalf("tools/list: %d %v, want cacheScope private", status, msgs)
	}
}
