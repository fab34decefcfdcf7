package console

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// tampered changes the body of one record as it is read back.
type tampered struct {
	audit.Store
	seq uint64
}

func (s tampered) Scan(ctx context.Context, chain string, from uint64, fn func(*audit.Record) error) error {
	return s.Store.Scan(ctx, chain, from, func(r *audit.Record) error {
		if r.Seq == s.seq {
			r.Body = []byte(strings.Replace(string(r.Body), `"ok"`, `"error"`, 1))
		}
		return fn(r)
	})
}

func writeEvents(t *testing.T, store audit.Store, key ed25519.PrivateKey, chain string, n int) {
	t.Helper()
	w, err := audit.NewWriter(store, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := w.Record(context.Background(), &audit.Event{Time: time.Now(), Tenant: chain, Kind: audit.KindRequest, Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil { // a checkpoint at the end
		t.Fatal(err)
	}
}

func TestAuditSourceVerify(t *testing.T) {
	t.Parallel()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	mem := audit.NewMemoryStore()
	writeEvents(t, mem, key, "tgood", 5)
	writeEvents(t, mem, key, "tbad", 5)
	src := NewAuditSource(tampered{mem, 3}, key.Public().(ed25519.PublicKey))
	if src.Verified("tbad") != nil {
		t.Fatal("a result before any verification")
	}
	v, err := src.Verify(context.Background(), "tbad")
	if err != nil {
		t.Fatal(err)
	}
	text, ok := verificationText(v)
	if ok || !strings.Contains(text, "BROKEN at event 3") {
		t.Errorf("tampered chain: %q %v", text, ok)
	}
	if src.Verified("tbad") != v {
		t.Error("the result is not remembered")
	}
	v, _ = src.Verify(context.Background(), "tgood") // seq 3 of tgood is tampered too: same store
	if _, ok := verificationText(v); ok {
		t.Errorf("tampered event 3 of tgood not found: %+v", v.Report)
	}
	clean := NewAuditSource(mem, key.Public().(ed25519.PublicKey))
	v, _ = clean.Verify(context.Background(), "tgood")
	if text, ok := verificationText(v); !ok || !strings.HasPrefix(text, "OK: 5 events and 1 signed checkpoints") || strings.Contains(text, "not checkpointed") {
		t.Errorf("intact chain: %q %v", text, ok)
	}

	// One verification at a time.
	sa := clean.(*storeAudit)
	sa.busy <- struct{}{}
	if _, err := clean.Verify(context.Background(), "tgood"); !errors.Is(err, ErrVerifyBusy) {
		t.Errorf("second verification: %v", err)
	}
	<-sa.busy
	// A verification that runs out of time says so.
	slow := NewAuditSource(stalled{mem}, key.Public().(ed25519.PublicKey))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	v, err = slow.Verify(ctx, "tgood")
	if err != nil || v.Report != nil || !strings.Contains(v.Unfinished, "did not finish in time") {
		t.Errorf("stalled verification: %v %+v", err, v)
	}
	if text, ok := verificationText(v); ok || !strings.Contains(text, "did not finish") {
		t.Errorf("stalled verification shown as %q", text)
	}
}

// stalled is a store whose scans wait until they are cancelled.
type stalled struct{ audit.Store }

func (stalled) Scan(ctx context.Context, _ string, _ uint64, _ func(*audit.Record) error) error {
	<-ctx.Done()
	return ctx.Err()
}
