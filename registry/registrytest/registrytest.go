// Package registrytest is the contract suite every registry.Store must
// pass. A backend's test calls Run with a constructor that returns a
// fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		registrytest.Run(t, func(t *testing.T) registry.Store {
//			s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "registry.db"), nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// HostileExternalIDs are external ids that naive storage naming or
// matching would confuse with one another (sanitising, case folding, LIKE
// wildcards, SQL injection). Each must be its own tenant.
var HostileExternalIDs = []string{
	"a/b", "a", "a_", "A", "a%", "tenant-a", "tenanta", "org_ü", "org_u\u0308",
	"' OR 1=1 --", `"; DROP TABLE tenants; --`, "../a", " a", "a ",
}

// timeClose compares times to the second, which every backend must keep
// (ours keep microseconds or better).
var timeClose = cmp.Comparer(func(a, b time.Time) bool {
	d := a.Sub(b)
	return a.IsZero() == b.IsZero() && d < time.Second && d > -time.Second
})

// Diff reports the difference between two records as the contract sees
// it: times to the second, nil and empty lists and maps alike.
func Diff(want, got *registry.Tenant) string {
	return cmp.Diff(want, got, timeClose, cmpopts.EquateEmpty())
}

// Record returns a valid record with every field set, under issuer and
// externalID, with a fresh ID.
func Record(issuer, externalID string) *registry.Tenant {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &registry.Tenant{
		ID:           tenant.NewID(),
		Issuer:       issuer,
		ExternalID:   externalID,
		Name:         "Tenant " + externalID,
		Status:       registry.StatusTrial,
		TrialEndsAt:  now.Add(14 * 24 * time.Hour),
		RateLimit:    600,
		RateBurst:    50,
		AllowedTools: []string{"documents.list", "documents_get", "search-v2"},
		Flags:        map[string]bool{"beta": true, "legacy": false},
		Config:       map[string]string{"region": "eu-west-1", "quota": "10GiB", "note": `quotes " and \ and ünïcödé`},
		Lifecycle: registry.Lifecycle{
			Operation: "purge", Step: "blobs", Archive: "archives/" + externalID + ".tar.gz",
			ArchivedAt: now.Add(-time.Minute), PurgeAfter: now.Add(30 * 24 * time.Hour),
		},
		CreatedAt: now.Add(-time.Hour),
		UpdatedAt: now,
	}
}

const issuerA, issuerB = "https://a.example.com/", "https://b.example.com/"

// Run runs the contract suite. newStore must return a fresh, empty store
// for each subtest and arrange for its cleanup.
func Run(t *testing.T, newStore func(t *testing.T) registry.Store) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		want := Record(issuerA, "org_roundtrip")
		if err := s.Create(ctx, want); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := s.Get(ctx, issuerA, "org_roundtrip")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if d := Diff(want, got); d != "" {
			t.Errorf("Get after Create (-want +got):\n%s", d)
		}
		for name, tm := range map[string]time.Time{"TrialEndsAt": got.TrialEndsAt, "CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt} {
			if tm.Location() != time.UTC {
				t.Errorf("%s location = %v, want UTC", name, tm.Location())
			}
		}
		byID, err := s.GetByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetByID: %v", err)
		}
		if d := Diff(want, byID); d != "" {
			t.Errorf("GetByID after Create (-want +got):\n%s", d)
		}
		// Returned records are the caller's: changing one changes nothing stored.
		got.Flags["beta"] = false
		got.AllowedTools[0] = "changed"
		again, _ := s.GetByID(ctx, want.ID)
		if d := Diff(want, again); d != "" {
			t.Errorf("stored record changed through a returned one (-want +got):\n%s", d)
		}
	})

	t.Run("MinimalRecord", func(t *testing.T) {
		s := newStore(t)
		now := time.Now().UTC()
		want := &registry.Tenant{ID: tenant.NewID(), Issuer: issuerA, ExternalID: "x", Status: registry.StatusActive, CreatedAt: now, UpdatedAt: now}
		if err := s.Create(ctx, want); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := s.GetByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetByID: %v", err)
		}
		if d := Diff(want, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
		if !got.TrialEndsAt.IsZero() {
			t.Errorf("TrialEndsAt = %v, want zero", got.TrialEndsAt)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		orig := Record(issuerA, "org_update")
		if err := s.Create(ctx, orig); err != nil {
			t.Fatal(err)
		}
		upd := orig.Clone()
		upd.Name = "Renamed"
		upd.Status = registry.StatusSuspended
		upd.TrialEndsAt = time.Time{}
		upd.RateLimit, upd.RateBurst = 0, 7
		upd.AllowedTools = nil
		upd.Flags = map[string]bool{"new": true}
		upd.Config = nil
		upd.UpdatedAt = orig.UpdatedAt.Add(time.Minute)
		want := upd.Clone()
		// Immutable fields in the argument are ignored.
		upd.Issuer, upd.ExternalID, upd.CreatedAt = issuerB, "org_other", orig.CreatedAt.Add(-time.Hour)
		if err := s.Update(ctx, upd); err != nil {
			t.Fatalf("Update: %v", err)
		}
		got, err := s.GetByID(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff(want, got); d != "" {
			t.Errorf("after Update (-want +got):\n%s", d)
		}
		if _, err := s.Get(ctx, issuerB, "org_other"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get by the key passed to Update: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, issuerA, "org_update"); err != nil {
			t.Errorf("Get by the original key: %v", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		a, b := Record(issuerA, "org_del"), Record(issuerA, "org_keep")
		for _, r := range []*registry.Tenant{a, b} {
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, a.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx, issuerA, "org_del"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetByID(ctx, a.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("GetByID after Delete: err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, a.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("second Delete: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetByID(ctx, b.ID); err != nil {
			t.Errorf("the other tenant: %v", err)
		}
		// The key is free again.
		if err := s.Create(ctx, Record(issuerA, "org_del")); err != nil {
			t.Errorf("Create after Delete: %v", err)
		}
	})

	t.Run("UnknownID", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, Record(issuerA, "org_1")); err != nil {
			t.Fatal(err)
		}
		ghost := Record(issuerA, "org_ghost")
		if _, err := s.GetByID(ctx, ghost.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("GetByID: err = %v, want ErrNotFound", err)
		}
		if err := s.Update(ctx, ghost); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Update: err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, ghost.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Delete: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, issuerA, "org_ghost"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, issuerB, "org_1"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get under another issuer: err = %v, want ErrNotFound", err)
		}
		if all := list(t, s, 0); len(all) != 1 {
			t.Errorf("List has %d records after failed Update, want 1", len(all))
		}
	})

	t.Run("UniquePerIssuer", func(t *testing.T) {
		s := newStore(t)
		first := Record(issuerA, "org_same")
		if err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		dup := Record(issuerA, "org_same")
		dup.Name = "Impostor"
		err := s.Create(ctx, dup)
		if !errors.Is(err, registry.ErrExists) {
			t.Fatalf("second Create of the same key: err = %v, want ErrExists", err)
		}
		if msg := err.Error(); !strings.Contains(msg, issuerA) || !strings.Contains(msg, "org_same") {
			t.Errorf("ErrExists message %q does not name the issuer and external id", msg)
		}
		// A failed Create leaves nothing.
		if _, err := s.GetByID(ctx, dup.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("GetByID of the refused record: err = %v, want ErrNotFound", err)
		}
		got, err := s.Get(ctx, issuerA, "org_same")
		if err != nil || got.ID != first.ID || got.Name != first.Name {
			t.Errorf("original after refused duplicate = %+v, %v; want it unchanged", got, err)
		}
		// The same external id under another issuer is another tenant.
		other := Record(issuerB, "org_same")
		if err := s.Create(ctx, other); err != nil {
			t.Fatalf("Create under another issuer: %v", err)
		}
		gotB, err := s.Get(ctx, issuerB, "org_same")
		if err != nil || gotB.ID != other.ID {
			t.Errorf("Get under issuer B = %v, %v; want %s", gotB, err, other.ID)
		}
		gotA, err := s.Get(ctx, issuerA, "org_same")
		if err != nil || gotA.ID != first.ID {
			t.Errorf("Get under issuer A = %v, %v; want %s", gotA, err, first.ID)
		}
		// A taken ID is refused too, and nothing is written under the new key.
		sameID := Record(issuerA, "org_fresh")
		sameID.ID = first.ID
		if err := s.Create(ctx, sameID); !errors.Is(err, registry.ErrExists) {
			t.Errorf("Create with a taken ID: err = %v, want ErrExists", err)
		}
		if _, err := s.Get(ctx, issuerA, "org_fresh"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get of the refused key: err = %v, want ErrNotFound", err)
		}
		if n := len(list(t, s, 0)); n != 2 {
			t.Errorf("List has %d records, want 2", n)
		}
	})

	t.Run("HostileExternalIDs", func(t *testing.T) {
		s := newStore(t)
		ids := map[tenant.ID]string{}
		for _, ext := range HostileExternalIDs {
			r := Record(issuerA, ext)
			if err := s.Create(ctx, r); err != nil {
				t.Fatalf("Create %q: %v", ext, err)
			}
			ids[r.ID] = ext
		}
		if len(ids) != len(HostileExternalIDs) {
			t.Fatalf("%d distinct IDs for %d tenants", len(ids), len(HostileExternalIDs))
		}
		for _, ext := range HostileExternalIDs {
			got, err := s.Get(ctx, issuerA, ext)
			if err != nil {
				t.Errorf("Get %q: %v", ext, err)
				continue
			}
			if got.ExternalID != ext || ids[got.ID] != ext || !got.ID.Valid() {
				t.Errorf("Get %q returned %q (id %s, registered for %q)", ext, got.ExternalID, got.ID, ids[got.ID])
			}
		}
		for _, near := range []string{"a/", "b", "%", "_", "a%%", "A_", "tenant_a", "org_u", "org_", "' OR 1=1 -- ", "", "a/b/"} {
			if got, err := s.Get(ctx, issuerA, near); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("Get %q (not registered) = %v, %v; want ErrNotFound", near, got, err)
			}
		}
		all := list(t, s, 0)
		if len(all) != len(HostileExternalIDs) {
			t.Errorf("List has %d records, want %d", len(all), len(HostileExternalIDs))
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.Create(ctx, Record(issuerA, "org_race")) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, registry.ErrExists):
				t.Errorf("Create: %v, want nil or ErrExists", err)
			}
		}
		if won != 1 {
			t.Errorf("%d concurrent Creates of one key succeeded, want exactly 1", won)
		}
		if all := list(t, s, 0); len(all) != 1 {
			t.Errorf("List has %d records, want 1", len(all))
		}
	})

	t.Run("ListPaging", func(t *testing.T) {
		s := newStore(t)
		if page, err := s.List(ctx, "", 10); err != nil || len(page) != 0 {
			t.Fatalf("List of an empty store = %d records, %v", len(page), err)
		}
		want := map[tenant.ID]bool{}
		for i := range 25 {
			r := Record(issuerA, fmt.Sprintf("org_%02d", i))
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			want[r.ID] = true
		}
		for _, limit := range []int{1, 7, 25, 100} {
			got := list(t, s, limit)
			ids := make([]tenant.ID, len(got))
			for i, r := range got {
				ids[i] = r.ID
			}
			if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
				t.Errorf("limit %d: ids not strictly ascending: %v", limit, ids)
			}
			if len(ids) != len(want) {
				t.Errorf("limit %d: listed %d records, want %d", limit, len(ids), len(want))
			}
			for _, id := range ids {
				if !want[id] {
					t.Errorf("limit %d: listed unknown id %s", limit, id)
				}
			}
		}
		all := list(t, s, 0)
		last := all[len(all)-1].ID
		if page, err := s.List(ctx, last, 10); err != nil || len(page) != 0 {
			t.Errorf("List after the last id = %d records, %v; want none", len(page), err)
		}
		if page, err := s.List(ctx, all[9].ID, 5); err != nil || len(page) != 5 || page[0].ID != all[10].ID {
			t.Errorf("List after the 10th id: %d records, %v", len(page), err)
		}
		if page, err := s.List(ctx, "", 0); err != nil || len(page) != 25 {
			t.Errorf("List with limit 0 = %d records, %v; want 25 (default page %d)", len(page), err, registry.DefaultPageSize)
		}
		// Full records come back from List too.
		for _, r := range all {
			byID, err := s.GetByID(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d := Diff(byID, r); d != "" {
				t.Errorf("List record differs from GetByID (-get +list):\n%s", d)
			}
		}
	})

	runLeases(t, newStore)
}

// list pages through s with the given limit (0: one call with limit 0).
func list(t *testing.T, s registry.Store, limit int) []*registry.Tenant {
	t.Helper()
	ctx := context.Background()
	if limit == 0 {
		limit = registry.DefaultPageSize
	}
	var out []*registry.Tenant
	var after tenant.ID
	for range 10000 {
		page, err := s.List(ctx, after, limit)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(page) > limit {
			t.Fatalf("List returned %d records, more than limit %d", len(page), limit)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		after = page[len(page)-1].ID
	}
	t.Fatal("List does not end")
	return nil
}
