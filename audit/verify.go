package audit

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
)

// Report is the outcome of verifying one chain, stored (VerifyStore) or
// exported (VerifyExport).
type Report struct {
	// Chain is the chain verified.
	Chain string
	// From is where verification started: the zero Head for a chain
	// verified from its first event; otherwise the event before the first
	// one present and its hash, which that first event links to (see
	// FromReason).
	From Head
	// FromReason says why verification starts at From rather than at the
	// beginning: "earlier events past retention" or "the export's time
	// range starts here". Empty when From is zero.
	FromReason string
	// Events is how many events verified (those before FirstBroken).
	Events uint64
	// Head is the last event that verified (From if none did).
	Head Head
	// Checkpoints is how many signed checkpoints verified: signature, and
	// the chain's hash at their count.
	Checkpoints int
	// Signed is the count of the latest checkpoint that verified: events
	// up to it are covered by a signature, later ones not yet (0 = none).
	Signed uint64
	// PastRetention counts checkpoints of events before From: their
	// signatures verified, but the events they cover are gone, so their
	// hashes cannot be compared.
	PastRetention int
	// Latest is the latest checkpoint that verified (nil if none), to
	// compare with one obtained from the server independently.
	Latest *Checkpoint
	// FirstBroken is where the chain first fails to verify; nil means it
	// verified.
	FirstBroken *ChainError
}

// OK reports whether the chain verified.
func (r *Report) OK() bool { return r.FirstBroken == nil }

// Err is FirstBroken as an error (matching ErrBroken), or nil.
func (r *Report) Err() error {
	if r.FirstBroken == nil {
		return nil
	}
	return r.FirstBroken
}

// Status is the verdict in a few words: "OK", "OK, starts at event 501
// (earlier events past retention)" or "BROKEN at event 42: hash does not
// match its content (changed)".
func (r *Report) Status() string {
	if r.FirstBroken != nil {
		return fmt.Sprintf("BROKEN at event %d: %s", r.FirstBroken.Seq, r.FirstBroken.Reason)
	}
	if r.From.Seq > 0 {
		return fmt.Sprintf("OK, starts at event %d (%s)", r.From.Seq+1, r.FromReason)
	}
	return "OK"
}

// Unsigned is how many verified events no verified checkpoint covers yet
// (those written since the latest checkpoint, or all of them when there
// is none). Such events are consistent but not yet proven by the key.
func (r *Report) Unsigned() uint64 {
	covered := max(r.Signed, r.From.Seq)
	if r.Head.Seq <= covered {
		return 0
	}
	return r.Head.Seq - covered
}

// Reasons for a FromReason.
const (
	fromRetention = "earlier events past retention"
	fromRange     = "the export's time range starts here"
)

// errStop ends a Scan early; it never leaves this package.
var errStop = errors.New("audit: stop scan")

// VerifyStore verifies chain as stored in s: every record's sequence,
// link and hash, and every checkpoint of the chain — its signature with
// pub, and the chain's hash at its count. A checkpoint beyond the last
// record means the chain was truncated. Verification streams: memory does
// not grow with the chain's length (only its checkpoints are loaded).
//
// A chain whose first records were removed by retention is verified from
// its first kept record, which links to the hash it names as Prev; the
// report says so (From, FromReason).
//
// A broken chain is not an error: it is reported in Report.FirstBroken.
// The error is for a store that could not be read.
func VerifyStore(ctx context.Context, s Store, chain string, pub ed25519.PublicKey) (*Report, error) {
	// Checkpoints first: every one loaded was written after the records
	// it covers, so records appended while we scan cannot make one look
	// like truncation.
	cps, err := s.Checkpoints(ctx, chain)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoints of chain %q: %w", chain, err)
	}
	slices.SortStableFunc(cps, func(a, b Checkpoint) int { return cmp.Compare(a.Count, b.Count) })
	c := newChecker(chain, pub)
	next := 0 // cps[next:] are beyond the verified head
	err = s.Scan(ctx, chain, 1, func(r *Record) error {
		if !c.started {
			from := Head{}
			if r.Seq > 1 {
				from = Head{Seq: r.Seq - 1, Hash: r.Prev}
			}
			c.start(from, fromRetention)
			for ; next < len(cps) && cps[next].Count <= from.Seq; next++ {
				if c.checkpoint(&cps[next]) {
					return errStop
				}
			}
		}
		if c.event(r) {
			return errStop
		}
		for ; next < len(cps) && cps[next].Count <= r.Seq; next++ {
			if c.checkpoint(&cps[next]) {
				return errStop
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("audit: scan chain %q: %w", chain, err)
	}
	if !c.started {
		// No records: a chain that never had any, or one retention
		// emptied, which keeps its head.
		h, err := s.Head(ctx, chain)
		if err != nil {
			return nil, fmt.Errorf("audit: head of chain %q: %w", chain, err)
		}
		c.start(h, fromRetention)
		for ; next < len(cps) && cps[next].Count <= h.Seq; next++ {
			if c.checkpoint(&cps[next]) {
				return c.rep, nil
			}
		}
	}
	// What remains lies beyond the last record: truncation.
	for ; c.rep.FirstBroken == nil && next < len(cps); next++ {
		c.checkpoint(&cps[next])
	}
	return c.rep, nil
}

// checker is the verification both VerifyStore and VerifyExport do: the
// records in order through a Verifier, each checkpoint where the chain
// reaches its count.
type checker struct {
	pub     ed25519.PublicKey
	rep     *Report
	v       *Verifier
	started bool
}

func newChecker(chain string, pub ed25519.PublicKey) *checker {
	return &checker{pub: pub, rep: &Report{Chain: chain}}
}

// start begins after from.
func (c *checker) start(from Head, reason string) {
	c.started = true
	c.v = NewVerifierFrom(c.rep.Chain, from)
	c.rep.From, c.rep.Head = from, from
	if from.Seq > 0 {
		c.rep.FromReason = reason
	}
}

// event checks the next record; true means the chain broke there.
func (c *checker) event(r *Record) bool {
	if err := c.v.Next(r); err != nil {
		c.broken(err)
		return true
	}
	c.rep.Events++
	c.rep.Head = c.v.Head()
	return false
}

// checkpoint checks cp at the current head: a checkpoint before From
// (past retention) only by its signature, one at the head against its
// hash, one beyond it as truncation. True means the chain broke there.
func (c *checker) checkpoint(cp *Checkpoint) bool {
	if err := cp.VerifySignature(c.pub); err != nil {
		reason := "checkpoint signature does not verify (forged or altered)"
		if id := KeyID(c.pub); cp.KeyID != id {
			reason = fmt.Sprintf("checkpoint is signed by key %s, not by the key given (%s)", cp.KeyID, id)
		}
		c.rep.FirstBroken = &ChainError{Chain: c.rep.Chain, Seq: cp.Count, Reason: reason}
		return true
	}
	head := c.v.Head()
	switch {
	case cp.Chain == c.rep.Chain && cp.Count < c.rep.From.Seq:
		c.rep.PastRetention++
		return false
	case cp.Chain == c.rep.Chain && cp.Count < head.Seq:
		// Only an export can get here: its checkpoints follow their
		// event, and this one does not.
		c.rep.FirstBroken = &ChainError{Chain: c.rep.Chain, Seq: cp.Count,
			Reason: fmt.Sprintf("checkpoint of event %d is out of place (after event %d)", cp.Count, head.Seq)}
		return true
	case cp.Chain == c.rep.Chain && cp.Count == head.Seq && cp.Count > 0 && cp.Head != head.Hash:
		first := max(c.rep.Signed, c.rep.From.Seq) + 1
		reason := "differs from the signed checkpoint at this event (rewritten)"
		if first < cp.Count {
			reason = fmt.Sprintf("differs from the signed checkpoint at this event: events %d to %d were rewritten", first, cp.Count)
		}
		c.rep.FirstBroken = &ChainError{Chain: c.rep.Chain, Seq: cp.Count, Reason: reason}
		return true
	}
	if err := c.v.Check(cp, func(seq uint64) (Hash, bool) { return head.Hash, seq == head.Seq }); err != nil {
		c.broken(err)
		return true
	}
	c.rep.Checkpoints++
	if cp.Count >= c.rep.Signed {
		c.rep.Signed = cp.Count
		latest := *cp
		c.rep.Latest = &latest
	}
	return false
}

func (c *checker) broken(err error) {
	var ce *ChainError
	if !errors.As(err, &ce) {
		ce = &ChainError{Chain: c.rep.Chain, Seq: c.rep.Head.Seq + 1, Reason: err.Error()}
	}
	c.rep.FirstBroken = ce
}
