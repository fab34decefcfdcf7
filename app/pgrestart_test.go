package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// TestPostgresRestartedUnderLoad: the server runs on a PostgreSQL of the
// test's own (row-level security) while two tenants read their own
// documents as fast as they can; PostgreSQL is restarted with
// "pg_ctl restart -m fast" and then "-m immediate" (a crash and recovery).
// Every request is answered — its own tenant's document, or 503 with
// Retry-After while the database is away, never a hang (a client timeout
// would show one) and never the other tenant's data — the server serves
// again after each restart without being restarted itself, /readyz
// follows the database, and no goroutine is left behind.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	// Not parallel: goleak compares with the goroutines before it. First
	// registered, so its check runs after every other cleanup.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	pg := testenv.PrivatePostgres(t)
	ctx := context.Background()
	su, err := pgx.Connect(ctx, pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, "CREATE DATABASE tenantmcp"); err != nil {
		t.Fatal(err)
	}
	su.Close(ctx)
	admin := testenv.WithDatabase(t, pg.AdminDSN(), "tenantmcp")
	// connect_timeout bounds a connection attempt to a server that is
	// not answering yet; acquire_timeout bounds the wait for the pool.
	_, cfgTOML := rlsSetup(t, admin, "tmcp_owner", "tmcp_app", withConnectTimeout, "max_conns = 4\n")
	d := deploy(t, cfgTOML, &app.Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))})
	tenants := []string{"acme", "globex"}
	tokens := map[string]string{}
	for _, id := range tenants {
		c := d.client(t, id, "u")
		if out, isErr := call(t, c, "put_document", map[string]any{"key": "k", "content": "secret of " + id}); isErr {
			t.Fatalf("%s put: %s", id, out)
		}
		tok, err := d.iss.Mint(auth.TokenRequest{Audience: d.url, TenantID: id, UserID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		tokens[id] = tok
	}
	// The timeout turns a hung request into a failure; it is far above
	// anything the server should take (database.acquire_timeout is 1s).
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	base := strings.TrimSuffix(d.url, "/mcp")

	load := startReadLoad(hc, d.url, tenants, tokens)
	t.Cleanup(load.halt) // before the server's cleanup, also when the test fails early
	// recovered waits until every tenant reads its own document and
	// /readyz answers 200 again, with the same server.
	recovered := func(after string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for _, id := range tenants {
			for {
				st, _, body, err := getDocument(hc, d.url, tokens[id])
				if err == nil && st == http.StatusOK && strings.Contains(body, "secret of "+id) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: not served 30s after %s: %d %v %s", id, after, st, err, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		for {
			code := readyz(t, hc, base)
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz %d 30s after %s", code, after)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	waitServed := func(n int64) {
		for deadline := time.Now().Add(30 * time.Second); load.ok.Load() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d reads served under load", load.ok.Load())
			}
		}
	}
	waitServed(50)
	for _, mode := range []string{"fast", "immediate"} {
		before := load.refused.Load()
		pg.Restart(t, mode)
		t.Logf("restarted -m %s", mode)
		recovered("pg_ctl restart -m " + mode)
		t.Logf("restart -m %s: %d requests refused with 503 meanwhile", mode, load.refused.Load()-before)
		waitServed(load.ok.Load() + 50) // the load is served again
	}
	load.halt()
	t.Logf("%d reads served, %d refused with 503", load.ok.Load(), load.refused.Load())
	for _, p := range load.problems {
		t.Error(p)
	}
	if load.refused.Load() == 0 {
		t.Error("no request was refused during two restarts: the outage was not observed")
	}
}

// readyz is GET /readyz's status.
func readyz(t *testing.T, hc *http.Client, base string) int {
	t.Helper()
	resp, err := hc.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// withConnectTimeout adds connect_timeout=2 to a postgres:// URL.
func withConnectTimeout(dsn string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&connect_timeout=2"
	}
	return dsn + "?connect_timeout=2"
}
