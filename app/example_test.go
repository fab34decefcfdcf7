package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/examples/notes"
)

// Assemble a server for your own tools from a configuration, without the
// CLI. (Authentication is disabled here to keep the example short: every
// request is the local tenant; a real deployment names its IdP in [auth].)
func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "tenantmcp-example")
	defer os.RemoveAll(dir)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[server]
data_dir = %q
[auth]
enabled = false
`, dir)), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := app.Open(ctx, cfg, &app.Options{Tools: notes.Tools()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	srv, stop, err := a.Server(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	for _, name := range []string{"save_note", "get_note", "list_notes"} {
		fmt.Println(name, strings.Contains(rec.Body.String(), `"name":"`+name+`"`))
	}
	// Output:
	// save_note true
	// get_note true
	// list_notes true
}
