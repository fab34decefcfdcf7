package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// withHost is dsn with its host:port replaced by addr.
func withHost(t *testing.T, dsn, addr string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// warnings is a slog handler that counts warnings and tells the first.
type warnings struct {
	mu    sync.Mutex
	n     int
	msgs  []string
	first chan struct{}
}

func newWarnings() *warnings { return &warnings{first: make(chan struct{})} }

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnings) WithGroup(string) slog.Handler            { return w }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	w.msgs = append(w.msgs, b.String())
	if w.n == 1 {
		close(w.first)
	}
	return nil
}

func (w *warnings) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func unreachableConfig(t *testing.T, dsn, wait string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, "[server]\ndata_dir = %q\n[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+
		"[auth.multi_tenant]\ntenant_claim = \"org_id\"\n[database]\ndsn = %q\nstartup_wait = %q\n[audit]\nenabled = false\n",
		t.TempDir(), dsn, wait), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestStartupDatabaseUnreachable: with nothing listening at database.dsn's
// address, OpenWaiting tries again for database.startup_wait, warning at
// each attempt, then fails naming database.dsn, the address and the wait;
// with startup_wait = 0 it fails on the first attempt.
func TestStartupDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	dsn := "postgres://tenantmcp_app@" + addr + "/tenantmcp?connect_timeout=2"
	for _, tc := range []struct {
		wait         string
		wantWarnings bool
	}{{"1500ms", true}, {"0s", false}} {
		t.Run("startup_wait="+tc.wait, func(t *testing.T) {
			t.Parallel()
			w := newWarnings()
			a, err := app.OpenWaiting(context.Background(), unreachableConfig(t, dsn, tc.wait), &app.Options{Logger: slog.New(w)})
			if err == nil {
				a.Close()
				t.Fatal("OpenWaiting with nothing at database.dsn's address succeeded")
			}
			msg := err.Error()
			for _, want := range []string{"database.dsn", addr} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			if got := w.count(); tc.wantWarnings != (got >= 2) {
				t.Errorf("%d warnings (%q) for startup_wait %s", got, w.msgs, tc.wait)
			}
			if tc.wantWarnings {
				if !strings.Contains(msg, "database.startup_wait (1.5s)") {
					t.Errorf("error %q does not say it waited database.startup_wait", msg)
				}
				if !strings.Contains(w.msgs[0], "attempt=1") || !strings.Contains(w.msgs[0], addr) {
					t.Errorf("first warning %q does not name the attempt and the address", w.msgs[0])
				}
			}
		})
	}
}

// TestStartupDatabaseComesUp: a database that starts accepting
// connections during database.startup_wait (a proxy that starts
// forwarding to PostgreSQL after the first failed attempt) is used:
// OpenWaiting returns an App that serves.
func TestStartupDatabaseComesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	proxyAddr := closedAddr(t)
	_, appDSN, cfgTOML := rlsDatabase(t, func(dsn string) string { return withHost(t, dsn, proxyAddr) }, "startup_wait = \"1m\"\n")
	pgAddr, err := url.Parse(appDSN)
	if err != nil {
		t.Fatal(err)
	}
	w := newWarnings()
	ln := make(chan net.Listener, 1)
	go func() {
		<-w.first
		l, err := net.Listen("tcp", proxyAddr)
		if err != nil {
			close(ln)
			return
		}
		ln <- l
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go forward(c, pgAddr.Host)
		}
	}()
	full := fmt.Sprintf("[server]\ndata_dir = %q\n[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n", t.TempDir()) + cfgTOML
	cfg, err := config.Parse([]byte(full), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.OpenWaiting(ctx, cfg, &app.Options{Logger: slog.New(w)})
	if l, up := <-ln; up {
		defer l.Close()
	} else {
		t.Fatal("the proxy could not listen")
	}
	if err != nil {
		t.Fatalf("OpenWaiting with the database up during the wait: %v (warnings %q)", err, w.msgs)
	}
	defer a.Close()
	if rec, err := a.EnsureTenant(ctx, "http://127.0.0.1/dev", "acme", "Acme"); err != nil || rec.ExternalID != "acme" {
		t.Fatalf("registry after the database came up: %v, %v", rec, err)
	}
}

func forward(c net.Conn, to string) {
	defer c.Close()
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
	io.Copy(c, up)
	<-done
}

// rlsDatabase sets up a row_level_security database and returns its
// admin URL, the application role's URL and the [auth.multi_tenant] and
// [database] sections of a deployment on it, with dbExtra (TOML lines)
// added to [database] and the application URL passed through dsn.
func rlsDatabase(t *testing.T, dsn func(appDSN string) string, dbExtra string) (admin, appDSN, cfgTOML string) {
	t.Helper()
	admin, owner, appRole := testenv.PostgresWithRoles(t)
	appDSN, cfgTOML = rlsSetup(t, admin, owner, appRole, dsn, dbExtra)
	return admin, appDSN, cfgTOML
}

// rlsSetup is rlsDatabase on the database of the superuser URL admin,
// with the owner and application roles named.
func rlsSetup(t *testing.T, admin, owner, appRole string, dsn func(appDSN string) string, dbExtra string) (appDSN, cfgTOML string) {
	t.Helper()
	password := app.RandomPassword()
	appDSN, err := app.AppDSN(admin, appRole, password)
	if err != nil {
		t.Fatal(err)
	}
	cfgTOML = fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"row_level_security\"\ndefault_rate_limit = 0\n"+
		"[database]\ndsn = %q\nowner_role = %q\napp_role = %q\n%s[audit]\nenabled = false\n", dsn(appDSN), owner, appRole, dbExtra)
	cfg, err := config.Parse([]byte("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+cfgTOML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.SetupDatabase(context.Background(), cfg, admin, &app.SetupOptions{AppPassword: password}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return appDSN, cfgTOML
}

// TestConnectionsTerminatedUnderLoad: while two tenants read their own
// documents as fast as they can, every backend of the application role
// is terminated (pg_terminate_backend) again and again. Each request
// either succeeds with its own tenant's document — never the other's —
// or is refused 503 with Retry-After; once the terminations stop the
// server serves again without a restart, and no goroutine is left behind.
func TestConnectionsTerminatedUnderLoad(t *testing.T) {
	// Not parallel: goleak compares with the goroutines before it.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx := context.Background()
	admin, _, cfgTOML := rlsDatabase(t, func(dsn string) string { return dsn }, "max_conns = 4\n")
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
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()

	su, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)

	load := startReadLoad(hc, d.url, tenants, tokens)
	var terminated atomic.Int64
	for range 20 {
		var n int64
		if err := su.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND usename <> current_user").Scan(&n); err != nil {
			t.Fatal(err)
		}
		terminated.Add(n)
		time.Sleep(50 * time.Millisecond)
	}
	load.halt()
	t.Logf("%d backends terminated; %d reads served, %d refused with 503", terminated.Load(), load.ok.Load(), load.refused.Load())
	for _, p := range load.problems {
		t.Error(p)
	}
	if terminated.Load() == 0 {
		t.Fatal("no backend was terminated: the test did not test anything")
	}
	// Recovered without a restart: each tenant reads its own document.
	for _, id := range tenants {
		st, _, body, err := getDocument(hc, d.url, tokens[id])
		if err != nil || st != http.StatusOK || !strings.Contains(body, "secret of "+id) {
			t.Errorf("%s after the terminations: %d %v %s", id, st, err, body)
		}
	}
}

func getDocument(hc *http.Client, url, token string) (status int, retryAfter, body string, err error) {
	req, err := http.NewRequest(http.MethodPost, url,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_document","arguments":{"key":"k"}}}`))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), err
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// readLoad has each tenant read its own document ("secret of ID") from
// three goroutines until halt, counting reads served and refusals with 503
// + Retry-After, and recording anything else (at most 10): an error, another
// answer, another tenant's document above all.
type readLoad struct {
	ok, refused atomic.Int64
	stop        chan struct{}
	stopOnce    sync.Once
	wg          sync.WaitGroup
	mu          sync.Mutex
	problems    []string // read after halt
}

func startReadLoad(hc *http.Client, url string, tenants []string, tokens map[string]string) *readLoad {
	l := &readLoad{stop: make(chan struct{})}
	for _, id := range tenants {
		for range 3 {
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					st, retry, body, err := getDocument(hc, url, tokens[id])
					switch {
					case err != nil:
						l.problem("%s: %v", id, err)
					case st == http.StatusOK && strings.Contains(body, "secret of "+id) && !strings.Contains(body, `"isError":true`):
						l.ok.Add(1)
					case st == http.StatusServiceUnavailable && retry != "":
						l.refused.Add(1)
					default:
						l.problem("%s: %d Retry-After %q: %s", id, st, retry, body)
					}
					for _, other := range tenants {
						if other != id && strings.Contains(body, "secret of "+other) {
							l.problem("%s read %s's document: %s", id, other, body)
						}
					}
				}
			})
		}
	}
	return l
}

func (l *readLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 10 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// halt stops the load and waits for it; it may be called more than once.
func (l *readLoad) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}
