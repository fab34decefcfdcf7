package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// TestDatabaseBusy: with every connection of the pool (database.max_conns
// = 1) held by a request that waits for a row lock, a tool call that needs
// the database waits database.acquire_timeout for a connection, then is
// answered 503 with Retry-After instead of queueing; the pool metrics show
// the wait. Once the lock goes, both requests are served.
func TestDatabaseBusy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, owner, appRole := testenv.PostgresWithRoles(t)
	password := app.RandomPassword()
	appDSN, err := app.AppDSN(admin, appRole, password)
	if err != nil {
		t.Fatal(err)
	}
	cfgTOML := fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"row_level_security\"\n"+
		"[database]\ndsn = %q\nowner_role = %q\napp_role = %q\nmax_conns = 1\nacquire_timeout = \"200ms\"\n[audit]\nenabled = false\n",
		appDSN, owner, appRole)
	cfg, err := config.Parse([]byte("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+cfgTOML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.SetupDatabase(ctx, cfg, admin, &app.SetupOptions{AppPassword: password}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	d := deploy(t, cfgTOML, nil)
	acme := d.client(t, "acme", "alice")
	if out, isErr := call(t, acme, "put_document", map[string]any{"key": "k", "content": "v"}); isErr {
		t.Fatalf("put: %s", out)
	}

	// A put of the same key waits for the row lock, holding the only
	// connection.
	su, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	lock, err := su.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, "SELECT 1 FROM public.tenantmcp_documents WHERE key = 'k' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var blockedErr error
	wg.Go(func() {
		res, err := acme.CallErr(ctx, "put_document", map[string]any{"key": "k", "content": "w"})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %s", res.Text)
		}
		blockedErr = err
	})
	for {
		var n int
		if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'", appRole).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	tok, err := d.iss.Mint(auth.TokenRequest{Audience: d.url, TenantID: "acme", UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, d.url,
		strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_document","arguments":{"key":"k"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("tool call with the pool busy: %d, Retry-After %q, %s; want 503 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	var rpc struct {
		ID    int `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &rpc); err != nil || rpc.ID != 7 || rpc.Error.Code != -32603 || !strings.Contains(rpc.Error.Message, "database is busy") {
		t.Errorf("refusal body %s (%v): want a JSON-RPC error for id 7 saying the database is busy", body, err)
	}

	// The metrics of a server of this deployment (they read the pool).
	srv, stop, err := d.app.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{"tenantmcp_db_pool_max_conns 1", `tenantmcp_db_pool_conns{state="in_use"} 1`, "tenantmcp_db_pool_acquires_canceled_total 1", "tenantmcp_db_pool_acquire_waits_total"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(rec.Body.String(), "tenantmcp_db_pool"))
		}
	}

	lock.Rollback(ctx)
	wg.Wait()
	if blockedErr != nil {
		t.Errorf("the request that held the connection: %v", blockedErr)
	}
	if out, _ := call(t, acme, "get_document", map[string]any{"key": "k"}); !strings.Contains(out, `w`) {
		t.Errorf("get once the pool is free: %s", out)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
