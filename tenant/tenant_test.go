package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestIDs(t *testing.T) {
	seen := map[tenant.ID]bool{}
	for range 1000 {
		id := tenant.NewID()
		if !id.Valid() || len(id) != tenant.IDLen || seen[id] {
			t.Fatalf("NewID() = %q (valid %v, seen %v)", id, id.Valid(), seen[id])
		}
		seen[id] = true
		if got, err := tenant.ParseID(string(id)); err != nil || got != id {
			t.Fatalf("ParseID(%q) = %q, %v", id, got, err)
		}
	}
	for _, bad := range []string{"", "t", "a2ah3htpjvblvvvgzhpov", "t2ah3htpjvblvvvgzhpo", "t2ah3htpjvblvvvgzhpov1", "T2AH3HTPJVBLVVVGZHPOV",
		"t2ah3htpjvblvvvgzhp0v", "t2ah3htpjvblvvvgzhp/v", "t2ah3htpjvblvvvgzhp_v", "t2ah3htpjvblvvvgzhp.v", "../tpjvblvvvgzhpovxyz"} {
		if _, err := tenant.ParseID(bad); !errors.Is(err, tenant.ErrInvalidID) {
			t.Errorf("ParseID(%q) = %v, want ErrInvalidID", bad, err)
		}
	}
}

func TestContext(t *testing.T) {
	if _, err := tenant.From(context.Background()); !errors.Is(err, tenant.ErrNoTenant) {
		t.Fatalf("From(empty) = %v", err)
	}
	// A context without a valid id is no tenant.
	if _, err := tenant.From(tenant.With(context.Background(), &tenant.Context{Name: "x"})); !errors.Is(err, tenant.ErrNoTenant) {
		t.Fatalf("From(no id) = %v", err)
	}
	tc := &tenant.Context{ID: tenant.NewID(), Scopes: []string{"read"}, Flags: map[string]bool{"beta": true}}
	got, err := tenant.From(tenant.With(context.Background(), tc))
	if err != nil || got != tc || !got.HasScope("read") || got.HasScope("write") || !got.Flag("beta") || got.Flag("other") {
		t.Fatalf("From = %+v, %v", got, err)
	}
}

// oneLayer is a context layer of its own that answers ContextKey, as the
// server's request context does.
type oneLayer struct {
	context.Context
	tc *tenant.Context
}

func (c oneLayer) Value(key any) any {
	if _, ok := key.(tenant.ContextKey); ok {
		return c.tc
	}
	return c.Context.Value(key)
}

// From finds the tenant in any layer that answers ContextKey, and the
// nearest one wins, as with With.
func TestContextKey(t *testing.T) {
	tc := &tenant.Context{ID: tenant.NewID()}
	if got, err := tenant.From(oneLayer{context.Background(), tc}); err != nil || got != tc {
		t.Fatalf("From(a layer answering ContextKey) = %+v, %v; want its tenant", got, err)
	}
	inner := &tenant.Context{ID: tenant.NewID()}
	if got, err := tenant.From(oneLayer{tenant.With(context.Background(), inner), tc}); err != nil || got != tc {
		t.Fatalf("From(layer over With) = %+v, %v; want the nearer layer's tenant", got, err)
	}
	if got, err := tenant.From(tenant.With(oneLayer{context.Background(), tc}, inner)); err != nil || got != inner {
		t.Fatalf("From(With over layer) = %+v, %v; want With's tenant", got, err)
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("t2ah3htpjvblvvvgzhpov")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := tenant.ParseID(s)
		if err != nil {
			return
		}
		// Accepted ids are safe as identifiers, file names and prefixes.
		if string(id) != s || len(s) != tenant.IDLen || strings.ContainsAny(s, "/\\.\x00 _-\"'") || strings.ToLower(s) != s {
			t.Fatalf("accepted %q", s)
		}
	})
}

func Example() {
	// The server does this once per request, from the verified token and
	// the registry record:
	ctx := tenant.With(context.Background(), &tenant.Context{
		ID: "t2ah3htpjvblvvvgzhpov", ExternalID: "org_9fQ2", Name: "Acme", UserID: "alice",
		Scopes: []string{"documents:read"},
	})
	// A tool does this:
	t, err := tenant.From(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Name, t.UserID, t.HasScope("documents:read"))
	// Output: Acme alice true
}
