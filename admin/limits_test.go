package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tenantmcp/tenantmcp/server"
)

// TestAdminConcurrencyCap: admin requests in flight are capped on their
// own (server.max_concurrent_admin_requests). Admins over their cap get
// 503 with Retry-After on the API and over MCP while tenants are still
// served, and tenants filling the replica's cap do not lock admins out.
func TestAdminConcurrencyCap(t *testing.T) {
	adminEntered, tenantEntered := make(chan struct{}, 8), make(chan struct{}, 8)
	release := make(chan struct{})
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	f := setup(t, setupOptions{server: func(o *server.Options) {
		o.MaxConcurrentAdminRequests = 2
		o.MaxConcurrentRequests = 2
		api := o.Admin.API
		o.Admin.API = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/admin/v1/hold" { // an admin call that takes its time
				adminEntered <- struct{}{}
				<-release
				w.WriteHeader(http.StatusNoContent)
				return
			}
			api.ServeHTTP(w, r)
		})
		o.Tools = append(o.Tools, server.NewTool("hold", "Blocks until the test releases it.", func(ctx context.Context, _ struct{}) (string, error) {
			tenantEntered <- struct{}{}
			select {
			case <-release:
				return "released", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}))
	}})
	t.Cleanup(letGo) // runs before the server's own cleanup (registered by setup): a failed test does not hang
	admin := f.adminToken(t, "ops@example.com")
	tenantTok := f.h.Tenant(0).Token
	done := make(chan string, 8)
	background := func(method, path, token, body string, entered chan struct{}) {
		go func() {
			resp, b, err := f.doErr(method, path, token, body, "Accept", "application/json, text/event-stream")
			if err != nil {
				done <- err.Error()
				return
			}
			done <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
		<-entered
	}
	holdCall := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hold","arguments":{}}}`

	// Tenants fill the replica's cap: a third tenant request is refused,
	// an admin's is not.
	background(http.MethodPost, "/mcp", tenantTok, holdCall, tenantEntered)
	background(http.MethodPost, "/mcp", tenantTok, holdCall, tenantEntered)
	if resp, r := f.rpc(t, tenantTok, "tools/list", map[string]any{}); resp.StatusCode != http.StatusServiceUnavailable || r.Error == nil {
		t.Fatalf("tenant with the replica full: %d %+v", resp.StatusCode, r.Error)
	}
	f.apiJSON(t, http.MethodGet, "/admin/v1/tenants", admin, "", http.StatusOK, nil)
	if resp, r := f.rpc(t, admin, "tools/list", map[string]any{}); resp.StatusCode != http.StatusOK || r.Error != nil {
		t.Fatalf("admin tools/list with the tenants' cap full: %d %+v", resp.StatusCode, r.Error)
	}

	// Admins fill their own cap: one more admin request is refused, on
	// the API and over MCP, saying so.
	background(http.MethodPost, "/admin/v1/hold", admin, "", adminEntered)
	background(http.MethodPost, "/admin/v1/hold", admin, "", adminEntered)
	resp, e := f.apiRefusal(t, http.MethodGet, "/admin/v1/tenants", admin, "", http.StatusServiceUnavailable, "server_busy")
	if resp.Header.Get("Retry-After") != "1" || !strings.Contains(e.Error.Message, "admin requests") {
		t.Errorf("admin API over the admins' cap: Retry-After %q, %q", resp.Header.Get("Retry-After"), e.Error.Message)
	}
	resp, r := f.rpc(t, admin, "tools/list", map[string]any{})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || r.Error == nil || !strings.Contains(r.Error.Message, "admin requests") {
		t.Errorf("admin MCP over the admins' cap: %d, Retry-After %q, %+v", resp.StatusCode, resp.Header.Get("Retry-After"), r.Error)
	}
	rec := httptest.NewRecorder()
	f.h.Server.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m := rec.Body.String()
	for _, want := range []string{"tenantmcp_admin_requests_in_flight 2", "tenantmcp_requests_in_flight 2"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	letGo()
	for range 4 {
		if got := <-done; !strings.HasPrefix(got, "200 ") && !strings.HasPrefix(got, "204 ") {
			t.Errorf("held request: %s", got)
		}
	}
	f.apiJSON(t, http.MethodGet, "/admin/v1/tenants", admin, "", http.StatusOK, nil)
}
