package admintest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// HostileStrings are texts that naive storage would mangle or confuse
// with one another: quotes and SQL, LIKE wildcards, case, Unicode
// normalisation, JSON and array syntax, surrounding space. Every one is
// valid UTF-8 without NUL (PostgreSQL text holds no NUL).
var HostileStrings = []string{
	"' OR 1=1 --", `"; DROP TABLE admin_impersonations; --`, `back\slash \" \\`,
	"a%", "a_", "A", "a", "org_ü", "org_u\u0308", "日本語のテキスト 🚀",
	`{"json": [1, 2]}`, "{a,b}", "a,b", " a", "a ", "\ttab\nnewline\r",
}

// LongText is a reason or ticket far longer than any index entry may be
// (about 75 KB of multi-byte text).
var LongText = strings.Repeat("long reason ✓ ", 5000)

// Grant returns a grant with every field but EndedAt and EndedBy set, for
// tenant id and admin sub, with a fresh ID and token hash, created now
// (microseconds, UTC) and expiring in 30 minutes.
func Grant(id tenant.ID, sub string) *admin.Impersonation {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &admin.Impersonation{
		ID:               "imp_" + random(10),
		TokenHash:        sha256.Sum256([]byte(random(16))),
		Tenant:           id,
		Admin:            sub,
		AdminIssuer:      "https://admin.example.com/",
		User:             "support@example.com",
		Reason:           "customer ticket: export fails",
		Ticket:           "SUP-1234",
		Scopes:           []string{"documents:read", "search"},
		ReadOnly:         true,
		IncludeSuspended: false,
		CreatedAt:        now,
		ExpiresAt:        now.Add(30 * time.Minute),
	}
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stored is g as a store returns it: times in UTC truncated to the
// microsecond, empty scopes nil.
func stored(g *admin.Impersonation) *admin.Impersonation {
	c := *g
	c.Scopes = nil
	if len(g.Scopes) > 0 {
		c.Scopes = slices.Clone(g.Scopes)
	}
	c.CreatedAt, c.ExpiresAt, c.EndedAt = storedTime(g.CreatedAt), storedTime(g.ExpiresAt), storedTime(g.EndedAt)
	return &c
}

func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// diff compares grants exactly: times as instants, nil and empty scopes
// apart.
func diff(want, got *admin.Impersonation) string { return cmp.Diff(want, got) }

// checkUTC reports the times of g that are not in UTC.
func checkUTC(t *testing.T, what string, g *admin.Impersonation) {
	t.Helper()
	for name, tm := range map[string]time.Time{"CreatedAt": g.CreatedAt, "ExpiresAt": g.ExpiresAt, "EndedAt": g.EndedAt} {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: %s location = %v, want UTC", what, name, tm.Location())
		}
	}
}

func create(t *testing.T, s admin.Store, gs ...*admin.Impersonation) {
	t.Helper()
	for _, g := range gs {
		if err := s.CreateImpersonation(context.Background(), g); err != nil {
			t.Fatalf("CreateImpersonation %s: %v", g.ID, err)
		}
	}
}

func ids(gs []*admin.Impersonation) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.ID
	}
	return out
}

// listAll pages through f with f.Limit per page, checking each page's
// size, and returns the ids in order.
func listAll(t *testing.T, s admin.Store, f admin.ImpersonationFilter) []string {
	t.Helper()
	var out []string
	for range 10000 {
		page, err := s.ListImpersonations(context.Background(), f)
		if err != nil {
			t.Fatalf("ListImpersonations %+v: %v", f, err)
		}
		if len(page) > admin.PageLimit(f.Limit) {
			t.Fatalf("ListImpersonations returned %d grants, more than the limit %d", len(page), f.Limit)
		}
		out = append(out, ids(page)...)
		if len(page) < admin.PageLimit(f.Limit) {
			return out
		}
		f.Before = page[len(page)-1].ID
	}
	t.Fatal("ListImpersonations does not end")
	return nil
}

// newestFirst sorts grants as ListImpersonations orders them.
func newestFirst(gs []*admin.Impersonation) []string {
	gs = slices.Clone(gs)
	slices.SortFunc(gs, func(a, b *admin.Impersonation) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return ids(gs)
}

// concurrently calls f(0) … f(n-1) in n goroutines at once and returns
// their errors, by i.
func concurrently(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errs
}

// Run runs the contract suite. newStore must return a fresh, empty store
// for each subtest and arrange for its cleanup.
func Run(t *testing.T, newStore func(t *testing.T) admin.Store) {
	t.Run("Impersonations", func(t *testing.T) { runImpersonations(t, newStore) })
	t.Run("Idempotency", func(t *testing.T) { runIdempotency(t, newStore) })
}

var tenantA, tenantB = tenant.NewID(), tenant.NewID()

func runImpersonations(t *testing.T, newStore func(t *testing.T) admin.Store) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		in := Grant(tenantA, "admin-1")
		in.IncludeSuspended = true
		// Times in another zone and with nanoseconds come back in UTC,
		// truncated to the microsecond.
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		in.CreatedAt = time.Date(2026, 3, 1, 12, 0, 0, 123456789, zone)
		in.ExpiresAt = in.CreatedAt.Add(8 * time.Hour)
		want := stored(in)
		create(t, s, in)
		// The store keeps no reference to the argument.
		in.Scopes[0], in.Reason, in.ExpiresAt = "admin:global", "changed", in.ExpiresAt.Add(time.Hour)

		got, err := s.Impersonation(ctx, want.ID)
		if err != nil {
			t.Fatalf("Impersonation: %v", err)
		}
		if d := diff(want, got); d != "" {
			t.Errorf("Impersonation after Create (-want +got):\n%s", d)
		}
		checkUTC(t, "Impersonation", got)
		if ns := got.CreatedAt.Nanosecond(); ns != 123456000 {
			t.Errorf("CreatedAt nanoseconds = %d, want 123456000 (microseconds kept, the rest truncated)", ns)
		}
		byToken, err := s.ImpersonationByToken(ctx, want.TokenHash)
		if err != nil {
			t.Fatalf("ImpersonationByToken: %v", err)
		}
		if d := diff(want, byToken); d != "" {
			t.Errorf("ImpersonationByToken after Create (-want +got):\n%s", d)
		}
		checkUTC(t, "ImpersonationByToken", byToken)
		// Returned grants are the caller's.
		got.Scopes[0], got.Reason = "changed", "changed"
		again, err := s.Impersonation(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(want, again); d != "" {
			t.Errorf("stored grant changed through a returned one (-want +got):\n%s", d)
		}
	})

	t.Run("MinimalGrant", func(t *testing.T) {
		s := newStore(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		want := &admin.Impersonation{
			ID: "imp_minimal", TokenHash: sha256.Sum256([]byte("minimal")), Tenant: tenantA,
			Admin: "a", User: "u", Reason: "r", CreatedAt: now, ExpiresAt: now.Add(time.Minute),
		}
		create(t, s, want)
		got, err := s.Impersonation(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(want, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
		if !got.EndedAt.IsZero() || got.Scopes != nil {
			t.Errorf("EndedAt = %v, Scopes = %#v; want zero and nil", got.EndedAt, got.Scopes)
		}
	})

	t.Run("Scopes", func(t *testing.T) {
		s := newStore(t)
		cases := map[string][]string{
			"nil":     nil,
			"empty":   {},
			"one":     {"documents:read"},
			"blank":   {""},
			"hostile": append([]string{"b", "a", "b", LongText}, HostileStrings...),
		}
		for name, scopes := range cases {
			g := Grant(tenantA, "admin-"+name)
			g.Scopes = scopes
			create(t, s, g)
			got, err := s.Impersonation(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := scopes
			if len(want) == 0 {
				want = nil
			}
			if d := cmp.Diff(want, got.Scopes); d != "" {
				t.Errorf("%s scopes (-want +got):\n%s", name, d)
			}
		}
	})

	t.Run("HostileStrings", func(t *testing.T) {
		s := newStore(t)
		var all []*admin.Impersonation
		for i, h := range HostileStrings {
			g := Grant(tenantA, h)
			g.ID = fmt.Sprintf("imp_%02d_%s", i, h)
			g.AdminIssuer, g.User, g.Reason, g.Ticket = h, h, h+LongText, LongText+h
			create(t, s, g)
			ended, err := s.EndImpersonation(ctx, g.ID, h, g.CreatedAt.Add(time.Second))
			if err != nil {
				t.Fatalf("EndImpersonation %q: %v", g.ID, err)
			}
			g.EndedAt, g.EndedBy = g.CreatedAt.Add(time.Second), h
			if d := diff(stored(g), ended); d != "" {
				t.Errorf("EndImpersonation of %q (-want +got):\n%s", g.ID, d)
			}
			all = append(all, g)
		}
		for _, g := range all {
			got, err := s.Impersonation(ctx, g.ID)
			if err != nil {
				t.Errorf("Impersonation %q: %v", g.ID, err)
				continue
			}
			if d := diff(stored(g), got); d != "" {
				t.Errorf("grant of %q (-want +got):\n%s", g.ID, d)
			}
			// The admin filter matches exactly: no wildcards, no folding.
			page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Admin: g.Admin})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(page), []string{g.ID}) {
				t.Errorf("list for admin %q = %q, want only %q", g.Admin, ids(page), g.ID)
			}
		}
		for _, near := range []string{"%", "_", "a%%", "org_u", "' OR 1=1 -- ", "", "b"} {
			if _, err := s.Impersonation(ctx, near); !errors.Is(err, admin.ErrNotFound) {
				t.Errorf("Impersonation %q (not stored): err = %v, want ErrNotFound", near, err)
			}
		}
		for _, near := range []string{"%", "_", "a%%", "org_u", "' OR 1=1 -- ", "b"} {
			page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Admin: near})
			if err != nil || len(page) != 0 {
				t.Errorf("list for admin %q (none) = %q, %v; want none", near, ids(page), err)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		g := Grant(tenantA, "admin-1")
		create(t, s, g)
		ghost := Grant(tenantA, "admin-1")
		if _, err := s.Impersonation(ctx, ghost.ID); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("Impersonation of an unknown id: err = %v, want ErrNotFound", err)
		}
		if _, err := s.ImpersonationByToken(ctx, ghost.TokenHash); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("ImpersonationByToken of an unknown hash: err = %v, want ErrNotFound", err)
		}
		if _, err := s.EndImpersonation(ctx, ghost.ID, "admin-2", time.Now()); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("EndImpersonation of an unknown id: err = %v, want ErrNotFound", err)
		}
		if _, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Before: ghost.ID}); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("ListImpersonations before an unknown id: err = %v, want ErrNotFound", err)
		}
		if got, err := s.Impersonation(ctx, g.ID); err != nil || !got.EndedAt.IsZero() {
			t.Errorf("the stored grant = %+v, %v; want it unchanged", got, err)
		}
	})

	t.Run("Duplicates", func(t *testing.T) {
		s := newStore(t)
		first := Grant(tenantA, "admin-1")
		create(t, s, first)

		sameID := Grant(tenantB, "admin-2")
		sameID.ID = first.ID
		err := s.CreateImpersonation(ctx, sameID)
		if !errors.Is(err, admin.ErrExists) {
			t.Fatalf("Create with a taken id: err = %v, want ErrExists", err)
		}
		if !strings.Contains(err.Error(), first.ID) {
			t.Errorf("ErrExists for a taken id %q does not name it: %v", first.ID, err)
		}
		if _, err := s.ImpersonationByToken(ctx, sameID.TokenHash); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("the refused grant's token: err = %v, want ErrNotFound", err)
		}

		sameToken := Grant(tenantB, "admin-2")
		sameToken.TokenHash = first.TokenHash
		if err := s.CreateImpersonation(ctx, sameToken); !errors.Is(err, admin.ErrExists) {
			t.Fatalf("Create with a taken token hash: err = %v, want ErrExists", err)
		}
		if _, err := s.Impersonation(ctx, sameToken.ID); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("the refused grant's id: err = %v, want ErrNotFound", err)
		}

		for _, lookup := range []func() (*admin.Impersonation, error){
			func() (*admin.Impersonation, error) { return s.Impersonation(ctx, first.ID) },
			func() (*admin.Impersonation, error) { return s.ImpersonationByToken(ctx, first.TokenHash) },
		} {
			got, err := lookup()
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(stored(first), got); d != "" {
				t.Errorf("the first grant after refused duplicates (-want +got):\n%s", d)
			}
		}
		if got := listAll(t, s, admin.ImpersonationFilter{}); !slices.Equal(got, []string{first.ID}) {
			t.Errorf("list = %q, want only %q", got, first.ID)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		token := Grant(tenantA, "x").TokenHash
		won := 0
		for _, err := range concurrently(n, func(i int) error {
			g := Grant(tenantA, fmt.Sprintf("admin-%d", i))
			g.TokenHash = token
			return s.CreateImpersonation(ctx, g)
		}) {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, admin.ErrExists):
				t.Errorf("CreateImpersonation: %v, want nil or ErrExists", err)
			}
		}
		if won != 1 {
			t.Errorf("%d concurrent creates with one token hash succeeded, want exactly 1", won)
		}
		if got := listAll(t, s, admin.ImpersonationFilter{}); len(got) != 1 {
			t.Errorf("%d grants stored, want 1", len(got))
		}
	})

	t.Run("End", func(t *testing.T) {
		s := newStore(t)
		g, other := Grant(tenantA, "admin-1"), Grant(tenantA, "admin-1")
		create(t, s, g, other)
		at := time.Date(2026, 3, 1, 12, 5, 0, 987654321, time.FixedZone("x", -7*3600))
		if _, err := s.EndImpersonation(ctx, g.ID, "admin-2", time.Time{}); !errors.Is(err, admin.ErrZeroEndTime) {
			t.Errorf("EndImpersonation at the zero time: err = %v, want ErrZeroEndTime (a zero EndedAt means not ended)", err)
		}
		if got, _ := s.Impersonation(ctx, g.ID); got == nil || !got.EndedAt.IsZero() || got.EndedBy != "" {
			t.Errorf("after a refused end the grant is %+v, want it not ended", got)
		}
		ended, err := s.EndImpersonation(ctx, g.ID, "admin-2", at)
		if err != nil {
			t.Fatalf("EndImpersonation: %v", err)
		}
		want := stored(g)
		want.EndedAt, want.EndedBy = storedTime(at), "admin-2"
		if d := diff(want, ended); d != "" {
			t.Errorf("EndImpersonation returned (-want +got):\n%s", d)
		}
		checkUTC(t, "EndImpersonation", ended)
		if ended.ActiveAt(g.CreatedAt) {
			t.Error("an ended grant is active")
		}
		// A second end, by someone else, later, changes nothing.
		again, err := s.EndImpersonation(ctx, g.ID, "admin-3", at.Add(time.Hour))
		if err != nil {
			t.Fatalf("second EndImpersonation: %v", err)
		}
		if d := diff(want, again); d != "" {
			t.Errorf("second EndImpersonation returned (-want +got):\n%s", d)
		}
		for _, lookup := range []func() (*admin.Impersonation, error){
			func() (*admin.Impersonation, error) { return s.Impersonation(ctx, g.ID) },
			func() (*admin.Impersonation, error) { return s.ImpersonationByToken(ctx, g.TokenHash) },
		} {
			got, err := lookup()
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(want, got); d != "" {
				t.Errorf("stored after two ends (-want +got):\n%s", d)
			}
		}
		if got, err := s.Impersonation(ctx, other.ID); err != nil || !got.EndedAt.IsZero() {
			t.Errorf("the other grant = %+v, %v; want it not ended", got, err)
		}
	})

	t.Run("ConcurrentEnd", func(t *testing.T) {
		s := newStore(t)
		g := Grant(tenantA, "admin-1")
		create(t, s, g)
		const n = 12
		got := make([]*admin.Impersonation, n)
		errs := concurrently(n, func(i int) (err error) {
			got[i], err = s.EndImpersonation(ctx, g.ID, fmt.Sprintf("admin-%d", i), g.CreatedAt.Add(time.Duration(i+1)*time.Second))
			return err
		})
		final, err := s.Impersonation(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if final.EndedAt.IsZero() || !strings.HasPrefix(final.EndedBy, "admin-") {
			t.Fatalf("after concurrent ends the grant is %+v", final)
		}
		for i := range n {
			if errs[i] != nil {
				t.Errorf("EndImpersonation %d: %v", i, errs[i])
			} else if d := diff(final, got[i]); d != "" {
				t.Errorf("EndImpersonation %d returned another state than the one stored (-stored +returned):\n%s", i, d)
			}
		}
	})

	t.Run("ListFilters", func(t *testing.T) {
		s := newStore(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		mk := func(id tenant.ID, sub string, age, ttl time.Duration) *admin.Impersonation {
			g := Grant(id, sub)
			g.CreatedAt = now.Add(-age)
			g.ExpiresAt = g.CreatedAt.Add(ttl)
			return g
		}
		var (
			aActive  = mk(tenantA, "alice", 3*time.Minute, time.Hour)
			aEnded   = mk(tenantA, "alice", 4*time.Minute, time.Hour)
			aExpired = mk(tenantA, "bob", 2*time.Hour, time.Hour)
			aEdge    = mk(tenantA, "bob", time.Hour, time.Hour) // expires exactly at now
			bActive  = mk(tenantB, "alice", 2*time.Minute, time.Hour)
			bOther   = mk(tenantB, "bob", 1*time.Minute, time.Hour)
		)
		all := []*admin.Impersonation{aActive, aEnded, aExpired, aEdge, bActive, bOther}
		create(t, s, all...)
		if _, err := s.EndImpersonation(ctx, aEnded.ID, "carol", now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		// A grant ended in the future is ended already (EndedAt is set).
		if _, err := s.EndImpersonation(ctx, bOther.ID, "carol", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		pick := func(gs ...*admin.Impersonation) []string { return newestFirst(gs) }
		for _, c := range []struct {
			name string
			f    admin.ImpersonationFilter
			want []string
		}{
			{"all", admin.ImpersonationFilter{}, pick(all...)},
			{"tenant A", admin.ImpersonationFilter{Tenant: tenantA}, pick(aActive, aEnded, aExpired, aEdge)},
			{"tenant B", admin.ImpersonationFilter{Tenant: tenantB}, pick(bActive, bOther)},
			{"admin alice", admin.ImpersonationFilter{Admin: "alice"}, pick(aActive, aEnded, bActive)},
			{"tenant A, admin bob", admin.ImpersonationFilter{Tenant: tenantA, Admin: "bob"}, pick(aExpired, aEdge)},
			{"active now", admin.ImpersonationFilter{ActiveAt: now}, pick(aActive, bActive)},
			{"active now, tenant A", admin.ImpersonationFilter{Tenant: tenantA, ActiveAt: now}, pick(aActive)},
			{"active now, admin bob", admin.ImpersonationFilter{Admin: "bob", ActiveAt: now}, nil},
			{"active a microsecond before the edge", admin.ImpersonationFilter{Tenant: tenantA, Admin: "bob", ActiveAt: now.Add(-time.Microsecond)}, pick(aEdge)},
			// Active means not ended and not expired, whenever created.
			{"active 90 minutes ago", admin.ImpersonationFilter{ActiveAt: now.Add(-90 * time.Minute)}, pick(aActive, aExpired, aEdge, bActive)},
			{"active, in another zone", admin.ImpersonationFilter{ActiveAt: now.In(time.FixedZone("y", 3600))}, pick(aActive, bActive)},
			{"unknown tenant", admin.ImpersonationFilter{Tenant: tenant.NewID()}, nil},
			{"tenant id prefix", admin.ImpersonationFilter{Tenant: tenantA[:10]}, nil},
			{"admin in other case", admin.ImpersonationFilter{Admin: "Alice"}, nil},
		} {
			page, err := s.ListImpersonations(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if got := ids(page); !slices.Equal(got, c.want) {
				t.Errorf("%s: listed %q, want %q", c.name, got, c.want)
			}
			if len(page) == 0 && page != nil {
				t.Errorf("%s: an empty list is %#v, want nil", c.name, page)
			}
			for _, g := range page {
				if c.f.Tenant != "" && g.Tenant != c.f.Tenant {
					t.Errorf("%s: listed a grant of tenant %s", c.name, g.Tenant)
				}
				checkUTC(t, c.name, g)
			}
		}
		// Listed grants are whole.
		page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page {
			byID, err := s.Impersonation(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(byID, g); d != "" {
				t.Errorf("listed grant differs from Impersonation (-get +list):\n%s", d)
			}
		}
	})

	t.Run("CrossTenant", func(t *testing.T) {
		s := newStore(t)
		var mine, theirs []*admin.Impersonation
		for i := range 6 {
			a, b := Grant(tenantA, "alice"), Grant(tenantB, "alice")
			// Interleaved in time, tenant B's grants newest.
			a.CreatedAt = a.CreatedAt.Add(time.Duration(2*i) * time.Second)
			b.CreatedAt = a.CreatedAt.Add(time.Second)
			create(t, s, a, b)
			mine, theirs = append(mine, a), append(theirs, b)
		}
		for _, limit := range []int{1, 2, 5, 0} {
			got := listAll(t, s, admin.ImpersonationFilter{Tenant: tenantA, Limit: limit})
			if want := newestFirst(mine); !slices.Equal(got, want) {
				t.Errorf("tenant A's list (limit %d) = %q, want %q", limit, got, want)
			}
			got = listAll(t, s, admin.ImpersonationFilter{Tenant: tenantB, Admin: "alice", ActiveAt: time.Now(), Limit: limit})
			if want := newestFirst(theirs); !slices.Equal(got, want) {
				t.Errorf("tenant B's active list (limit %d) = %q, want %q", limit, got, want)
			}
		}
		// A cursor from tenant B's list pages tenant A's list by position
		// only: it yields A's grants, never B's.
		page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Tenant: tenantA, Before: theirs[3].ID})
		if err != nil {
			t.Fatal(err)
		}
		if want := newestFirst(mine[:4]); !slices.Equal(ids(page), want) {
			t.Errorf("tenant A's list before B's grant = %q, want %q", ids(page), want)
		}
		// A token resolves only to its own grant.
		for _, g := range append(mine, theirs...) {
			got, err := s.ImpersonationByToken(ctx, g.TokenHash)
			if err != nil || got.ID != g.ID || got.Tenant != g.Tenant {
				t.Errorf("token of %s (tenant %s) resolves to %+v, %v", g.ID, g.Tenant, got, err)
			}
		}
	})

	t.Run("OrderAndPaging", func(t *testing.T) {
		s := newStore(t)
		if page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{}); err != nil || page != nil {
			t.Fatalf("list of an empty store = %v, %v; want nil, nil", page, err)
		}
		base := time.Now().UTC().Truncate(time.Microsecond)
		var all []*admin.Impersonation
		for i := range 25 {
			g := Grant(tenantA, "alice")
			// Groups of three share a CreatedAt: ties are ordered by id.
			g.CreatedAt = base.Add(time.Duration(i/3) * time.Microsecond)
			// Ids in mixed case and with non-ASCII letters: their order is
			// byte order, which a linguistic collation would not keep.
			g.ID = fmt.Sprintf("imp_%c%02d", []rune("aBcDeFgHiJkLmNoPqRsTuVwXyZäÖé")[i*7%29], i)
			all = append(all, g)
		}
		create(t, s, all...)
		want := newestFirst(all)
		for _, limit := range []int{1, 2, 7, 25, 100, 0, -1} {
			if got := listAll(t, s, admin.ImpersonationFilter{Limit: limit}); !slices.Equal(got, want) {
				t.Errorf("limit %d: listed %q, want %q", limit, got, want)
			}
		}
		page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Before: want[9], Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(page), want[10:15]) {
			t.Errorf("5 after the 10th = %q, want %q", ids(page), want[10:15])
		}
		if page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Before: want[len(want)-1]}); err != nil || page != nil {
			t.Errorf("list after the oldest = %q, %v; want nil, nil", ids(page), err)
		}
	})

	t.Run("PageSize", func(t *testing.T) {
		s := newStore(t)
		base := time.Now().UTC().Truncate(time.Microsecond)
		for i := range admin.MaxPageSize + 1 {
			g := Grant(tenantA, "alice")
			g.CreatedAt = base.Add(time.Duration(i) * time.Millisecond)
			create(t, s, g)
		}
		for _, c := range []struct{ limit, want int }{
			{0, admin.DefaultPageSize},
			{-5, admin.DefaultPageSize},
			{admin.MaxPageSize + 500, admin.MaxPageSize},
			{admin.MaxPageSize, admin.MaxPageSize},
			{3, 3},
		} {
			page, err := s.ListImpersonations(ctx, admin.ImpersonationFilter{Limit: c.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != c.want {
				t.Errorf("limit %d: %d grants, want %d", c.limit, len(page), c.want)
			}
		}
	})
}

func runIdempotency(t *testing.T, newStore func(t *testing.T) admin.Store) {
	ctx := context.Background()
	h1, h2 := admin.RequestHash(sha256.Sum256([]byte("request 1"))), admin.RequestHash(sha256.Sum256([]byte("request 2")))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("z", 2*3600))
	want0 := admin.IdempotencyRecord{Key: "key-1", Request: h1, CreatedAt: storedTime(t0)}

	claim := func(t *testing.T, s admin.Store, key string, h admin.RequestHash, now time.Time) (*admin.IdempotencyRecord, bool) {
		t.Helper()
		rec, claimed, err := s.ClaimIdempotencyKey(ctx, key, h, now)
		if err != nil {
			t.Fatalf("ClaimIdempotencyKey %q: %v", key, err)
		}
		if rec == nil {
			t.Fatalf("ClaimIdempotencyKey %q returned no record", key)
		}
		if rec.CreatedAt.Location() != time.UTC {
			t.Errorf("ClaimIdempotencyKey %q: CreatedAt location = %v, want UTC", key, rec.CreatedAt.Location())
		}
		return rec, claimed
	}

	t.Run("ClaimCompleteReplay", func(t *testing.T) {
		s := newStore(t)
		rec, claimed := claim(t, s, "key-1", h1, t0)
		if !claimed {
			t.Fatal("first claim: claimed = false")
		}
		if d := cmp.Diff(want0, *rec); d != "" {
			t.Errorf("first claim (-want +got):\n%s", d)
		}
		// A retry, with the same or another request, finds the claim.
		for _, h := range []admin.RequestHash{h1, h2} {
			rec, claimed := claim(t, s, "key-1", h, t0.Add(time.Minute))
			if claimed {
				t.Errorf("second claim (request %x…): claimed = true", h[:4])
			}
			if d := cmp.Diff(want0, *rec); d != "" {
				t.Errorf("second claim (-want +got):\n%s", d)
			}
		}
		if err := s.CompleteIdempotencyKey(ctx, "key-1", ""); !errors.Is(err, admin.ErrEmptyTenant) {
			t.Errorf("CompleteIdempotencyKey with an empty tenant id: err = %v, want ErrEmptyTenant", err)
		}
		if err := s.CompleteIdempotencyKey(ctx, "key-1", tenantA); err != nil {
			t.Fatalf("CompleteIdempotencyKey: %v", err)
		}
		rec, claimed = claim(t, s, "key-1", h1, t0.Add(time.Hour))
		want := want0
		want.Tenant = tenantA
		if claimed {
			t.Error("claim after complete: claimed = true")
		}
		if d := cmp.Diff(want, *rec); d != "" {
			t.Errorf("claim after complete (-want +got):\n%s", d)
		}
		// A completed key is not released.
		if err := s.ReleaseIdempotencyKey(ctx, "key-1"); err != nil {
			t.Fatalf("ReleaseIdempotencyKey: %v", err)
		}
		if rec, claimed := claim(t, s, "key-1", h2, t0.Add(time.Hour)); claimed || rec.Tenant != tenantA {
			t.Errorf("after releasing a completed key: claim = %+v, %v; want the completed record", rec, claimed)
		}
		if err := s.CompleteIdempotencyKey(ctx, "no-such-key", tenantA); !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("CompleteIdempotencyKey of an unknown key: err = %v, want ErrNotFound", err)
		}
		if err := s.ReleaseIdempotencyKey(ctx, "no-such-key"); err != nil {
			t.Errorf("ReleaseIdempotencyKey of an unknown key: %v", err)
		}
		if _, claimed := claim(t, s, "no-such-key", h1, t0); !claimed {
			t.Error("a key that Complete and Release did not find was recorded by them")
		}
	})

	t.Run("Release", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, "key-1", h1, t0)
		claim(t, s, "key-2", h1, t0)
		if err := s.ReleaseIdempotencyKey(ctx, "key-1"); err != nil {
			t.Fatalf("ReleaseIdempotencyKey: %v", err)
		}
		rec, claimed := claim(t, s, "key-1", h2, t0.Add(time.Minute))
		if !claimed || rec.Request != h2 || !rec.CreatedAt.Equal(storedTime(t0.Add(time.Minute))) || rec.Tenant != "" {
			t.Errorf("claim after release = %+v, %v; want a new claim", rec, claimed)
		}
		if _, claimed := claim(t, s, "key-2", h2, t0.Add(time.Minute)); claimed {
			t.Error("releasing key-1 released key-2")
		}
		if err := s.CompleteIdempotencyKey(ctx, "key-1", tenantB); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, "key-1", h1, t0)
		if err := s.CompleteIdempotencyKey(ctx, "key-1", tenantA); err != nil {
			t.Fatal(err)
		}
		// Remembered for exactly IdempotencyTTL…
		rec, claimed := claim(t, s, "key-1", h2, t0.Add(admin.IdempotencyTTL))
		if claimed || rec.Tenant != tenantA || rec.Request != h1 {
			t.Errorf("claim at the TTL = %+v, %v; want the old record", rec, claimed)
		}
		// …and a microsecond later it is a new request: the old record is
		// replaced.
		later := t0.Add(admin.IdempotencyTTL + time.Microsecond)
		rec, claimed = claim(t, s, "key-1", h2, later)
		want := admin.IdempotencyRecord{Key: "key-1", Request: h2, CreatedAt: storedTime(later)}
		if !claimed {
			t.Error("claim after the TTL: claimed = false")
		}
		if d := cmp.Diff(want, *rec); d != "" {
			t.Errorf("claim after the TTL (-want +got):\n%s", d)
		}
		rec, claimed = claim(t, s, "key-1", h1, later.Add(time.Second))
		if claimed {
			t.Error("claim of a renewed key: claimed = true")
		}
		if d := cmp.Diff(want, *rec); d != "" {
			t.Errorf("the renewed key (-want +got):\n%s", d)
		}
		// The renewed claim is in progress again, so it can be released.
		if err := s.ReleaseIdempotencyKey(ctx, "key-1"); err != nil {
			t.Fatal(err)
		}
		if _, claimed := claim(t, s, "key-1", h1, later.Add(time.Second)); !claimed {
			t.Error("the renewed claim was not released")
		}
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		s := newStore(t)
		const n = 24
		run := func(key string, now time.Time) {
			recs := make([]*admin.IdempotencyRecord, n)
			won := make([]bool, n)
			hashes := make([]admin.RequestHash, n)
			for i := range n {
				hashes[i] = sha256.Sum256(fmt.Appendf(nil, "request %d at %v", i, now))
			}
			errs := concurrently(n, func(i int) (err error) {
				recs[i], won[i], err = s.ClaimIdempotencyKey(ctx, key, hashes[i], now)
				return err
			})
			wins, winner := 0, admin.RequestHash{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("claim %d: %v", i, errs[i])
				}
				if won[i] {
					wins++
					winner = hashes[i]
				}
			}
			if wins != 1 {
				t.Fatalf("%d of %d concurrent claims of %q won, want exactly 1", wins, n, key)
			}
			for i := range n {
				if recs[i].Request != winner {
					t.Errorf("claim %d (won %v) returned request %x…, the winner's is %x…", i, won[i], recs[i].Request[:4], winner[:4])
				}
			}
		}
		run("contested", t0)
		// An expired key is contested the same way.
		run("contested", t0.Add(admin.IdempotencyTTL+time.Second))
	})

	t.Run("HostileKeys", func(t *testing.T) {
		s := newStore(t)
		for i, key := range HostileStrings {
			h := admin.RequestHash(sha256.Sum256([]byte(key)))
			rec, claimed := claim(t, s, key, h, t0)
			if !claimed || rec.Key != key {
				t.Fatalf("claim %q = %+v, %v; want a new claim of that key", key, rec, claimed)
			}
			if i%2 == 0 {
				if err := s.CompleteIdempotencyKey(ctx, key, tenantA); err != nil {
					t.Fatal(err)
				}
			} else if err := s.ReleaseIdempotencyKey(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		for i, key := range HostileStrings {
			rec, claimed := claim(t, s, key, h1, t0.Add(time.Minute))
			if i%2 == 0 && (claimed || rec.Key != key || rec.Tenant != tenantA || rec.Request != admin.RequestHash(sha256.Sum256([]byte(key)))) {
				t.Errorf("claim of completed %q = %+v, %v", key, rec, claimed)
			}
			if i%2 == 1 && (!claimed || rec.Key != key || rec.Request != h1) {
				t.Errorf("claim of released %q = %+v, %v", key, rec, claimed)
			}
		}
	})
}
