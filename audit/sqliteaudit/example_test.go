package sqliteaudit_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/sqliteaudit"
)

// Open the file, chain an event after its tenant's head, append it, and
// find it again.
func Example() {
	dir, err := os.MkdirTemp("", "audit")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := sqliteaudit.Open(filepath.Join(dir, "audit.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()

	ev := audit.Event{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Tenant: "tabcdefghijklmnopqrstu",
		User: "alice", Kind: audit.KindToolCall, Method: "tools/call", Tool: "search", Outcome: audit.OutcomeOK}
	body, err := ev.Encode()
	if err != nil {
		log.Fatal(err)
	}
	h, err := st.Head(ctx, ev.Chain())
	if err != nil {
		log.Fatal(err)
	}
	rec, _ := h.Next(ev.Chain(), body)
	if err := st.Append(ctx, []audit.Record{rec}); err != nil {
		log.Fatal(err) // errors.Is(err, audit.ErrConflict): reload the head and chain again
	}

	found, err := st.Query(ctx, ev.Chain(), audit.Filter{Tool: "search", User: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(found), found[0].Seq, found[0].Hash == rec.Hash)
	// Output: 1 1 true
}
