// Package audittest is the contract suite every audit.Store must pass, and
// helpers for tests that need audit records: a backend's test calls Run
// with a constructor that returns a fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		audittest.Run(t, func(t *testing.T) audit.Store {
//			s, err := sqliteaudit.Open(filepath.Join(t.TempDir(), "audit.db"), nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// RunTamper shows, for a backend that can be tampered with behind the
// store's back (a Tamperer), that audit.VerifyStore catches each kind of
// tampering.
package audittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tenantmcp/tenantmcp/audit"
)

// Base is the time of the events Event makes: event i is i minutes later.
var Base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// HostileChains are chain names that naive storage matching would confuse
// with one another (prefixes, case and Unicode folding, LIKE wildcards,
// SQL quoting); each must be its own chain. SystemChain is among them.
var HostileChains = []string{
	audit.SystemChain, "tabcdefghijklmnopqrstu", "tenant-a", "tenanta", "a", "a_", "a%", "A", "_",
	"org_ü", "org_u\u0308", "' OR 1=1 --", `"; DROP TABLE audit_records; --`, " a", "a ", `a\`,
}

// Key is the suite's fixed Ed25519 signing key.
func Key() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("tenantmcp audittest key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Event returns a realistic tool-call event of chain, number i: at Base
// plus i minutes, with outcome, tool and user varying with i (outcome
// cycles ok, error, refused; tool t0..t2; user u0, u1).
func Event(chain string, i int) audit.Event {
	outcomes := []string{audit.OutcomeOK, audit.OutcomeError, audit.OutcomeRefused}
	return audit.Event{
		Time:          Base.Add(time.Duration(i) * time.Minute),
		RequestID:     "req-" + strconv.Itoa(i),
		Tenant:        chain,
		ExternalID:    "org_" + strconv.Itoa(i%3),
		Issuer:        "https://idp.example.com/",
		User:          "u" + strconv.Itoa(i%2),
		Kind:          audit.KindToolCall,
		Method:        "tools/call",
		Tool:          "t" + strconv.Itoa(i%3),
		Outcome:       outcomes[i%3],
		LatencyMicros: int64(100 + i),
		Protocol:      "2025-11-25",
		ArgsSize:      17,
		ArgsSHA256:    fmt.Sprintf("%064x", i),
	}
}

// At is the time of Event number i: Base plus i minutes.
func At(i int) time.Time { return Base.Add(time.Duration(i) * time.Minute) }

// SameQueries fails t for every filter under which s.Query of chain
// returns other records than ref.Query (say, of an audit.MemoryStore
// holding the same records).
func SameQueries(t testing.TB, s, ref audit.Store, chain string, filters ...audit.Filter) {
	t.Helper()
	ctx := context.Background()
	for _, f := range filters {
		got, err := s.Query(ctx, chain, f)
		if err != nil {
			t.Fatalf("Query(%+v): %v", f, err)
		}
		want, err := ref.Query(ctx, chain, f)
		if err != nil {
			t.Fatalf("reference Query(%+v): %v", f, err)
		}
		if d := Diff(want, got); d != "" {
			t.Errorf("Query(%+v) (-want +got):\n%s", f, d)
		}
	}
}

// Records chains the events after from, without storing them, and returns
// the records and the new head. It fails the test if an event does not
// encode; in another goroutine than the test's, encode first (Bodies) and
// use Chain.
func Records(t testing.TB, chain string, from audit.Head, evs ...audit.Event) ([]audit.Record, audit.Head) {
	t.Helper()
	bodies := make([][]byte, len(evs))
	for i := range evs {
		var err error
		if bodies[i], err = evs[i].Encode(); err != nil {
			t.Fatalf("encode event %d: %v", i, err)
		}
	}
	return Chain(chain, from, bodies...)
}

// Chain chains bodies after from and returns the records and the new head.
func Chain(chain string, from audit.Head, bodies ...[]byte) ([]audit.Record, audit.Head) {
	out := make([]audit.Record, len(bodies))
	h := from
	for i, b := range bodies {
		out[i], h = h.Next(chain, b)
	}
	return out, h
}

// Bodies encodes Event(chain, first) … Event(chain, first+n-1).
func Bodies(t testing.TB, chain string, first, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		ev := Event(chain, first+i)
		var err error
		if out[i], err = ev.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Append chains the events after chain's stored head and appends them in
// one batch, failing the test on error. It returns the records stored.
func Append(t testing.TB, s audit.Store, chain string, evs ...audit.Event) []audit.Record {
	t.Helper()
	ctx := context.Background()
	h, err := s.Head(ctx, chain)
	if err != nil {
		t.Fatalf("Head(%q): %v", chain, err)
	}
	recs, _ := Records(t, chain, h, evs...)
	if err := s.Append(ctx, recs); err != nil {
		t.Fatalf("Append %d records to chain %q: %v", len(recs), chain, err)
	}
	return recs
}

// AppendN appends events Event(chain, first) … Event(chain, first+n-1).
func AppendN(t testing.TB, s audit.Store, chain string, first, n int) []audit.Record {
	t.Helper()
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = Event(chain, first+i)
	}
	return Append(t, s, chain, evs...)
}

// Checkpoint signs chain's stored head with Key at time at and stores the
// checkpoint, failing the test on error.
func Checkpoint(t testing.TB, s audit.Store, chain string, at time.Time) audit.Checkpoint {
	t.Helper()
	ctx := context.Background()
	h, err := s.Head(ctx, chain)
	if err != nil {
		t.Fatalf("Head(%q): %v", chain, err)
	}
	cp := audit.Checkpoint{Chain: chain, Count: h.Seq, Head: h.Hash, Time: at}
	cp.Sign(Key())
	if err := s.PutCheckpoint(ctx, &cp); err != nil {
		t.Fatalf("PutCheckpoint(%q, %d): %v", chain, h.Seq, err)
	}
	return cp
}

// ScanAll returns chain's records from seq from, failing the test on
// error.
func ScanAll(t testing.TB, s audit.Store, chain string, from uint64) []audit.Record {
	t.Helper()
	var out []audit.Record
	err := s.Scan(context.Background(), chain, from, func(r *audit.Record) error {
		c := *r
		c.Body = slices.Clone(r.Body)
		out = append(out, c)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q, %d): %v", chain, from, err)
	}
	return out
}

// Diff compares records as the contract does: every field, bodies byte
// for byte; nil and empty alike.
func Diff(want, got any) string {
	// cmp walks every byte of every hash and body: compare records
	// directly first and leave cmp the report.
	if w, ok := want.([]audit.Record); ok {
		if g, ok := got.([]audit.Record); ok && slices.EqualFunc(w, g, equalRecord) {
			return ""
		}
	}
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

func equalRecord(a, b audit.Record) bool {
	return a.Chain == b.Chain && a.Seq == b.Seq && a.Prev == b.Prev && a.Hash == b.Hash && bytes.Equal(a.Body, b.Body)
}

func seqs(rs []audit.Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

// Run runs the contract suite. newStore must return a fresh, empty store
// for each subtest and arrange for its cleanup.
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	ctx := context.Background()

	t.Run("Empty", func(t *testing.T) {
		s := newStore(t)
		if h, err := s.Head(ctx, "a"); err != nil || h != (audit.Head{}) {
			t.Errorf("Head of an empty chain = %+v, %v; want zero, nil", h, err)
		}
		if cs, err := s.Chains(ctx); err != nil || len(cs) != 0 {
			t.Errorf("Chains = %q, %v; want none", cs, err)
		}
		if rs := ScanAll(t, s, "a", 1); len(rs) != 0 {
			t.Errorf("Scan of an empty chain: %d records", len(rs))
		}
		if rs, err := s.Query(ctx, "a", audit.Filter{}); err != nil || len(rs) != 0 {
			t.Errorf("Query of an empty chain = %d records, %v", len(rs), err)
		}
		if cps, err := s.Checkpoints(ctx, "a"); err != nil || len(cps) != 0 {
			t.Errorf("Checkpoints of an empty chain = %v, %v", cps, err)
		}
		if n, err := s.DeleteBefore(ctx, time.Now()); err != nil || n != 0 {
			t.Errorf("DeleteBefore on an empty store = %d, %v", n, err)
		}
		if err := s.Append(ctx, nil); err != nil {
			t.Errorf("Append of no records: %v", err)
		}
	})

	t.Run("AppendHeadScan", func(t *testing.T) {
		s := newStore(t)
		first := AppendN(t, s, "a", 0, 3)
		second := AppendN(t, s, "a", 3, 2)
		all := append(slices.Clone(first), second...)
		h, err := s.Head(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if want := (audit.Head{Seq: 5, Hash: all[4].Hash}); h != want {
			t.Errorf("Head = %+v, want %+v", h, want)
		}
		if d := Diff(all, ScanAll(t, s, "a", 1)); d != "" {
			t.Errorf("Scan from 1 (-want +got):\n%s", d)
		}
		if d := Diff(all, ScanAll(t, s, "a", 0)); d != "" {
			t.Errorf("Scan from 0 (-want +got):\n%s", d)
		}
		if d := Diff(all[2:], ScanAll(t, s, "a", 3)); d != "" {
			t.Errorf("Scan from 3 (-want +got):\n%s", d)
		}
		if rs := ScanAll(t, s, "a", 6); len(rs) != 0 {
			t.Errorf("Scan from beyond the head: seqs %v", seqs(rs))
		}
		v := audit.NewVerifier("a")
		for _, r := range ScanAll(t, s, "a", 1) {
			if err := v.Next(&r); err != nil {
				t.Fatalf("stored chain does not verify: %v", err)
			}
		}
		// A record returned by Scan is the caller's to change.
		err = s.Scan(ctx, "a", 1, func(r *audit.Record) error {
			for i := range r.Body {
				r.Body[i] = 'x'
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff(all, ScanAll(t, s, "a", 1)); d != "" {
			t.Errorf("stored records changed through those Scan passed (-want +got):\n%s", d)
		}
	})

	t.Run("AppendAtomic", func(t *testing.T) {
		s := newStore(t)
		stored := AppendN(t, s, "a", 0, 3)
		head, _ := s.Head(ctx, "a")
		otherHead, _ := s.Head(ctx, "b")
		good, _ := Records(t, "a", head, Event("a", 3), Event("a", 4), Event("a", 5))
		goodB, _ := Records(t, "b", otherHead, Event("b", 0), Event("b", 1))

		badLink := slices.Clone(good)
		badLink[2].Prev[0] ^= 1
		skip := slices.Clone(good)
		skip[1].Seq++
		skip[2].Seq++
		stale, _ := Records(t, "a", audit.Head{Seq: 2, Hash: stored[1].Hash}, Event("a", 9))
		fromZero, _ := Records(t, "a", audit.Head{}, Event("a", 9))
		wrongPrev, _ := Records(t, "a", audit.Head{Seq: 3, Hash: stored[1].Hash}, Event("a", 9))
		mixed := append(slices.Clone(goodB), badLink...) // b is fine, a is not
		dup := append(slices.Clone(good), good[2])
		for name, batch := range map[string][]audit.Record{
			"bad link in the batch":         badLink,
			"sequence gap in the batch":     skip,
			"stale head (seq already used)": stale,
			"first record again":            fromZero,
			"next seq but wrong prev":       wrongPrev,
			"good chain with a bad chain":   mixed,
			"record repeated in the batch":  dup,
			"stored records again":          stored,
		} {
			if err := s.Append(ctx, batch); !errors.Is(err, audit.ErrConflict) {
				t.Errorf("%s: Append err = %v, want ErrConflict", name, err)
			}
		}
		notJSON := slices.Clone(good)
		notJSON[1], _ = audit.Head{Seq: good[0].Seq, Hash: good[0].Hash}.Next("a", []byte(`{"kind":`))
		notJSON[2], _ = audit.Head{Seq: notJSON[1].Seq, Hash: notJSON[1].Hash}.Next("a", good[2].Body)
		if err := s.Append(ctx, notJSON); err == nil {
			t.Errorf("Append of a body that is not an event: err = nil")
		}
		if d := Diff(stored, ScanAll(t, s, "a", 1)); d != "" {
			t.Fatalf("refused batches changed chain a (-want +got):\n%s", d)
		}
		if rs := ScanAll(t, s, "b", 1); len(rs) != 0 {
			t.Fatalf("a refused batch stored %d records of chain b", len(rs))
		}
		if h, _ := s.Head(ctx, "a"); h != head {
			t.Fatalf("Head after refused batches = %+v, want %+v", h, head)
		}
		// The good batches still go in, together.
		if err := s.Append(ctx, append(slices.Clone(good), goodB...)); err != nil {
			t.Fatalf("Append of the good batch: %v", err)
		}
		if d := Diff(append(stored, good...), ScanAll(t, s, "a", 1)); d != "" {
			t.Errorf("chain a (-want +got):\n%s", d)
		}
		if d := Diff(goodB, ScanAll(t, s, "b", 1)); d != "" {
			t.Errorf("chain b (-want +got):\n%s", d)
		}
	})

	t.Run("ConcurrentAppend", func(t *testing.T) {
		// Writers that share a chain (replicas) race for each next seq:
		// exactly one wins each, the others see ErrConflict and retry.
		s := newStore(t)
		const writers, each = 4, 15
		bodies := Bodies(t, "a", 0, writers*each)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := 0; i < each; {
					h, err := s.Head(ctx, "a")
					if err != nil {
						errs <- err
						return
					}
					b := bodies[w*each+i]
					recs, _ := Chain("a", h, b, b)
					err = s.Append(ctx, recs)
					switch {
					case errors.Is(err, audit.ErrConflict):
						continue
					case err != nil:
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
					i++
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rs := ScanAll(t, s, "a", 1)
		if len(rs) != 2*writers*each {
			t.Fatalf("%d records stored, want %d", len(rs), 2*writers*each)
		}
		v := audit.NewVerifier("a")
		seen := map[string]int{}
		for _, r := range rs {
			if err := v.Next(&r); err != nil {
				t.Fatalf("chain written concurrently does not verify: %v", err)
			}
			e, err := r.Event()
			if err != nil {
				t.Fatal(err)
			}
			seen[e.RequestID]++
		}
		for id, n := range seen {
			if n != 2 {
				t.Errorf("event %s stored %d times, want 2 (one batch of two)", id, n)
			}
		}
	})

	t.Run("CrossTenant", func(t *testing.T) {
		s := newStore(t)
		// Interleave every chain's records in batches, all with the same
		// seqs, times, tools and users.
		want := map[string][]audit.Record{}
		heads := map[string]audit.Head{}
		for round := range 3 {
			var batch []audit.Record
			for _, c := range HostileChains {
				var recs []audit.Record
				recs, heads[c] = Records(t, c, heads[c], Event(c, 2*round), Event(c, 2*round+1))
				want[c] = append(want[c], recs...)
				batch = append(batch, recs...)
			}
			if err := s.Append(ctx, batch); err != nil {
				t.Fatalf("Append round %d: %v", round, err)
			}
		}
		for _, c := range HostileChains {
			Checkpoint(t, s, c, Base.Add(time.Hour))
		}
		key := Key()
		for _, c := range HostileChains {
			if h, err := s.Head(ctx, c); err != nil || h != heads[c] {
				t.Errorf("Head(%q) = %+v, %v; want %+v", c, h, err, heads[c])
			}
			if d := Diff(want[c], ScanAll(t, s, c, 1)); d != "" {
				t.Errorf("Scan(%q) (-want +got):\n%s", c, d)
			}
			got, err := s.Query(ctx, c, audit.Filter{Tool: "t0", User: "u0", Since: Base})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				if r.Chain != c {
					t.Errorf("Query(%q) returned a record of chain %q", c, r.Chain)
				}
			}
			if len(got) != 1 || got[0].Seq != 1 {
				t.Errorf("Query(%q, t0, u0) = seqs %v, want [1]", c, seqs(got))
			}
			cps, err := s.Checkpoints(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if len(cps) != 1 || cps[0].Chain != c || cps[0].Head != heads[c].Hash {
				t.Errorf("Checkpoints(%q) = %+v, want the one of that chain", c, cps)
			}
			for _, cp := range cps {
				if err := cp.VerifySignature(key.Public().(ed25519.PublicKey)); err != nil {
					t.Error(err)
				}
			}
		}
		cs, err := s.Chains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantChains := slices.Sorted(slices.Values(HostileChains))
		if d := cmp.Diff(wantChains, cs); d != "" {
			t.Errorf("Chains (-want +got):\n%s", d)
		}
		// A record chained on another tenant's head does not go in.
		forged, _ := Records(t, "a", heads["A"], Event("a", 9))
		if err := s.Append(ctx, forged); !errors.Is(err, audit.ErrConflict) {
			t.Errorf("Append to chain a on chain A's head: err = %v, want ErrConflict", err)
		}
	})

	t.Run("Query", func(t *testing.T) {
		s := newStore(t)
		const n = 130
		evs := make([]audit.Event, n)
		for i := range evs {
			evs[i] = Event("a", i)
		}
		// Times need not follow seqs (events are appended when they end).
		evs[50].Time, evs[51].Time = evs[51].Time, evs[50].Time
		evs[90].Time = Base.Add(-time.Hour)
		recs := Append(t, s, "a", evs...)
		AppendN(t, s, "b", 0, 20) // another chain, same values
		at := At
		filters := []audit.Filter{
			{},
			{Limit: 1},
			{Limit: 7},
			{Limit: 500},
			{Since: at(100)},
			{Until: at(10)},
			{Since: at(40), Until: at(60)},
			{Since: at(40).Add(-time.Nanosecond), Until: at(60).Add(time.Nanosecond)},
			{Since: at(40).Add(time.Nanosecond), Until: at(60).Add(-time.Nanosecond)},
			{Since: at(40).Add(time.Microsecond), Until: at(60).Add(time.Microsecond)},
			{Until: Base},
			{Outcome: audit.OutcomeRefused},
			{Outcome: "nope"},
			{Tool: "t1"},
			{User: "u1"},
			{Tool: "t2", User: "u0", Outcome: audit.OutcomeRefused},
			{BeforeSeq: 60},
			{BeforeSeq: 1},
			{BeforeSeq: 2},
			{BeforeSeq: 60, Limit: 5, Tool: "t0"},
			{BeforeSeq: 1000},
			{Since: at(20), Until: at(120), Outcome: audit.OutcomeOK, User: "u1", BeforeSeq: 100, Limit: 3},
		}
		for _, f := range filters {
			got, err := s.Query(ctx, "a", f)
			if err != nil {
				t.Fatalf("Query(%+v): %v", f, err)
			}
			want := reference(recs, evs, f)
			if d := Diff(seqs(want), seqs(got)); d != "" {
				t.Errorf("Query(%+v) seqs (-want +got):\n%s", f, d)
				continue
			}
			if d := Diff(want, got); d != "" {
				t.Errorf("Query(%+v) records (-want +got):\n%s", f, d)
			}
		}
		// Paging with BeforeSeq walks the whole selection once.
		f := audit.Filter{Tool: "t1", Limit: 4}
		var paged []audit.Record
		for range n {
			page, err := s.Query(ctx, "a", f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			f.BeforeSeq = page[len(page)-1].Seq
		}
		if d := Diff(seqs(reference(recs, evs, audit.Filter{Tool: "t1", Limit: n})), seqs(paged)); d != "" {
			t.Errorf("paging (-want +got):\n%s", d)
		}
		if got, err := s.Query(ctx, "nope", audit.Filter{}); err != nil || len(got) != 0 {
			t.Errorf("Query of an unknown chain = %v, %v", seqs(got), err)
		}
	})

	t.Run("QueryLongChain", func(t *testing.T) {
		// A chain long enough for a store's own time index (SQLite's
		// spans) to matter, appended in batches of many sizes between
		// another chain's, with times that are out of order: some far in
		// the past, some in the future.
		s := newStore(t)
		var recs []audit.Record
		var evs []audit.Event
		next := 0 // the number of the next event
		add := func(n int) {
			first := len(evs)
			for i := next; i < next+n; i++ {
				e := Event("a", i)
				switch {
				case i%97 == 5:
					e.Time = Base.Add(-48 * time.Hour)
				case i%131 == 7:
					e.Time = Base.Add(1000 * time.Hour)
				}
				evs = append(evs, e)
			}
			recs = append(recs, Append(t, s, "a", evs[first:]...)...)
			AppendN(t, s, "b", next, 3)
			next += n
		}
		for _, n := range []int{1, 3, 200, 7, 300, 1, 600, 255, 256, 257, 2} {
			add(n)
		}
		at := At
		filters := []audit.Filter{
			{Since: at(1500)},
			{Since: at(1700)},
			{Since: at(1880), Limit: 500},
			{Until: at(3)},
			{Until: at(300)},
			{Until: Base},
			{Until: Base, Limit: 500},
			{Since: at(400), Until: at(420)},
			{Since: at(255), Until: at(258), Limit: 500},
			{Since: at(700), Until: at(1300), Limit: 500},
			{Since: at(700), Until: at(1300), User: "u1", Tool: "t2", Limit: 500},
			{Since: at(700), Until: at(1300), BeforeSeq: 1000, Limit: 30},
			{Since: Base.Add(-49 * time.Hour), Until: Base.Add(-47 * time.Hour), Limit: 500},
			{Since: Base.Add(999 * time.Hour), Limit: 500},
			{Since: Base.Add(2000 * time.Hour)},
			{Until: Base.Add(-100 * time.Hour)},
			{Since: at(10), Until: at(11)},
		}
		check := func(when string, recs []audit.Record, evs []audit.Event) {
			t.Helper()
			for _, f := range filters {
				got, err := s.Query(ctx, "a", f)
				if err != nil {
					t.Fatalf("%s: Query(%+v): %v", when, f, err)
				}
				if d := Diff(seqs(reference(recs, evs, f)), seqs(got)); d != "" {
					t.Errorf("%s: Query(%+v) seqs (-want +got):\n%s", when, f, d)
				}
			}
		}
		check("appended", recs, evs)
		// Retention removes the oldest run before the cut; the records
		// of the distant past that come after it stay.
		cut := at(500)
		k := 0
		for k < len(evs) && evs[k].Time.Before(cut) {
			k++
		}
		if _, err := s.DeleteBefore(ctx, cut); err != nil {
			t.Fatal(err)
		}
		recs, evs = recs[k:], evs[k:]
		check("after DeleteBefore", recs, evs)
		add(300)
		check("appended after DeleteBefore", recs, evs)
		filters = append(filters, audit.Filter{Since: at(1880), Until: at(2000), Limit: 500})
	})

	t.Run("Checkpoints", func(t *testing.T) {
		s := newStore(t)
		key := Key()
		pub := key.Public().(ed25519.PublicKey)
		AppendN(t, s, "a", 0, 3)
		// Nanoseconds, a non-UTC zone and the zero hash must all survive.
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		var want []audit.Checkpoint
		for i, at := range []time.Time{
			time.Date(2026, 3, 1, 13, 0, 0, 123456789, time.UTC),
			time.Date(2026, 3, 1, 18, 30, 1, 1, zone),
			time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
			time.Date(2300, 1, 1, 0, 0, 0, 7, time.UTC),
		} {
			h, _ := s.Head(ctx, "a")
			cp := audit.Checkpoint{Chain: "a", Count: h.Seq - uint64(i%2), Head: h.Hash, Time: at}
			cp.Sign(key)
			if err := s.PutCheckpoint(ctx, &cp); err != nil {
				t.Fatalf("PutCheckpoint: %v", err)
			}
			want = append(want, cp)
		}
		empty := audit.Checkpoint{Chain: audit.SystemChain, Time: Base}
		empty.Sign(key)
		if err := s.PutCheckpoint(ctx, &empty); err != nil {
			t.Fatalf("PutCheckpoint of an empty chain: %v", err)
		}
		unsigned := audit.Checkpoint{Chain: "b", Count: 1, Time: Base.In(zone), KeyID: "k"}
		if err := s.PutCheckpoint(ctx, &unsigned); err != nil {
			t.Fatalf("PutCheckpoint unsigned: %v", err)
		}
		got, err := s.Checkpoints(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff(want, got); d != "" {
			t.Errorf("Checkpoints (-want +got):\n%s", d)
		}
		for _, cp := range got {
			if err := cp.VerifySignature(pub); err != nil {
				t.Errorf("stored checkpoint: %v", err)
			}
		}
		sys, err := s.Checkpoints(ctx, audit.SystemChain)
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff([]audit.Checkpoint{empty}, sys); d != "" {
			t.Errorf("Checkpoints of SystemChain (-want +got):\n%s", d)
		}
		b, err := s.Checkpoints(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff([]audit.Checkpoint{unsigned}, b); d != "" {
			t.Errorf("unsigned checkpoint (-want +got):\n%s", d)
		}
		if cps, _ := s.Checkpoints(ctx, "c"); len(cps) != 0 {
			t.Errorf("Checkpoints of a chain without any: %v", cps)
		}
		// Checkpoints are not records: no chain appears for them.
		if cs, _ := s.Chains(ctx); !slices.Equal(cs, []string{"a"}) {
			t.Errorf("Chains = %q, want [a]", cs)
		}
	})

	t.Run("PutCheckpoints", func(t *testing.T) {
		s := newStore(t)
		b, ok := s.(audit.CheckpointBatcher)
		if !ok {
			t.Skip("the store stores checkpoints one at a time only")
		}
		key := Key()
		AppendN(t, s, "a", 0, 3)
		AppendN(t, s, "b", 0, 2)
		ha, _ := s.Head(ctx, "a")
		hb, _ := s.Head(ctx, "b")
		at := time.Date(2026, 3, 1, 13, 0, 0, 123456789, time.UTC)
		cps := []audit.Checkpoint{
			{Chain: "a", Count: ha.Seq, Head: ha.Hash, Time: at},
			{Chain: "b", Count: hb.Seq, Head: hb.Hash, Time: at.Add(time.Nanosecond)},
			{Chain: "a", Count: 1, Head: ha.Hash, Time: at.Add(time.Second)}, // stored as given, later than the first
		}
		for i := range cps {
			cps[i].Sign(key)
		}
		if err := b.PutCheckpoints(ctx, cps); err != nil {
			t.Fatalf("PutCheckpoints: %v", err)
		}
		if err := b.PutCheckpoints(ctx, nil); err != nil {
			t.Errorf("PutCheckpoints of none: %v", err)
		}
		for chain, want := range map[string][]audit.Checkpoint{"a": {cps[0], cps[2]}, "b": {cps[1]}} {
			got, err := s.Checkpoints(ctx, chain)
			if err != nil {
				t.Fatal(err)
			}
			if d := Diff(want, got); d != "" {
				t.Errorf("Checkpoints(%q) (-want +got):\n%s", chain, d)
			}
		}
		// All or none: a batch with a checkpoint the store refuses
		// stores nothing.
		bad := []audit.Checkpoint{{Chain: "c", Count: 1, Time: at}, {Chain: "c", Count: 1 << 63, Time: at}}
		if err := b.PutCheckpoints(ctx, bad); err != nil {
			if got, _ := s.Checkpoints(ctx, "c"); len(got) != 0 {
				t.Errorf("a refused PutCheckpoints stored %d checkpoints", len(got))
			}
		}
	})

	t.Run("Chains", func(t *testing.T) {
		s := newStore(t)
		AppendN(t, s, "b", 0, 2)
		AppendN(t, s, audit.SystemChain, 0, 1)
		AppendN(t, s, "a", 0, 1)
		AppendN(t, s, "b", 2, 1)
		cs, err := s.Chains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{audit.SystemChain, "a", "b"}; !slices.Equal(cs, want) {
			t.Errorf("Chains = %q, want %q", cs, want)
		}
	})

	t.Run("DeleteBefore", func(t *testing.T) {
		s := newStore(t)
		AppendN(t, s, "a", 0, 10) // minutes 0..9
		cpA10 := Checkpoint(t, s, "a", Base.Add(10*time.Minute))
		AppendN(t, s, "a", 10, 5)
		cpA15 := Checkpoint(t, s, "a", Base.Add(20*time.Minute))
		// Chain b's times go back and forth: only the oldest prefix goes.
		evs := []audit.Event{Event("b", 0), Event("b", 1), Event("b", 7), Event("b", 2), Event("b", 8)}
		Append(t, s, "b", evs...)
		cpB := Checkpoint(t, s, "b", Base.Add(4*time.Minute)) // older than the cut
		AppendN(t, s, audit.SystemChain, 100, 2)              // all newer
		headA, _ := s.Head(ctx, "a")

		cut := Base.Add(5 * time.Minute) // event 5 is at the cut: kept
		n, err := s.DeleteBefore(ctx, cut)
		if err != nil {
			t.Fatalf("DeleteBefore: %v", err)
		}
		if n != 5+2 {
			t.Errorf("DeleteBefore removed %d records, want 7 (a: 0-4, b: 0-1)", n)
		}
		for chain, want := range map[string][]uint64{"a": {6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, "b": {3, 4, 5}, audit.SystemChain: {1, 2}} {
			rs := ScanAll(t, s, chain, 1)
			if d := cmp.Diff(want, seqs(rs)); d != "" {
				t.Errorf("chain %q after DeleteBefore (-want +got):\n%s", chain, d)
				continue
			}
			from := audit.Head{Seq: rs[0].Seq - 1, Hash: rs[0].Prev}
			v := audit.NewVerifierFrom(chain, from)
			for _, r := range rs {
				if err := v.Next(&r); err != nil {
					t.Errorf("chain %q after DeleteBefore: %v", chain, err)
				}
			}
			// The kept records are untouched by the cut.
			if d := Diff(rs[1:], ScanAll(t, s, chain, rs[1].Seq)); d != "" {
				t.Errorf("Scan(%q) from the middle (-want +got):\n%s", chain, d)
			}
		}
		if h, _ := s.Head(ctx, "a"); h != headA {
			t.Errorf("Head(a) after DeleteBefore = %+v, want %+v", h, headA)
		}
		cps, err := s.Checkpoints(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff([]audit.Checkpoint{cpA10, cpA15}, cps); d != "" {
			t.Errorf("checkpoints of a (-want +got):\n%s", d)
		}
		if cps, _ := s.Checkpoints(ctx, "b"); len(cps) != 0 {
			t.Errorf("checkpoint older than the cut kept: %+v (was %+v)", cps, cpB)
		}
		rep, err := audit.VerifyStore(ctx, s, "a", Key().Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.From.Seq != 5 || rep.Checkpoints != 2 {
			t.Errorf("VerifyStore(a) after DeleteBefore = %s, from %d, %d checkpoints, %d past retention; want OK from 5 with 2 checkpoints",
				rep.Status(), rep.From.Seq, rep.Checkpoints, rep.PastRetention)
		}
		if got, err := s.Query(ctx, "a", audit.Filter{Until: cut}); err != nil || len(got) != 0 {
			t.Errorf("Query before the cut = seqs %v, %v", seqs(got), err)
		}
		if n, err := s.DeleteBefore(ctx, cut); err != nil || n != 0 {
			t.Errorf("DeleteBefore again = %d, %v; want 0", n, err)
		}
		// Appending goes on where the chain stood.
		AppendN(t, s, "b", 20, 1)
		if rs := ScanAll(t, s, "b", 1); len(rs) != 4 || rs[3].Seq != 6 {
			t.Errorf("chain b after an append: seqs %v, want [3 4 5 6]", seqs(rs))
		}
	})

	t.Run("DeleteBeforeEmptiesChain", func(t *testing.T) {
		s := newStore(t)
		AppendN(t, s, "a", 0, 4)
		head, _ := s.Head(ctx, "a")
		Checkpoint(t, s, "a", Base.Add(time.Hour)) // newer than the cut, covering only removed records
		AppendN(t, s, "b", 100, 1)
		n, err := s.DeleteBefore(ctx, Base.Add(30*time.Minute))
		if err != nil || n != 4 {
			t.Fatalf("DeleteBefore = %d, %v; want 4", n, err)
		}
		if h, err := s.Head(ctx, "a"); err != nil || h != head {
			t.Errorf("Head of a chain retention emptied = %+v, %v; want %+v (it keeps its place)", h, err, head)
		}
		if cs, _ := s.Chains(ctx); !slices.Equal(cs, []string{"b"}) {
			t.Errorf("Chains = %q, want [b]", cs)
		}
		if cps, _ := s.Checkpoints(ctx, "a"); len(cps) != 0 {
			t.Errorf("checkpoints covering only removed records kept: %+v", cps)
		}
		rep, err := audit.VerifyStore(ctx, s, "a", Key().Public().(ed25519.PublicKey))
		if err != nil || !rep.OK() {
			t.Errorf("VerifyStore of the emptied chain = %v, %v", rep.Status(), err)
		}
		restart, _ := Records(t, "a", audit.Head{}, Event("a", 50))
		if err := s.Append(ctx, restart); !errors.Is(err, audit.ErrConflict) {
			t.Errorf("Append of seq 1 to an emptied chain: err = %v, want ErrConflict", err)
		}
		AppendN(t, s, "a", 50, 2)
		rs := ScanAll(t, s, "a", 1)
		if len(rs) != 2 || rs[0].Seq != 5 || rs[0].Prev != head.Hash {
			t.Fatalf("chain a after new appends: seqs %v, want [5 6] linked to the old head", seqs(rs))
		}
		rep, err = audit.VerifyStore(ctx, s, "a", Key().Public().(ed25519.PublicKey))
		if err != nil || !rep.OK() || rep.From != head {
			t.Errorf("VerifyStore after new appends = %v (from %+v), %v", rep.Status(), rep.From, err)
		}
	})

	t.Run("BodiesByteForByte", func(t *testing.T) {
		s := newStore(t)
		t0 := `"time":"2026-03-01T12:00:00.000001Z"`
		bodies := []string{
			`{` + t0 + `,"kind":"request","outcome":"ok"}`,
			"{ \"outcome\" : \"ok\",\n\t\"kind\":\"request\", " + t0 + " }",
			`{` + t0 + `,"kind":"request","outcome":"ok","user":"\u00e9\u2028\ud83d\ude00","tool":"é😀"}`,
			`{` + t0 + `,"kind":"request","outcome":"ok","detail":{"b":"1","a":"2","a":"3"}}`,
			`{` + t0 + `,"kind":"request","outcome":"ok","user":"` + "\xff\xfe bad utf-8" + `"}`,
			`{` + t0 + `,"kind":"request","outcome":"ok","args":{"n":1.50,"e":1E3,"z":-0,"s":"\u0000"}}`,
			`{` + t0 + `,"kind":"request","outcome":"ok","method":"` + "\\\"quoted\\\" ' %_ \\\\" + `"}` + "\n",
			`{` + t0 + `,"kind":"request","outcome":"ok","args":"` + longString(1<<20) + `"}`,
		}
		var recs []audit.Record
		h := audit.Head{}
		for _, b := range bodies {
			var r audit.Record
			r, h = h.Next("a", []byte(b))
			recs = append(recs, r)
		}
		if err := s.Append(ctx, recs); err != nil {
			t.Fatalf("Append: %v", err)
		}
		got := ScanAll(t, s, "a", 1)
		if len(got) != len(bodies) {
			t.Fatalf("Scan returned %d records, want %d", len(got), len(bodies))
		}
		for i, r := range got {
			if string(r.Body) != bodies[i] {
				t.Errorf("Scan: body %d changed: %.200q, want %.200q", i+1, r.Body, bodies[i])
			}
			if audit.Link(r.Prev, r.Body) != r.Hash {
				t.Errorf("Scan: body %d no longer hashes to its hash", i+1)
			}
		}
		q, err := s.Query(ctx, "a", audit.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range q {
			if string(r.Body) != bodies[r.Seq-1] {
				t.Errorf("Query: body %d changed: %.200q", r.Seq, r.Body)
			}
		}
	})

	t.Run("LargeBatch", func(t *testing.T) {
		s := newStore(t)
		const n = 5000
		var batch []audit.Record
		var ha, hb audit.Head
		for i := range n / 2 {
			var ra, rb []audit.Record
			ra, ha = Records(t, "a", ha, Event("a", i))
			rb, hb = Records(t, "b", hb, Event("b", i))
			batch = append(batch, ra[0], rb[0])
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatalf("Append of %d records: %v", n, err)
		}
		for chain, want := range map[string]audit.Head{"a": ha, "b": hb} {
			if h, _ := s.Head(ctx, chain); h != want {
				t.Errorf("Head(%q) = %+v, want %+v", chain, h, want)
			}
			v := audit.NewVerifier(chain)
			var count int
			err := s.Scan(ctx, chain, 1, func(r *audit.Record) error { count++; return v.Next(r) })
			if err != nil || count != n/2 {
				t.Errorf("Scan(%q): %d records, %v; want %d", chain, count, err, n/2)
			}
		}
		// A large batch on a stale head stores nothing.
		if err := s.Append(ctx, batch); !errors.Is(err, audit.ErrConflict) {
			t.Errorf("Append of a large batch again: err = %v, want ErrConflict", err)
		}
		// Nor does one whose very last record does not follow.
		evs := make([]audit.Event, n)
		for i := range evs {
			evs[i] = Event("a", n+i)
		}
		more, _ := Records(t, "a", ha, evs...)
		more[n-1].Seq++
		if err := s.Append(ctx, more); !errors.Is(err, audit.ErrConflict) {
			t.Errorf("Append of a large batch with a bad last record: err = %v, want ErrConflict", err)
		}
		// Nor one with a body that is not an event half way through.
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = more[i].Body
		}
		bodies[n/2] = []byte(`["not", "an", "event"]`)
		bad, _ := Chain("a", ha, bodies...)
		if err := s.Append(ctx, bad); err == nil {
			t.Errorf("Append of a large batch with a body that is not an event: err = nil")
		}
		if h, _ := s.Head(ctx, "a"); h.Seq != n/2 {
			t.Errorf("Head after the refused batch = %d, want %d", h.Seq, n/2)
		}
	})

	t.Run("Scan", func(t *testing.T) {
		s := newStore(t)
		AppendN(t, s, "a", 0, 2500)
		stop := errors.New("stop")
		var got int
		err := s.Scan(ctx, "a", 1, func(r *audit.Record) error {
			got++
			if r.Seq == 1200 {
				return stop
			}
			return nil
		})
		if err != stop || got != 1200 {
			t.Errorf("Scan stopped by fn: %d records, err = %v; want 1200, the error fn returned", got, err)
		}
		// fn may use the store (a verifier may, an export does).
		var n int
		err = s.Scan(ctx, "a", 2400, func(r *audit.Record) error {
			n++
			if _, err := s.Head(ctx, "a"); err != nil {
				return err
			}
			if r.Seq == 2400 {
				AppendN(t, s, "b", 0, 1)
			}
			_, err := s.Query(ctx, "a", audit.Filter{Limit: 1})
			return err
		})
		if err != nil || n != 101 {
			t.Errorf("Scan calling the store: %d records, %v; want 101", n, err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err = s.Scan(cctx, "a", 1, func(*audit.Record) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Scan with a cancelled context: err = %v, want context.Canceled", err)
		}
	})
}

func longString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

// reference is Query as the contract defines it, over the records and
// the events they were made from.
func reference(recs []audit.Record, evs []audit.Event, f audit.Filter) []audit.Record {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []audit.Record
	for i := len(recs) - 1; i >= 0 && len(out) < limit; i-- {
		r, e := recs[i], evs[i]
		tm := e.Time.Truncate(time.Microsecond)
		switch {
		case f.BeforeSeq != 0 && r.Seq >= f.BeforeSeq,
			!f.Since.IsZero() && tm.Before(f.Since),
			!f.Until.IsZero() && !tm.Before(f.Until),
			f.Outcome != "" && e.Outcome != f.Outcome,
			f.Tool != "" && e.Tool != f.Tool,
			f.User != "" && e.User != f.User:
			continue
		}
		out = append(out, r)
	}
	return out
}
