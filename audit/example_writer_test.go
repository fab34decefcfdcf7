package audit_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

func ExampleWriter() {
	ctx := context.Background()
	store := audit.NewMemoryStore()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // load a real key
	w, err := audit.NewWriter(store, key, nil)
	if err != nil {
		panic(err)
	}

	// A request reserves its place before it is served...
	slot, err := w.Reserve(ctx)
	if err != nil {
		fmt.Println("refuse with 503:", err)
		return
	}
	// ...and commits its event when it ends.
	slot.Commit(&audit.Event{Time: time.Now(), Tenant: "t_acme", Kind: audit.KindToolCall, Tool: "search", Outcome: audit.OutcomeOK})

	// Close drains the queue and signs a final checkpoint.
	if err := w.Close(ctx); err != nil {
		panic(err)
	}
	head, _ := store.Head(ctx, "t_acme")
	cps, _ := store.Checkpoints(ctx, "t_acme")
	fmt.Println("events:", head.Seq, "checkpoint count:", cps[0].Count)
	fmt.Println(cps[0].VerifySignature(key.Public().(ed25519.PublicKey)))
	// Output:
	// events: 1 checkpoint count: 1
	// <nil>
}
