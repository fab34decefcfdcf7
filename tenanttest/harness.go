// Package tenanttest starts an in-process tenantmcp server with N tenants
// and hands back, for each, a verified-token-ready MCP client — so you can
// test your own tools' tenant isolation in a few lines:
//
//	func TestIsolation(t *testing.T) {
//		h := tenanttest.New(t, 2, &tenanttest.Options{Tools: mytools.Tools()})
//		a, b := h.Tenant(0), h.Tenant(1)
//		a.Call(t, "put_document", map[string]any{"key": "k", "content": "secret"})
//		if res := b.Call(t, "get_document", map[string]any{"key": "k"}); !res.IsError {
//			t.Fatal("tenant 1 read tenant 0's document")
//		}
//	}
//
// Everything is real: tokens are signed by a development issuer and
// verified against its JWKS, tenants live in an SQLite registry, data in
// an SQLite file per tenant, and clients speak MCP over HTTP.
package tenanttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	tenantdb "github.com/tenantmcp/tenantmcp/store/sqlitestore"
)

// DefaultScopes are the scopes in each tenant's token unless
// Options.Scopes says otherwise (as in the chapter's harness).
var DefaultScopes = []string{"read:tools", "execute:tools"}

// Options adjust the harness. A nil *Options means defaults.
type Options struct {
	// Tools to serve. Nil serves none.
	Tools []server.Tool
	// Scopes put in each tenant's token; nil = DefaultScopes plus every
	// scope the served tools require, so an isolation test can call every
	// tool. Set it to test scope refusals.
	Scopes []string
	// Tenant, if set, adjusts tenant i's registry record before it is
	// registered (allowed tools, flags, rate limit, status...).
	Tenant func(i int, rec *registry.Tenant)
	// Stores replaces the default storage (an SQLite file per tenant and
	// filesystem blobs under t.TempDir()).
	Stores *store.Set
	// Server, if set, adjusts the server options last.
	Server func(*server.Options)
	// ProtocolVersion pins the clients' MCP protocol revision (e.g.
	// "2025-11-25"); "" lets client and server negotiate the newest.
	ProtocolVersion string
}

// Harness is a running server with its tenants.
type Harness struct {
	// URL is the MCP endpoint.
	URL string
	// Issuer mints tokens the server accepts.
	Issuer *auth.DevIssuer
	// Registry holds the tenants.
	Registry *registry.Registry
	// Server is the server under test.
	Server *server.Server

	t       testing.TB
	opts    Options
	tenants []*Tenant
}

// Tenant is one registered tenant with a token and a connected client.
type Tenant struct {
	*Client
	// Record is the tenant's registry record.
	Record *registry.Tenant
	// Token is a bearer token for user "user-<i>" of this tenant.
	Token string
}

// New starts a server with n tenants ("test-tenant-0" … "test-tenant-<n-1>")
// and connects one client per tenant. Everything is torn down when the
// test ends.
func New(t testing.TB, n int, opts *Options) *Harness {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Scopes == nil {
		o.Scopes = slices.Clone(DefaultScopes)
		for _, tool := range o.Tools {
			for _, sc := range tool.Scopes {
				if !slices.Contains(o.Scopes, sc) {
					o.Scopes = append(o.Scopes, sc)
				}
			}
		}
	}
	dir := t.TempDir()
	ctx := context.Background()

	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := auth.NewDevIssuer(base+"/dev", key)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(ctx, &auth.Options{
		Issuer:   iss.Issuer(),
		Audience: base + "/mcp",
		JWKS:     iss.JWKS(),
		Claims:   auth.DevClaimMap(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(verifier.Close)

	regStore, err := sqlitestore.Open(filepath.Join(dir, "registry.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { regStore.Close() })
	reg := registry.New(regStore, nil)

	stores := o.Stores
	if stores == nil {
		docs, err := tenantdb.Open(filepath.Join(dir, "tenants"), nil)
		if err != nil {
			t.Fatal(err)
		}
		blobs, err := fsblob.Open(filepath.Join(dir, "blobs"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { docs.Close(); blobs.Close() })
		stores = &store.Set{Docs: docs, SQL: docs, Blobs: blobs}
	}

	limiter := ratelimit.NewMemory(nil)
	t.Cleanup(func() { limiter.Close() })
	sopts := server.Options{
		ResourceURL:  base + "/mcp",
		Verifier:     verifier,
		Registry:     reg,
		Metadata:     auth.ResourceMetadata{AuthorizationServers: []string{iss.Issuer()}},
		Limiter:      limiter,
		DefaultLimit: ratelimit.Limit{PerMinute: 6000, Burst: 1000},
		Stores:       stores,
		Tools:        o.Tools,
		Routes:       map[string]http.Handler{"GET /dev/jwks.json": iss},
	}
	if o.Server != nil {
		o.Server(&sopts)
	}
	srv, err := server.New(sopts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)

	h := &Harness{URL: base + "/mcp", Issuer: iss, Registry: reg, Server: srv, t: t, opts: o}
	for i := range n {
		rec := registry.Tenant{
			Issuer:     iss.Issuer(),
			ExternalID: fmt.Sprintf("test-tenant-%d", i),
			Name:       fmt.Sprintf("Test Tenant %d", i),
			Status:     registry.StatusActive,
		}
		if o.Tenant != nil {
			o.Tenant(i, &rec)
		}
		added, err := reg.Add(ctx, rec)
		if err != nil {
			t.Fatalf("register tenant %d: %v", i, err)
		}
		token := h.Token(i, auth.TokenRequest{UserID: fmt.Sprintf("user-%d", i)})
		h.tenants = append(h.tenants, &Tenant{Record: added, Token: token, Client: h.Connect(token)})
	}
	return h
}

// Tenant returns tenant i.
func (h *Harness) Tenant(i int) *Tenant { return h.tenants[i] }

// Token mints a token for tenant i. Empty fields of req are filled from
// the tenant (audience, tenant id and name, user "user-<i>", the harness
// scopes).
func (h *Harness) Token(i int, req auth.TokenRequest) string {
	h.t.Helper()
	if req.Audience == "" {
		req.Audience = h.URL
	}
	if req.TenantID == "" {
		req.TenantID = fmt.Sprintf("test-tenant-%d", i)
		req.TenantName = fmt.Sprintf("Test Tenant %d", i)
	}
	if req.UserID == "" {
		req.UserID = fmt.Sprintf("user-%d", i)
	}
	if req.Scopes == nil {
		req.Scopes = h.opts.Scopes
	}
	tok, err := h.Issuer.Mint(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// Connect returns an MCP client that sends token with every request.
func (h *Harness) Connect(token string) *Client {
	h.t.Helper()
	return Dial(h.t, h.URL, token, h.opts.ProtocolVersion)
}

// Dial connects an MCP client to the MCP endpoint url, sending token with
// every request, for servers the harness did not start (a "tenantmcp
// serve" under test, say). protocolVersion pins the revision ("" lets the
// client negotiate). The client is closed when the test ends.
func Dial(t testing.TB, url, token, protocolVersion string) *Client {
	t.Helper()
	var copts []client.ClientOption
	if protocolVersion != "" {
		copts = append(copts, client.WithProtocolVersion(protocolVersion))
	}
	// Redirects are not followed: the token and the request body stay
	// with the server under test (mcp-go's client would follow a 307 to
	// any address, GO-2026-6911).
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tr, err := transport.NewStreamableHTTP(url,
		transport.WithHTTPBasicClient(noRedirects),
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, copts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = protocolVersion
	init.Params.ClientInfo = mcp.Implementation{Name: "tenanttest", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize MCP client: %v", err)
	}
	return &Client{c: c, t: t}
}

// Client is an MCP client bound to one token.
type Client struct {
	c *client.Client
	t testing.TB
}

// MCP returns the underlying mcp-go client.
func (c *Client) MCP() *client.Client { return c.c }

// ProtocolVersion is the protocol revision the client negotiated.
func (c *Client) ProtocolVersion() string { return c.c.ProtocolVersion() }

// ToolNames lists the tools the server shows this client, failing the
// test on error.
func (c *Client) ToolNames(t testing.TB) []string {
	t.Helper()
	res, err := c.c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	names := make([]string, len(res.Tools))
	for i, tool := range res.Tools {
		names[i] = tool.Name
	}
	return names
}

// Result is a tool call's outcome.
type Result struct {
	// Text is the concatenated text content.
	Text string
	// IsError is set when the tool reported an error.
	IsError bool
	// Structured is the structured content, as JSON.
	Structured json.RawMessage
}

// Call calls a tool and fails the test on a protocol error (an error the
// tool itself reports is returned in Result.IsError).
func (c *Client) Call(t testing.TB, name string, args any) *Result {
	t.Helper()
	res, err := c.CallErr(context.Background(), name, args)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return res
}

// CallErr calls a tool and returns protocol errors (unknown tool, refused
// request) as errors.
func (c *Client) CallErr(ctx context.Context, name string, args any) (*Result, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.c.CallTool(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &Result{IsError: res.IsError}
	var text []string
	for _, content := range res.Content {
		if tc, ok := content.(mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	out.Text = strings.Join(text, "\n")
	if res.StructuredContent != nil {
		out.Structured, _ = json.Marshal(res.StructuredContent)
	}
	return out, nil
}
