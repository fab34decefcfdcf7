package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/server"
)

// TestRouteMoreSpecificThanMCP: an extra route for the MCP path with a
// method still takes that method's requests (as the mux decides), and the
// rest still reach MCP.
func TestRouteMoreSpecificThanMCP(t *testing.T) {
	f := setup(t, setupOptions{server: func(o *server.Options) {
		o.Routes = map[string]http.Handler{"GET /mcp": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		})}
	}})
	resp, err := http.Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("GET %s: %d, want the route's 418", f.url, resp.StatusCode)
	}
	resp, err = http.Post(f.url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST %s without a token: %d, want MCP's 401", f.url, resp.StatusCode)
	}
}
