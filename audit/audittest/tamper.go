package audittest

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// Tamperer changes a stored chain behind its Store's back, directly in
// the backend, as someone with write access to the database but not the
// signing key would: it keeps every checkpoint, which it cannot forge.
// sqliteaudit.Tamperer and pgaudit.Tamperer implement it; tests of
// verification use them to show that each change is caught.
type Tamperer interface {
	// EditBody replaces the body of record seq of chain, leaving its hash
	// and prev as they are.
	EditBody(ctx context.Context, chain string, seq uint64, body []byte) error
	// Delete removes record seq of chain.
	Delete(ctx context.Context, chain string, seq uint64) error
	// SwapBodies exchanges the bodies of records a and b of chain.
	SwapBodies(ctx context.Context, chain string, a, b uint64) error
	// TruncateTail removes the last k records of chain.
	TruncateTail(ctx context.Context, chain string, k int) error
	// Rechain replaces the body of record seq and recomputes the hashes
	// of it and every later record so that the chain links again: only a
	// signed checkpoint covering seq can show the change.
	Rechain(ctx context.Context, chain string, seq uint64, body []byte) error
}

// RunTamper shows that audit.VerifyStore catches every kind of tampering
// a Tamperer does. newStore must return a fresh, empty store and a
// Tamperer of the same data for each subtest.
func RunTamper(t *testing.T, newStore func(t *testing.T) (audit.Store, Tamperer)) {
	ctx := context.Background()
	pub := Key().Public().(ed25519.PublicKey)
	forged := func(t *testing.T) []byte {
		ev := Event("a", 4)
		ev.Outcome = audit.OutcomeOK // say the refusal was served
		b, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// setup stores chain a (10 events, checkpoints at 5 and 10) and chain
	// b, and checks that both verify before any tampering.
	setup := func(t *testing.T) (audit.Store, Tamperer) {
		s, tm := newStore(t)
		AppendN(t, s, "a", 0, 5)
		Checkpoint(t, s, "a", Base.Add(5*time.Minute))
		AppendN(t, s, "a", 5, 5)
		Checkpoint(t, s, "a", Base.Add(10*time.Minute))
		AppendN(t, s, "b", 0, 10)
		Checkpoint(t, s, "b", Base.Add(10*time.Minute))
		for _, c := range []string{"a", "b"} {
			rep, err := audit.VerifyStore(ctx, s, c, pub)
			if err != nil || !rep.OK() || rep.Events != 10 {
				t.Fatalf("before tampering, chain %s: %s (%d events), %v", c, rep.Status(), rep.Events, err)
			}
		}
		return s, tm
	}
	// broken checks that chain a fails at seq with a reason containing
	// reason, and that chain b, untouched, still verifies.
	broken := func(t *testing.T, s audit.Store, seq uint64, reason string) {
		t.Helper()
		rep, err := audit.VerifyStore(ctx, s, "a", pub)
		if err != nil {
			t.Fatalf("VerifyStore: %v", err)
		}
		if rep.OK() {
			t.Fatalf("VerifyStore after tampering: %s (%d events), want broken at event %d", rep.Status(), rep.Events, seq)
		}
		if rep.FirstBroken.Seq != seq || !strings.Contains(rep.FirstBroken.Reason, reason) {
			t.Errorf("VerifyStore after tampering: %s; want broken at event %d: …%s…", rep.Status(), seq, reason)
		}
		if rep, err := audit.VerifyStore(ctx, s, "b", pub); err != nil || !rep.OK() {
			t.Errorf("chain b, untouched: %s, %v", rep.Status(), err)
		}
	}

	t.Run("EditBody", func(t *testing.T) {
		s, tm := setup(t)
		if err := tm.EditBody(ctx, "a", 5, forged(t)); err != nil {
			t.Fatal(err)
		}
		broken(t, s, 5, "hash does not match")
	})
	t.Run("Delete", func(t *testing.T) {
		s, tm := setup(t)
		if err := tm.Delete(ctx, "a", 4); err != nil {
			t.Fatal(err)
		}
		broken(t, s, 4, "missing")
	})
	t.Run("SwapBodies", func(t *testing.T) {
		s, tm := setup(t)
		if err := tm.SwapBodies(ctx, "a", 3, 7); err != nil {
			t.Fatal(err)
		}
		broken(t, s, 3, "hash does not match")
	})
	t.Run("TruncateTail", func(t *testing.T) {
		s, tm := setup(t)
		if err := tm.TruncateTail(ctx, "a", 3); err != nil {
			t.Fatal(err)
		}
		if h, err := s.Head(ctx, "a"); err != nil || h.Seq != 7 {
			t.Fatalf("Head after truncating 3 of 10 = %+v, %v; want seq 7", h, err)
		}
		broken(t, s, 8, "truncated")
	})
	t.Run("Rechain", func(t *testing.T) {
		s, tm := setup(t)
		if err := tm.Rechain(ctx, "a", 7, forged(t)); err != nil {
			t.Fatal(err)
		}
		// Every link holds; the checkpoint at 10 does not.
		v := audit.NewVerifier("a")
		for _, r := range ScanAll(t, s, "a", 1) {
			if err := v.Next(&r); err != nil {
				t.Fatalf("Rechain left a broken link: %v", err)
			}
		}
		broken(t, s, 10, "rewritten")
	})
}
