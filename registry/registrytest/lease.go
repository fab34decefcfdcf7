package registrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// lease returns a lease on (issuer, externalID) for token, taken at now
// for a minute.
func lease(issuer, externalID, token string, now time.Time) registry.Lease {
	return registry.Lease{
		Issuer: issuer, ExternalID: externalID, Tenant: tenant.NewID(),
		Operation: "archive", Holder: "ops@example", Via: "http", Token: token,
		AcquiredAt: now, ExpiresAt: now.Add(time.Minute),
	}
}

// runLeases is the part of the contract about the leases of lifecycle
// operations.
func runLeases(t *testing.T, newStore func(t *testing.T) registry.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)

	t.Run("LeaseHeldIsRefusedNamingItsHolder", func(t *testing.T) {
		s := newStore(t)
		first := lease(issuerA, "org_l", "tok-1", now)
		if err := s.AcquireLease(ctx, first); err != nil {
			t.Fatalf("AcquireLease of a free tenant: %v", err)
		}
		second := lease(issuerA, "org_l", "tok-2", now.Add(30*time.Second))
		second.Operation, second.Holder, second.Via = "resume", "cli:bob", "cli"
		err := s.AcquireLease(ctx, second)
		var le *registry.LeasedError
		if !errors.As(err, &le) || !errors.Is(err, registry.ErrLeased) {
			t.Fatalf("AcquireLease of a held lease: err = %v, want a *LeasedError (ErrLeased)", err)
		}
		if d := cmp.Diff(first, le.Holder, timeClose); d != "" {
			t.Errorf("the refusal's holder (-want +got):\n%s", d)
		}
		if le.Holder.AcquiredAt.Location() != time.UTC || le.Holder.ExpiresAt.Location() != time.UTC {
			t.Errorf("holder's times are not in UTC: %v, %v", le.Holder.AcquiredAt, le.Holder.ExpiresAt)
		}
		// The refused acquisition changed nothing: the first holder renews
		// and releases; the second cannot do either.
		if err := s.RenewLease(ctx, issuerA, "org_l", "tok-2", now.Add(time.Hour)); !errors.Is(err, registry.ErrLeaseLost) {
			t.Errorf("RenewLease by the refused token: err = %v, want ErrLeaseLost", err)
		}
		if err := s.ReleaseLease(ctx, issuerA, "org_l", "tok-2"); err != nil {
			t.Errorf("ReleaseLease by a token that holds nothing: %v, want nil", err)
		}
		if err := s.AcquireLease(ctx, second); !errors.Is(err, registry.ErrLeased) {
			t.Errorf("a release by another token freed the lease: AcquireLease err = %v, want ErrLeased", err)
		}
		if err := s.RenewLease(ctx, issuerA, "org_l", "tok-1", now.Add(2*time.Minute)); err != nil {
			t.Errorf("RenewLease by the holder: %v", err)
		}
		if err := s.ReleaseLease(ctx, issuerA, "org_l", "tok-1"); err != nil {
			t.Fatalf("ReleaseLease by the holder: %v", err)
		}
		if err := s.AcquireLease(ctx, second); err != nil {
			t.Errorf("AcquireLease after the release: %v", err)
		}
	})

	t.Run("LeasesArePerTenantKey", func(t *testing.T) {
		s := newStore(t)
		if err := s.AcquireLease(ctx, lease(issuerA, "org_a", "tok-a", now)); err != nil {
			t.Fatal(err)
		}
		// Another external id, and the same external id of another issuer,
		// are other tenants: their leases are free; hostile ids are not
		// confused with one another either.
		for i, k := range append([][2]string{{issuerA, "org_b"}, {issuerB, "org_a"}}, hostileKeys()...) {
			if err := s.AcquireLease(ctx, lease(k[0], k[1], fmt.Sprintf("tok-%d", i), now)); err != nil {
				t.Errorf("AcquireLease of (%q, %q) while (%q, org_a) is held: %v", k[0], k[1], issuerA, err)
			}
		}
		if err := s.AcquireLease(ctx, lease(issuerA, "org_a", "tok-again", now)); !errors.Is(err, registry.ErrLeased) {
			t.Errorf("AcquireLease of the held one: err = %v, want ErrLeased", err)
		}
		// A lease needs no registered tenant, and does not make one.
		if _, err := s.Get(ctx, issuerA, "org_a"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get of a leased, unregistered tenant: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("ExpiredLeaseIsTakenOver", func(t *testing.T) {
		s := newStore(t)
		crashed := lease(issuerA, "org_x", "tok-crashed", now)
		if err := s.AcquireLease(ctx, crashed); err != nil {
			t.Fatal(err)
		}
		// Just before it ends it is still in force; at its end it is free.
		early := lease(issuerA, "org_x", "tok-early", crashed.ExpiresAt.Add(-time.Microsecond))
		if err := s.AcquireLease(ctx, early); !errors.Is(err, registry.ErrLeased) {
			t.Errorf("AcquireLease a microsecond before the lease ends: err = %v, want ErrLeased", err)
		}
		taker := lease(issuerA, "org_x", "tok-taker", crashed.ExpiresAt)
		if err := s.AcquireLease(ctx, taker); err != nil {
			t.Fatalf("AcquireLease of an expired lease: %v", err)
		}
		// The crashed holder, back, has lost it and cannot end it.
		if err := s.RenewLease(ctx, issuerA, "org_x", "tok-crashed", now.Add(time.Hour)); !errors.Is(err, registry.ErrLeaseLost) {
			t.Errorf("RenewLease by the previous holder: err = %v, want ErrLeaseLost", err)
		}
		if err := s.ReleaseLease(ctx, issuerA, "org_x", "tok-crashed"); err != nil {
			t.Errorf("ReleaseLease by the previous holder: %v", err)
		}
		err := s.AcquireLease(ctx, lease(issuerA, "org_x", "tok-third", taker.AcquiredAt.Add(time.Second)))
		var le *registry.LeasedError
		if !errors.As(err, &le) || le.Holder.Token != "tok-taker" {
			t.Errorf("after the previous holder's release: err = %v, want the taker's lease in force", err)
		}
		// An expired lease nobody took is still its holder's to renew.
		if err := s.RenewLease(ctx, issuerA, "org_x", "tok-taker", now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RenewLease(ctx, issuerA, "org_x", "tok-taker", now.Add(time.Hour)); err != nil {
			t.Errorf("RenewLease of an expired lease nobody took: %v", err)
		}
		if err := s.AcquireLease(ctx, lease(issuerA, "org_x", "tok-fourth", now.Add(30*time.Minute))); !errors.Is(err, registry.ErrLeased) {
			t.Errorf("AcquireLease before the renewed end: err = %v, want ErrLeased", err)
		}
	})

	t.Run("ConcurrentAcquire", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.AcquireLease(ctx, lease(issuerA, "org_race", fmt.Sprintf("tok-%d", i), now)) })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Errorf("tokens %d and %d both acquired the lease", won, i)
			case err == nil:
				won = i
			case !errors.Is(err, registry.ErrLeased):
				t.Errorf("AcquireLease: %v, want nil or ErrLeased", err)
			}
		}
		if won < 0 {
			t.Fatal("no concurrent AcquireLease succeeded")
		}
		for i, err := range errs {
			var le *registry.LeasedError
			if err != nil && errors.As(err, &le) && le.Holder.Token != fmt.Sprintf("tok-%d", won) {
				t.Errorf("refusal %d names token %q, but tok-%d won", i, le.Holder.Token, won)
			}
		}
	})
}

// hostileKeys are tenant keys with HostileExternalIDs under issuerA.
func hostileKeys() [][2]string {
	var out [][2]string
	for _, ext := range HostileExternalIDs {
		out = append(out, [2]string{issuerA, ext})
	}
	return out
}
