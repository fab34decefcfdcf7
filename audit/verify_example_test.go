package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// exampleChain stores three events of one chain and a checkpoint of them.
func exampleChain(s audit.Store, key ed25519.PrivateKey) {
	ctx := context.Background()
	var h audit.Head
	for i := range 3 {
		e := audit.Event{Time: time.Date(2026, 12, 1, 9, 0, i, 0, time.UTC), Tenant: "t2ah3htpjvblvvvgzhpov",
			Kind: audit.KindToolCall, Tool: "get_document", Outcome: audit.OutcomeOK}
		body, _ := e.Encode()
		var r audit.Record
		r, h = h.Next(e.Chain(), body)
		s.Append(ctx, []audit.Record{r})
	}
	cp := &audit.Checkpoint{Chain: "t2ah3htpjvblvvvgzhpov", Count: h.Seq, Head: h.Hash, Time: time.Date(2026, 12, 1, 9, 1, 0, 0, time.UTC)}
	cp.Sign(key)
	s.PutCheckpoint(ctx, cp)
}

func ExampleVerifyStore() {
	_, key, _ := ed25519.GenerateKey(nil)
	s := audit.NewMemoryStore()
	exampleChain(s, key)

	rep, err := audit.VerifyStore(context.Background(), s, "t2ah3htpjvblvvvgzhpov", key.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err) // the store could not be read
	}
	fmt.Println(rep.Events, "events,", rep.Checkpoints, "checkpoint:", rep.Status())
	// Output: 3 events, 1 checkpoint: OK
}

func ExampleVerifyExport() {
	_, key, _ := ed25519.GenerateKey(nil)
	s := audit.NewMemoryStore()
	exampleChain(s, key)
	var file bytes.Buffer
	if err := audit.Export(context.Background(), s, "t2ah3htpjvblvvvgzhpov", time.Time{}, time.Time{}, &file); err != nil {
		panic(err)
	}

	// An auditor, with the file and the public key only:
	rep, err := audit.VerifyExport(&file, key.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err) // not an export, or cut short
	}
	fmt.Println(rep.Events, "events, signed up to event", rep.Signed, rep.Status())
	// Output: 3 events, signed up to event 3 OK
}

func ExampleParsePrivateKey() {
	_, key, _ := ed25519.GenerateKey(nil)
	pemBytes, _ := audit.FormatPrivateKey(key) // what the server keeps in its data directory
	back, err := audit.ParsePrivateKey(pemBytes)
	fmt.Println(back.Equal(key), err)
	// Output: true <nil>
}
