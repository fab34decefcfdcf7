package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// fixture is a real server over HTTP in front of a fake identity provider.
type fixture struct {
	idp      *idptest.IdP
	url      string // MCP endpoint
	base     string
	issuer   string // configured issuer (registry key)
	reg      *registry.Registry
	verifier *auth.Verifier
	srv      *server.Server
}

// metrics scrapes the server's metrics handler.
func (f *fixture) metrics(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	f.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

type setupOptions struct {
	claims auth.ClaimMap
	issuer string // "" = the IdP's issuer
	// issuerFromIdP, if set, computes the issuer from the IdP (Entra's
	// per-tenant template).
	issuerFromIdP func(*idptest.IdP) string
	audience      string // "" = the resource URL
	server        func(*server.Options)
	verifier      func(*auth.Options)
}

func setup(t *testing.T, so setupOptions) *fixture {
	t.Helper()
	idp := idptest.New(t)
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	f := &fixture{idp: idp, url: base + "/mcp", base: base, issuer: so.issuer}
	if so.issuerFromIdP != nil {
		f.issuer = so.issuerFromIdP(idp)
	}
	if f.issuer == "" {
		f.issuer = idp.Issuer()
	}
	aud := so.audience
	if aud == "" {
		aud = f.url
	}
	vopts := &auth.Options{
		Issuer:           f.issuer,
		Audience:         aud,
		JWKSURL:          idp.JWKSURL(),
		Claims:           so.claims,
		RefreshRateLimit: 200 * time.Millisecond,
	}
	if so.verifier != nil {
		so.verifier(vopts)
	}
	v, err := auth.NewVerifier(context.Background(), vopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	f.verifier = v
	f.reg = registry.New(registry.NewMemoryStore(), nil)
	docs, err := sqlitestore.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docs.Close() })
	opts := server.Options{
		ResourceURL: f.url,
		Verifier:    v,
		Registry:    f.reg,
		Metadata:    auth.ResourceMetadata{AuthorizationServers: []string{f.issuer}, ScopesSupported: []string{"read:tools", "execute:tools"}},
		Stores:      &store.Set{Docs: docs, SQL: docs},
		Tools:       append(documents.Tools(), testTools()...),
	}
	if so.server != nil {
		so.server(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return f
}

type empty struct{}

type whoami struct {
	Tenant   string          `json:"tenant"`
	External string          `json:"external"`
	Name     string          `json:"name"`
	User     string          `json:"user"`
	Scopes   []string        `json:"scopes"`
	Flags    map[string]bool `json:"flags"`
	Config   map[string]string
}

// gate lets a test hold calls of the "wait" tool in flight.
var gate struct {
	entered chan struct{}
	open    chan struct{}
}

func testTools() []server.Tool {
	return []server.Tool{
		server.NewTool("whoami", "Report the tenant context.", func(ctx context.Context, _ empty) (whoami, error) {
			t, err := tenant.From(ctx)
			if err != nil {
				return whoami{}, err
			}
			return whoami{Tenant: string(t.ID), External: t.ExternalID, Name: t.Name, User: t.UserID, Scopes: t.Scopes, Flags: t.Flags, Config: t.Config}, nil
		}),
		server.NewTool("admin_reset", "Needs admin:write.", func(ctx context.Context, _ empty) (string, error) {
			return "reset", nil
		}, server.RequireScopes("admin:write")),
		server.NewTool("wait", "Blocks until the test opens the gate.", func(ctx context.Context, _ empty) (string, error) {
			gate.entered <- struct{}{}
			<-gate.open
			return "done", nil
		}),
		server.NewTool("beta_feature", "Only for tenants with the beta flag.", func(ctx context.Context, _ empty) (string, error) {
			return "beta!", nil
		}, server.RequireFlag("beta")),
	}
}

func (f *fixture) addTenant(t *testing.T, externalID string, mutate func(*registry.Tenant)) *registry.Tenant {
	t.Helper()
	rec := registry.Tenant{Issuer: f.issuer, ExternalID: externalID, Name: "Org " + externalID, Status: registry.StatusActive}
	if mutate != nil {
		mutate(&rec)
	}
	added, err := f.reg.Add(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	return added
}

// genericToken is a token for the generic claim map {Tenant: "org_id"}.
func (f *fixture) genericToken(org, user string, scopes ...string) string {
	return f.idp.Sign(f.idp.GenericClaims(f.url, user, scopes, map[string]any{"org_id": org}))
}

// connect returns an SDK client over HTTP carrying token.
func connect(t *testing.T, url, token, version string) *client.Client {
	t.Helper()
	return tenanttest.Dial(t, url, token, version).MCP()
}

func toolNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func call(t *testing.T, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(context.Background(), req)
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// rawPost sends a JSON-RPC tools/list with the given Authorization header
// value ("" = none) and returns the response and its body.
func rawPost(t *testing.T, url, authorization, body string) (*http.Response, string) {
	t.Helper()
	if body == "" {
		body = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// errorMessage extracts the JSON-RPC error message of a refusal body.
func errorMessage(t *testing.T, body string) string {
	t.Helper()
	var m struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("refusal body is not JSON-RPC: %q", body)
	}
	return m.Error.Message
}
