package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// AuditTrail is what (g)'s audit store holds after its last phase: the
// writer drained and closed, every chain verified. A bench of "audit on"
// whose store recorded nothing would measure nothing, so the run reports
// how many events it found for how many requests.
type AuditTrail struct {
	// Requests counts the answers (g) gave in all its phases, warm-ups
	// included: each should have left exactly one event.
	Requests int64 `json:"requests"`
	// Events counts the events that verified, over Chains chains (one per
	// tenant, plus the system chain if anything was refused before its
	// tenant was known).
	Events uint64 `json:"events"`
	Chains int    `json:"chains"`
	// Checkpoints counts the signed checkpoints that verified; Unsigned
	// the verified events no checkpoint covers (0 after a clean Close).
	Checkpoints int    `json:"checkpoints"`
	Unsigned    uint64 `json:"unsigned"`
	// Broken lists the chains that did not verify, with the reason.
	Broken []string `json:"broken,omitempty"`
	// Batches, Dropped and Backpressure are the writer's counters
	// (WriterStats): Events / Batches is the mean batch an Append stored.
	Batches      uint64 `json:"batches"`
	Dropped      uint64 `json:"dropped"`
	Backpressure uint64 `json:"backpressure"`
	// CloseError is the writer's Close error, if any.
	CloseError    string  `json:"close_error,omitempty"`
	VerifySeconds float64 `json:"verify_s"`
}

// OK reports whether every request left one event and the trail verified.
func (a *AuditTrail) OK() bool {
	return a.Events > 0 && a.Events == uint64(a.Requests) && len(a.Broken) == 0 && a.Dropped == 0 &&
		a.Unsigned == 0 && a.CloseError == ""
}

// checkAudit closes t's audit writer (draining its queue: requests is
// what the load generator sent, so nothing may still be in flight) and
// verifies every chain of its store.
func checkAudit(ctx context.Context, t *tmcp, requests int64) (*AuditTrail, error) {
	a := &AuditTrail{Requests: requests}
	if err := t.closeAudit(); err != nil {
		a.CloseError = err.Error()
	}
	st := t.audit.Stats()
	a.Batches, a.Dropped, a.Backpressure = st.Batches, st.Dropped, st.Backpressure
	start := time.Now()
	store := t.audit.Store()
	chains, err := store.Chains(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	a.Chains = len(chains)
	for _, c := range chains {
		rep, err := audit.VerifyStore(ctx, store, c, t.auditPub)
		if err != nil {
			return nil, fmt.Errorf("verify audit chain %q: %w", c, err)
		}
		a.Events += rep.Events
		a.Checkpoints += rep.Checkpoints
		a.Unsigned += rep.Unsigned()
		if !rep.OK() {
			a.Broken = append(a.Broken, c+": "+rep.Status())
		}
	}
	a.VerifySeconds = math.Round(time.Since(start).Seconds()*100) / 100
	return a, nil
}

func (a *AuditTrail) write(w io.Writer) {
	verdict := "OK: one verified event per request"
	if !a.OK() {
		verdict = "WRONG: the audit trail does not match the requests served"
	}
	batch := 0.0
	if a.Batches > 0 {
		batch = float64(a.Events) / float64(a.Batches)
	}
	fmt.Fprintf(w, "audit trail of (g): %d events for %d requests in %d chains (%d batches, mean %.0f events), %d checkpoints, %d unsigned, %d dropped, %d backpressure; verified in %.2fs — %s\n",
		a.Events, a.Requests, a.Chains, a.Batches, batch, a.Checkpoints, a.Unsigned, a.Dropped, a.Backpressure, a.VerifySeconds, verdict)
	for _, b := range a.Broken {
		fmt.Fprintf(w, "  broken chain %s\n", b)
	}
	if a.CloseError != "" {
		fmt.Fprintf(w, "  writer close: %s\n", a.CloseError)
	}
}
