package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

type otherKey struct{}

// An admitted request's one context layer answers for the request, its
// tenant and the stores, and leaves everything else (values, deadline,
// cancellation) to its parent.
func TestRequestContext(t *testing.T) {
	parentSet := &store.Set{}
	parent, cancel := context.WithCancel(store.WithSet(context.WithValue(context.Background(), otherKey{}, "v"), parentSet))
	defer cancel()
	rq := &request{tc: tenant.Context{ID: tenant.NewID()}}
	set := &store.Set{}
	rq.ctx = requestContext{Context: parent, rq: rq, stores: set}
	ctx := context.Context(&rq.ctx)

	if got := requestFrom(ctx); got != rq {
		t.Fatalf("requestFrom = %p, want the request %p", got, rq)
	}
	if got, err := tenant.From(ctx); err != nil || got != &rq.tc {
		t.Fatalf("tenant.From = %p, %v; want the request's tenant %p", got, err, &rq.tc)
	}
	if got := ctx.Value(store.SetKey{}); got != set {
		t.Fatalf("Value(store.SetKey) = %v, want the server's set", got)
	}
	if got := ctx.Value(otherKey{}); got != "v" {
		t.Fatalf("Value(otherKey) = %v, want the parent's %q", got, "v")
	}
	// No stores configured: the parent answers, as without a WithSet layer.
	rq.ctx.stores = nil
	if got := ctx.Value(store.SetKey{}); got != parentSet {
		t.Fatalf("Value(store.SetKey) with no stores = %v, want the parent's set", got)
	}

	child, stop := context.WithCancel(ctx)
	defer stop()
	after := make(chan struct{})
	defer context.AfterFunc(ctx, func() { close(after) })()
	cancel()
	<-child.Done() // cancelling the parent reaches contexts derived from the layer
	<-after
	if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("Err after the parent was cancelled: layer %v, child %v; want context.Canceled", ctx.Err(), child.Err())
	}
}

// The stateless session id is "stateless-" and the request id, in one
// allocation.
func TestStatelessSessionID(t *testing.T) {
	prefix := newIDPrefix()
	for _, seq := range []uint64{0, 1, 35, 36, 1 << 40, ^uint64(0)} {
		rq := &request{prefix: prefix, seq: seq}
		if got, want := rq.statelessSessionID(), "stateless-"+rq.requestID(); got != want {
			t.Errorf("statelessSessionID() = %q, want %q", got, want)
		}
	}
	rq := &request{prefix: prefix, seq: 1 << 40}
	// Kept (as the header is), so that the compiler cannot put it on the
	// stack.
	if allocs := testing.AllocsPerRun(100, func() { sessionIDSink = rq.statelessSessionID() }); allocs != 1 {
		t.Errorf("statelessSessionID made %.0f allocations, want 1", allocs)
	}
}

var sessionIDSink string

func newFilterServer(t *testing.T) *Server {
	t.Helper()
	nop := func(context.Context, struct{}) (string, error) { return "", nil }
	s, err := New(Options{
		ResourceURL:   "http://127.0.0.1/mcp",
		Registry:      registry.New(registry.NewMemoryStore(), nil),
		LocalIdentity: &auth.Identity{UserID: "u"},
		Tools: []Tool{
			NewTool("a", "a", nop), NewTool("b", "b", nop), NewTool("c", "c", nop),
			NewTool("gated", "gated", nop, RequireFlag("beta")),
			NewTool("scoped", "scoped", nop, RequireScopes("s")),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func toolList(names ...string) []mcp.Tool {
	tools := make([]mcp.Tool, len(names))
	for i, n := range names {
		tools[i] = mcp.Tool{Name: n}
	}
	return tools
}

func toolNames(tools []mcp.Tool) []string {
	var names []string
	for _, t := range tools {
		names = append(names, t.Name)
	}
	return names
}

// filterTools keeps exactly the tools the tenant may use, in order, and
// never changes the slice it is given; when every tool is allowed it
// returns that slice itself.
func TestFilterTools(t *testing.T) {
	s := newFilterServer(t)
	for _, tt := range []struct {
		name    string
		tenant  registry.Tenant
		in      []string
		want    []string
		reuses  bool // the input slice itself is returned
		unknown bool
	}{
		{name: "all allowed", in: []string{"a", "b", "c"}, want: []string{"a", "b", "c"}, reuses: true},
		{name: "one call", in: []string{"b"}, want: []string{"b"}, reuses: true},
		{name: "allowed tools", tenant: registry.Tenant{AllowedTools: []string{"b"}}, in: []string{"a", "b", "c"}, want: []string{"b"}},
		{name: "last allowed", tenant: registry.Tenant{AllowedTools: []string{"c"}}, in: []string{"a", "b", "c"}, want: []string{"c"}},
		{name: "first allowed", tenant: registry.Tenant{AllowedTools: []string{"a"}}, in: []string{"a", "b", "c"}, want: []string{"a"}},
		{name: "flag off", in: []string{"a", "gated", "c"}, want: []string{"a", "c"}},
		{name: "flag on", tenant: registry.Tenant{Flags: map[string]bool{"beta": true}}, in: []string{"gated", "a"}, want: []string{"gated", "a"}, reuses: true},
		{name: "none allowed", tenant: registry.Tenant{AllowedTools: []string{"zzz"}}, in: []string{"a", "b"}, want: nil},
		{name: "unknown tool", in: []string{"a", "nope"}, want: []string{"a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.tenant
			rec.ID = tenant.NewID()
			rq := &request{tenant: &rec, ident: &auth.Identity{}}
			rq.ctx = requestContext{Context: context.Background(), rq: rq}
			in := toolList(tt.in...)
			got := s.filterTools(&rq.ctx, in)
			if !slices.Equal(toolNames(got), tt.want) {
				t.Fatalf("filterTools(%v) = %v, want %v", tt.in, toolNames(got), tt.want)
			}
			if names := toolNames(in); !slices.Equal(names, tt.in) {
				t.Fatalf("filterTools changed its input: %v, was %v", names, tt.in)
			}
			if reused := len(got) > 0 && &got[0] == &in[0]; reused != tt.reuses {
				t.Fatalf("filterTools returned its input: %v, want %v", reused, tt.reuses)
			}
		})
	}
	if got := s.filterTools(context.Background(), toolList("a")); len(got) != 0 {
		t.Fatalf("filterTools without a request = %v, want none", toolNames(got))
	}
}

// A panic in the tool handler outside the tool itself (which runTool
// recovers) is answered as mcp-go's WithRecovery answered it, which the
// server no longer installs.
func TestToolHandlerRecovers(t *testing.T) {
	s := newFilterServer(t)
	rec := registry.Tenant{ID: tenant.NewID()}
	// No identity: the scope check dereferences nil, which serveMCP never
	// lets happen.
	rq := &request{tenant: &rec}
	rq.ctx = requestContext{Context: context.Background(), rq: rq}
	h := s.toolHandler(s.tools["scoped"])
	var req mcp.CallToolRequest
	req.Params.Name = "scoped"
	res, err := h(&rq.ctx, req)
	const want = "panic recovered in scoped tool handler: runtime error: invalid memory address or nil pointer dereference"
	if res != nil || err == nil || err.Error() != want {
		t.Fatalf("handler = %v, %v; want no result and the error %q", res, err, want)
	}
}

// isLoopbackAddr answers as isLoopback of the address's text did.
func TestIsLoopbackAddr(t *testing.T) {
	var nilTCP *net.TCPAddr
	addrs := []net.Addr{nilTCP, &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, &net.TCPAddr{}, &net.TCPAddr{Port: 80}}
	for _, ip := range []string{"127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1", "10.0.0.1", "0.0.0.0", "::", "fe80::1", "192.168.1.1", "2001:db8::1"} {
		addrs = append(addrs, &net.TCPAddr{IP: net.ParseIP(ip), Port: 8080})
		addrs = append(addrs, &net.TCPAddr{IP: net.ParseIP(ip).To4(), Port: 1})
	}
	addrs = append(addrs, &net.TCPAddr{IP: net.ParseIP("::1"), Port: 1, Zone: "lo"}, &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"})
	loopbacks := 0
	for _, a := range addrs {
		got, want := isLoopbackAddr(a), isLoopback(a.String())
		if got != want {
			t.Errorf("isLoopbackAddr(%v) = %v, isLoopback(%q) = %v", a, got, a.String(), want)
		}
		if got {
			loopbacks++
		}
	}
	if loopbacks == 0 {
		t.Fatal("no address was found on loopback")
	}
}

// serveMCP releases its body-read slot with Release, which is right only
// for a tracked slot: New must leave MaxBodyReadsPerTenant positive.
func TestBodyReadsTracked(t *testing.T) {
	s := newFilterServer(t) // MaxBodyReadsPerTenant left 0
	if got := s.opts.MaxBodyReadsPerTenant; got != DefaultMaxBodyReadsPerTenant || got <= 0 {
		t.Fatalf("MaxBodyReadsPerTenant = %d after New, want the default %d", got, DefaultMaxBodyReadsPerTenant)
	}
	if _, err := New(Options{ResourceURL: "http://127.0.0.1/mcp", Registry: s.opts.Registry, LocalIdentity: s.opts.LocalIdentity, MaxBodyReadsPerTenant: -1}); err == nil {
		t.Fatal("New accepted MaxBodyReadsPerTenant -1")
	}
}
