package registry_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryStoreContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return registry.NewMemoryStore() })
}

const iss = "https://idp.example.com/"

// countingStore counts store lookups by key and can hold them (after
// reading) until released, or fail them.
type countingStore struct {
	registry.Store
	gets atomic.Int64
	mu   sync.Mutex
	gate chan struct{} // non-nil: Get waits for it to close after reading
	fail error         // non-nil: Get returns it

	listGate chan struct{} // non-nil: List waits for it to close after reading
	listing  atomic.Bool   // a List is waiting at listGate
}

func (s *countingStore) Get(ctx context.Context, issuer, externalID string) (*registry.Tenant, error) {
	s.gets.Add(1)
	s.mu.Lock()
	gate, fail := s.gate, s.fail
	s.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	t, err := s.Store.Get(ctx, issuer, externalID)
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return t, err
}

// List waits, after reading, for listGate to close if it is set.
func (s *countingStore) List(ctx context.Context, after tenant.ID, limit int) ([]*registry.Tenant, error) {
	page, err := s.Store.List(ctx, after, limit)
	s.mu.Lock()
	gate := s.listGate
	s.mu.Unlock()
	if gate != nil {
		s.listing.Store(true)
		<-gate
	}
	return page, err
}

func (s *countingStore) holdList() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.listGate = g
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.listGate = nil
		s.mu.Unlock()
		close(g)
	}
}

func (s *countingStore) hold() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(g)
	}
}

type env struct {
	reg   *registry.Registry
	store *countingStore
	mem   *registry.MemoryStore
	clock *testenv.Clock
}

var epoch = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T, o *registry.Options) *env {
	t.Helper()
	mem := registry.NewMemoryStore()
	cs := &countingStore{Store: mem}
	c := testenv.NewClock(epoch)
	var opts registry.Options
	if o != nil {
		opts = *o
	}
	opts.Now = c.Now
	return &env{reg: registry.New(cs, &opts), store: cs, mem: mem, clock: c}
}

// add registers a tenant through the registry.
func (e *env) add(t *testing.T, ext string, mod func(*registry.Tenant)) *registry.Tenant {
	t.Helper()
	rec := registry.Tenant{Issuer: iss, ExternalID: ext, Name: "Tenant " + ext}
	if mod != nil {
		mod(&rec)
	}
	got, err := e.reg.Add(context.Background(), rec)
	if err != nil {
		t.Fatalf("Add %q: %v", ext, err)
	}
	return got
}

// direct changes a record in the store, behind the registry's back (as
// another process would).
func (e *env) direct(t *testing.T, id tenant.ID, fn func(*registry.Tenant)) {
	t.Helper()
	ctx := context.Background()
	rec, err := e.mem.GetByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	fn(rec)
	if err := e.mem.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

func TestResolveStatus(t *testing.T) {
	t.Parallel()
	trialEnd := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		mod     func(*registry.Tenant)
		advance time.Duration
		want    error
		wantMsg string
	}{
		{name: "active"},
		{name: "suspended", mod: func(r *registry.Tenant) { r.Status = registry.StatusSuspended }, want: registry.ErrSuspended},
		{name: "trial valid", mod: func(r *registry.Tenant) { r.Status, r.TrialEndsAt = registry.StatusTrial, trialEnd }},
		{name: "trial expired", mod: func(r *registry.Tenant) { r.Status, r.TrialEndsAt = registry.StatusTrial, epoch.Add(-time.Hour) },
			want: registry.ErrTrialExpired, wantMsg: "tenant's trial ended on 2026-09-01"},
		{name: "trial ends exactly now", mod: func(r *registry.Tenant) { r.Status, r.TrialEndsAt = registry.StatusTrial, epoch },
			want: registry.ErrTrialExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, nil)
			rec := e.add(t, "org_1", tc.mod)
			for range 2 { // miss, then hit: same answer
				got, err := e.reg.Resolve(context.Background(), iss, "org_1")
				if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Fatalf("Resolve: err = %v, want %v", err, tc.want)
				}
				if got == nil || got.ID != rec.ID {
					t.Fatalf("Resolve returned %v, want the record %s (also with a status error)", got, rec.ID)
				}
				if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("message %q does not contain %q", err, tc.wantMsg)
				}
			}
			for _, other := range []error{registry.ErrSuspended, registry.ErrTrialExpired, registry.ErrUnknownTenant} {
				if _, err := e.reg.Resolve(context.Background(), iss, "org_1"); other != tc.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}
}

func TestResolveUnknown(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.add(t, "org_known", nil)
	got, err := e.reg.Resolve(context.Background(), iss, "org_unknown")
	if !errors.Is(err, registry.ErrUnknownTenant) || got != nil {
		t.Fatalf("Resolve unknown = %v, %v; want nil, ErrUnknownTenant", got, err)
	}
	if strings.Contains(err.Error(), "org_known") || strings.Contains(err.Error(), "org_unknown") {
		t.Errorf("message %q names a tenant", err)
	}
	// Same external id, other issuer: unknown.
	if _, err := e.reg.Resolve(context.Background(), "https://other.example.com/", "org_known"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Errorf("known external id under another issuer: err = %v, want ErrUnknownTenant", err)
	}
}

func TestTrialExpiresWhileCached(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{TTL: time.Hour})
	e.add(t, "org_trial", func(r *registry.Tenant) { r.Status, r.TrialEndsAt = registry.StatusTrial, epoch.Add(time.Minute) })
	if _, err := e.reg.Resolve(context.Background(), iss, "org_trial"); err != nil {
		t.Fatalf("before the end: %v", err)
	}
	e.clock.Advance(2 * time.Minute)
	_, err := e.reg.Resolve(context.Background(), iss, "org_trial")
	if !errors.Is(err, registry.ErrTrialExpired) {
		t.Fatalf("after the end: err = %v, want ErrTrialExpired", err)
	}
	if n := e.store.gets.Load(); n != 1 {
		t.Errorf("store Gets = %d, want 1 (expiry decided from the cached record)", n)
	}
}

func TestNegativeCache(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{NegativeTTL: 5 * time.Second})
	ctx := context.Background()
	for range 10 {
		if _, err := e.reg.Resolve(ctx, iss, "org_flood"); !errors.Is(err, registry.ErrUnknownTenant) {
			t.Fatalf("err = %v, want ErrUnknownTenant", err)
		}
	}
	if n := e.store.gets.Load(); n != 1 {
		t.Errorf("store Gets for 10 unknown lookups = %d, want 1", n)
	}
	if st := e.reg.Stats(); st.NegativeHits != 9 || st.Misses != 1 {
		t.Errorf("Stats = %+v, want 9 negative hits and 1 miss", st)
	}
	// Registered by another process: still unknown until NegativeTTL ends.
	rec := registrytest.Record(iss, "org_flood")
	rec.Status = registry.StatusActive
	if err := e.mem.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(4 * time.Second)
	if _, err := e.reg.Resolve(ctx, iss, "org_flood"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Errorf("within NegativeTTL: err = %v, want ErrUnknownTenant (cached)", err)
	}
	e.clock.Advance(2 * time.Second)
	if got, err := e.reg.Resolve(ctx, iss, "org_flood"); err != nil || got.ID != rec.ID {
		t.Errorf("after NegativeTTL: %v, %v; want the record", got, err)
	}
	if n := e.store.gets.Load(); n != 2 {
		t.Errorf("store Gets = %d, want 2", n)
	}
}

func TestAddForgetsNegativeAnswer(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{NegativeTTL: time.Hour})
	ctx := context.Background()
	if _, err := e.reg.Resolve(ctx, iss, "org_new"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Fatal(err)
	}
	rec := e.add(t, "org_new", nil)
	if got, err := e.reg.Resolve(ctx, iss, "org_new"); err != nil || got.ID != rec.ID {
		t.Errorf("after Add: %v, %v; want the new record at once", got, err)
	}
}

func TestJunkExternalIDsNeverReachTheStore(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for _, ext := range []string{"", "a\x00b", "line\nbreak", "\xff\xfe", strings.Repeat("x", registry.MaxExternalIDLen+1)} {
		if _, err := e.reg.Resolve(context.Background(), iss, ext); !errors.Is(err, registry.ErrUnknownTenant) {
			t.Errorf("Resolve %q: err = %v, want ErrUnknownTenant", ext, err)
		}
	}
	if _, err := e.reg.Resolve(context.Background(), "", "org_1"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Errorf("empty issuer: err = %v, want ErrUnknownTenant", err)
	}
	if n := e.store.gets.Load(); n != 0 {
		t.Errorf("store Gets = %d, want 0", n)
	}
	if n := e.reg.Stats().Entries; n != 0 {
		t.Errorf("cache entries = %d, want 0", n)
	}
}

func TestTTLPicksUpDirectChange(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{TTL: 30 * time.Second})
	ctx := context.Background()
	rec := e.add(t, "org_ttl", nil)
	if _, err := e.reg.Resolve(ctx, iss, "org_ttl"); err != nil {
		t.Fatal(err)
	}
	e.direct(t, rec.ID, func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
	e.clock.Advance(29 * time.Second)
	if _, err := e.reg.Resolve(ctx, iss, "org_ttl"); err != nil {
		t.Errorf("within TTL: err = %v, want nil (cached)", err)
	}
	e.clock.Advance(2 * time.Second)
	if _, err := e.reg.Resolve(ctx, iss, "org_ttl"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("after TTL: err = %v, want ErrSuspended", err)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{TTL: time.Hour, NegativeTTL: time.Hour})
	ctx := context.Background()
	a := e.add(t, "org_a", nil)
	b := e.add(t, "org_b", nil)
	for _, ext := range []string{"org_a", "org_b"} {
		if _, err := e.reg.Resolve(ctx, iss, ext); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.reg.Resolve(ctx, iss, "org_c"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Fatal(err)
	}
	// Another process suspends a, deletes b and registers c.
	e.direct(t, a.ID, func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
	if err := e.mem.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	c := registrytest.Record(iss, "org_c")
	c.Status = registry.StatusActive
	if err := e.mem.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	n, err := e.reg.Refresh(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Refresh = %d, %v; want 2, nil", n, err)
	}
	gets := e.store.gets.Load()
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("a after Refresh: err = %v, want ErrSuspended", err)
	}
	if got, err := e.reg.Resolve(ctx, iss, "org_c"); err != nil || got.ID != c.ID {
		t.Errorf("c after Refresh: %v, %v; want the record", got, err)
	}
	if d := e.store.gets.Load() - gets; d != 0 {
		t.Errorf("%d store Gets after Refresh, want 0 (served from the reloaded cache)", d)
	}
	if _, err := e.reg.Resolve(ctx, iss, "org_b"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Errorf("b after Refresh: err = %v, want ErrUnknownTenant", err)
	}
}

// A change made through the Registry while Refresh reads the store is not
// undone by Refresh's older snapshot.
func TestUpdateDuringRefresh(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{TTL: time.Hour})
	ctx := context.Background()
	rec := e.add(t, "org_a", nil)
	e.add(t, "org_b", nil)
	release := e.store.holdList()
	done := make(chan error, 1)
	go func() {
		_, err := e.reg.Refresh(ctx) // reads both as active, then waits
		done <- err
	}()
	for !e.store.listing.Load() {
		time.Sleep(time.Millisecond)
	}
	if _, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusSuspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("after Update during Refresh: err = %v, want ErrSuspended", err)
	}
	gets := e.store.gets.Load()
	if _, err := e.reg.Resolve(ctx, iss, "org_b"); err != nil {
		t.Errorf("org_b: %v", err)
	}
	if e.store.gets.Load() != gets {
		t.Error("org_b was not installed by Refresh")
	}
}

func TestRefreshStoreError(t *testing.T) {
	t.Parallel()
	mem := registry.NewMemoryStore()
	fail := &failingList{Store: mem, err: errors.New("disk on fire")}
	reg := registry.New(fail, nil)
	ctx := context.Background()
	if _, err := reg.Add(ctx, registry.Tenant{Issuer: iss, ExternalID: "org_a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Resolve(ctx, iss, "org_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Refresh(ctx); !errors.Is(err, fail.err) {
		t.Errorf("Refresh over a failing store: err = %v, want it wrapped", err)
	}
	if n := reg.Stats().Entries; n != 1 {
		t.Errorf("cache entries after a failed Refresh = %d, want 1 (left as it was)", n)
	}
	// A later invalidation still works (the failed Refresh ended cleanly).
	rec, _ := reg.Lookup(ctx, iss, "org_a")
	if _, err := reg.Update(ctx, rec.ID, func(r *registry.Tenant) error { r.Status = registry.StatusSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Resolve(ctx, iss, "org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("err = %v, want ErrSuspended", err)
	}
}

type failingList struct {
	registry.Store
	err error
}

func (f *failingList) List(context.Context, tenant.ID, int) ([]*registry.Tenant, error) {
	return nil, f.err
}

func TestRefreshBoundedByMaxEntries(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{MaxEntries: 700})
	ctx := context.Background()
	for i := range 1200 {
		r := registrytest.Record(iss, fmt.Sprintf("org_%d", i))
		r.Status = registry.StatusActive
		if err := e.mem.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.reg.Refresh(ctx)
	if err != nil || n != 700 {
		t.Fatalf("Refresh = %d, %v; want 700 (MaxEntries)", n, err)
	}
	if got := e.reg.Stats().Entries; got != 700 {
		t.Errorf("entries = %d, want 700", got)
	}
	all, err := e.reg.List(ctx)
	if err != nil || len(all) != 1200 {
		t.Errorf("List = %d records, %v; want 1200 (paged)", len(all), err)
	}
}

func TestMaxEntriesBound(t *testing.T) {
	t.Parallel()
	const max = 50
	e := setup(t, &registry.Options{MaxEntries: max})
	ctx := context.Background()
	recs := make([]*registry.Tenant, 300)
	for i := range recs {
		recs[i] = e.add(t, fmt.Sprintf("org_%d", i), nil)
	}
	for round := range 2 {
		for i, want := range recs {
			got, err := e.reg.Resolve(ctx, iss, want.ExternalID)
			if err != nil || got.ID != want.ID {
				t.Fatalf("round %d: Resolve %s = %v, %v", round, want.ExternalID, got, err)
			}
			if _, err := e.reg.Resolve(ctx, iss, fmt.Sprintf("unknown_%d", i)); !errors.Is(err, registry.ErrUnknownTenant) {
				t.Fatal(err)
			}
			if n := e.reg.Stats().Entries; n > max {
				t.Fatalf("cache holds %d entries, bound is %d", n, max)
			}
		}
	}
	st := e.reg.Stats()
	if st.Evictions == 0 || st.Entries == 0 {
		t.Errorf("Stats = %+v, want evictions and a non-empty cache", st)
	}
}

func TestMaxEntriesBoundConcurrent(t *testing.T) {
	t.Parallel()
	const max = 64
	e := setup(t, &registry.Options{MaxEntries: max})
	ctx := context.Background()
	for i := range 200 {
		e.add(t, fmt.Sprintf("org_%d", i), nil)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 400 {
				ext := fmt.Sprintf("org_%d", (i*7+g*13)%200)
				if got, err := e.reg.Resolve(ctx, iss, ext); err != nil || got.ExternalID != ext {
					t.Errorf("Resolve %s = %v, %v", ext, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := e.reg.Stats().Entries; n > max {
		t.Errorf("cache holds %d entries, bound is %d", n, max)
	}
}

func TestSingleflight(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	rec := e.add(t, "org_hot", nil)
	release := e.store.hold()
	const n = 100
	results := make([]*registry.Tenant, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = e.reg.Resolve(ctx, iss, "org_hot") })
	}
	for e.reg.Waiters(iss, "org_hot") < n-1 {
		if got := e.store.gets.Load(); got > 1 {
			release()
			wg.Wait()
			t.Fatalf("concurrent misses made %d store Gets, want 1", got)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	if got := e.store.gets.Load(); got != 1 {
		t.Errorf("%d concurrent misses made %d store Gets, want 1", n, got)
	}
	for i := range n {
		if errs[i] != nil || results[i] == nil || results[i].ID != rec.ID || results[i] != results[0] {
			t.Fatalf("caller %d: %v, %v; want the one shared record", i, results[i], errs[i])
		}
	}
}

func TestSingleflightLeaderCancelled(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	rec := e.add(t, "org_x", nil)
	release := e.store.hold()
	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := e.reg.Resolve(leaderCtx, iss, "org_x")
		leaderErr <- err
	}()
	for e.store.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	waiter := make(chan *registry.Tenant, 1)
	go func() {
		got, err := e.reg.Resolve(context.Background(), iss, "org_x")
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		waiter <- got
	}()
	for e.reg.Waiters(iss, "org_x") < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("leader: err = %v, want context.Canceled", err)
	}
	release()
	if got := <-waiter; got == nil || got.ID != rec.ID {
		t.Errorf("waiter got %v; want the record despite the leader's cancellation", got)
	}
}

func TestStoreErrorIsNotCached(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	e.add(t, "org_a", nil)
	boom := errors.New("connection refused")
	e.store.fail = boom
	for range 2 {
		got, err := e.reg.Resolve(ctx, iss, "org_a")
		if !errors.Is(err, boom) || errors.Is(err, registry.ErrUnknownTenant) || got != nil {
			t.Fatalf("Resolve with a failing store = %v, %v; want the store error", got, err)
		}
	}
	if n := e.store.gets.Load(); n != 2 {
		t.Errorf("store Gets = %d, want 2 (errors are not cached)", n)
	}
	e.store.fail = nil
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

func TestUpdateAndDeleteInvalidate(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{TTL: time.Hour, NegativeTTL: time.Hour})
	ctx := context.Background()
	rec := e.add(t, "org_a", nil)
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusSuspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("after Update: err = %v, want ErrSuspended at once", err)
	}
	if _, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusActive
		r.Flags = map[string]bool{"beta": true}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.reg.Resolve(ctx, iss, "org_a"); err != nil || !got.Flags["beta"] {
		t.Errorf("after second Update: %v, %v; want active with flag beta", got, err)
	}
	if err := e.reg.Delete(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Errorf("after Delete: err = %v, want ErrUnknownTenant at once", err)
	}
	if err := e.reg.Delete(ctx, rec.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
}

// An Update while a lookup of the same tenant is in flight: the lookup's
// older answer must not be cached over the change.
func TestUpdateDuringLookupInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t, &registry.Options{TTL: time.Hour})
	ctx := context.Background()
	rec := e.add(t, "org_a", nil)
	release := e.store.hold()
	done := make(chan error, 1)
	go func() {
		_, err := e.reg.Resolve(ctx, iss, "org_a") // reads "active", then waits
		done <- err
	}()
	for e.store.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusSuspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("in-flight Resolve: %v (it read the record before the Update)", err)
	}
	if _, err := e.reg.Resolve(ctx, iss, "org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("after Update: err = %v, want ErrSuspended (stale lookup must not be cached)", err)
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	rec := e.add(t, "org_a", nil)
	if !rec.ID.Valid() || rec.Status != registry.StatusActive || !rec.CreatedAt.Equal(epoch) || !rec.UpdatedAt.Equal(epoch) {
		t.Errorf("Add = %+v; want a valid id, status active, timestamps from the clock", rec)
	}
	stored, err := e.reg.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := registrytest.Diff(rec, stored); d != "" {
		t.Errorf("stored record differs (-added +stored):\n%s", d)
	}
	_, err = e.reg.Add(ctx, registry.Tenant{Issuer: iss, ExternalID: "org_a"})
	if !errors.Is(err, registry.ErrExists) || !strings.Contains(err.Error(), "org_a") {
		t.Errorf("duplicate Add: err = %v, want ErrExists naming org_a", err)
	}
	_, err = e.reg.Add(ctx, registry.Tenant{ID: tenant.NewID(), Issuer: iss, ExternalID: "org_b"})
	if !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Add with an ID: err = %v, want ErrInvalid", err)
	}
	// Two tenants with different external ids get different internal ids.
	b := e.add(t, "org_b", nil)
	if b.ID == rec.ID {
		t.Error("two tenants share an id")
	}
	// Lookup is uncached and returns the caller's own copy.
	got, err := e.reg.Lookup(ctx, iss, "org_b")
	if err != nil || got.ID != b.ID {
		t.Fatalf("Lookup = %v, %v", got, err)
	}
	got.Name = "changed"
	if again, _ := e.reg.Lookup(ctx, iss, "org_b"); again.Name == "changed" {
		t.Error("changing a looked-up record changed the stored one")
	}
	if _, err := e.reg.Lookup(ctx, iss, "org_zzz"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Lookup unknown: err = %v, want ErrNotFound", err)
	}
	if _, err := e.reg.Get(ctx, "not-an-id"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get malformed id: err = %v, want ErrNotFound", err)
	}
}

func TestAddInvalidReportsEverything(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	_, err := e.reg.Add(context.Background(), registry.Tenant{
		Status:       "deleted",
		RateLimit:    -1,
		RateBurst:    -2,
		AllowedTools: []string{"ok_tool", "bad tool"},
		Flags:        map[string]bool{"": true},
		Config:       map[string]string{strings.Repeat("k", 129): "v"},
	})
	var ve *registry.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("err = %v, want a *ValidationError matching ErrInvalid", err)
	}
	for _, field := range []string{"issuer:", "external_id:", "status:", "rate_limit:", "rate_burst:", "allowed_tools[1]:", "flags:", "config:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if n := len(ve.Problems); n != 8 {
		t.Errorf("%d problems, want 8: %q", n, ve.Problems)
	}
	if all, _ := e.reg.List(context.Background()); len(all) != 0 {
		t.Errorf("an invalid Add stored %d records", len(all))
	}
}

func TestUpdateRules(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	rec := e.add(t, "org_a", nil)
	e.clock.Advance(time.Minute)

	changes := map[string]func(*registry.Tenant){
		"id":          func(r *registry.Tenant) { r.ID = tenant.NewID() },
		"issuer":      func(r *registry.Tenant) { r.Issuer = "https://evil.example.com/" },
		"external_id": func(r *registry.Tenant) { r.ExternalID = "org_b" },
		"created_at":  func(r *registry.Tenant) { r.CreatedAt = r.CreatedAt.Add(-time.Hour) },
		"status":      func(r *registry.Tenant) { r.Status = registry.StatusTrial }, // no trial end
	}
	for field, change := range changes {
		_, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error { change(r); return nil })
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("changing %s: err = %v, want ErrInvalid naming it", field, err)
		}
	}
	oops := errors.New("changed my mind")
	if _, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error { r.Name = "X"; return oops }); !errors.Is(err, oops) {
		t.Errorf("fn error: err = %v, want it returned", err)
	}
	if got, _ := e.reg.Get(ctx, rec.ID); registrytest.Diff(rec, got) != "" {
		t.Errorf("refused updates changed the record: %s", registrytest.Diff(rec, got))
	}
	upd, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error { r.Name = "Renamed"; return nil })
	if err != nil || upd.Name != "Renamed" || !upd.UpdatedAt.Equal(epoch.Add(time.Minute)) || !upd.CreatedAt.Equal(rec.CreatedAt) {
		t.Errorf("Update = %+v, %v; want renamed with UpdatedAt from the clock", upd, err)
	}
	if _, err := e.reg.Update(ctx, tenant.NewID(), func(*registry.Tenant) error { return nil }); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Update unknown id: err = %v, want ErrNotFound", err)
	}
}

// Concurrent read-modify-write through one Registry loses no update.
func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	rec := e.add(t, "org_a", nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.reg.Update(ctx, rec.ID, func(r *registry.Tenant) error {
				r.RateLimit++
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _ := e.reg.Get(ctx, rec.ID); got.RateLimit != 20 {
		t.Errorf("RateLimit = %d after 20 increments, want 20", got.RateLimit)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	e.add(t, "org_a", nil)
	for range 3 {
		e.reg.Resolve(ctx, iss, "org_a")
	}
	e.reg.Resolve(ctx, iss, "org_none")
	e.reg.Resolve(ctx, iss, "org_none")
	want := registry.Stats{Entries: 2, Hits: 2, Misses: 2, NegativeHits: 1}
	if got := e.reg.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}
