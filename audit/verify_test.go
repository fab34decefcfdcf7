package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TODO(lead): the same tampering against the SQLite and PostgreSQL
// backends, once audit/audittest has their tamper helpers: edit, delete,
// swap and truncate rows there, then expect the FirstBroken this file
// expects of the MemoryStore.

// testKey is a fixed signing key, so failures read the same every run.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var otherKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

var testPub = testKey.Public().(ed25519.PublicKey)

// t0 is the time of a fixture's first event; event i is i seconds later.
var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const testChain = "t2ah3htpjvblvvvgzhpov"

// fixture is a MemoryStore holding one chain of n events with a
// checkpoint every `every` events and one at the end (as the server
// writes them at intervals and on shutdown).
type fixture struct {
	s     *MemoryStore
	chain string
	n     int
}

func eventTime(seq int) time.Time { return t0.Add(time.Duration(seq) * time.Second) }

func testEvent(chain string, seq int) *Event {
	return &Event{
		Time: eventTime(seq), RequestID: fmt.Sprintf("req-%d", seq), Tenant: chain, ExternalID: "acme",
		Issuer: "https://idp.example.com/", User: "alice", Kind: KindToolCall, Method: "tools/call",
		Tool: "get_document", Outcome: OutcomeOK, LatencyMicros: int64(100 + seq%50), Protocol: "2025-11-25",
		ArgsSize: 42, ArgsSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
}

func setup(t testing.TB, n, every int) *fixture {
	t.Helper()
	f := &fixture{s: NewMemoryStore(), chain: testChain, n: n}
	f.fill(t, testKey, n, every)
	return f
}

func (f *fixture) fill(t testing.TB, key ed25519.PrivateKey, n, every int) {
	t.Helper()
	ctx := context.Background()
	var h Head
	batch := make([]Record, 0, 1000)
	flush := func() {
		if err := f.s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 1; i <= n; i++ {
		body, err := testEvent(f.chain, i).Encode()
		if err != nil {
			t.Fatal(err)
		}
		var r Record
		r, h = h.Next(f.chain, body)
		batch = append(batch, r)
		if len(batch) == cap(batch) || i%every == 0 || i == n {
			flush()
		}
		if i%every == 0 || i == n {
			f.checkpoint(t, key, h)
		}
	}
}

// checkpoint stores a checkpoint of h, made just after its event.
func (f *fixture) checkpoint(t testing.TB, key ed25519.PrivateKey, h Head) {
	t.Helper()
	f.put(t, f.signed(key, h, eventTime(int(h.Seq)).Add(time.Millisecond)))
}

// signed is a checkpoint of h signed with key at time at.
func (f *fixture) signed(key ed25519.PrivateKey, h Head, at time.Time) *Checkpoint {
	cp := &Checkpoint{Chain: f.chain, Count: h.Seq, Head: h.Hash, Time: at}
	cp.Sign(key)
	return cp
}

func (f *fixture) put(t testing.TB, cp *Checkpoint) {
	t.Helper()
	if err := f.s.PutCheckpoint(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
}

// head is the stored head after event seq.
func (f *fixture) head(seq int) Head { return Head{Seq: uint64(seq), Hash: f.records()[seq-1].Hash} }

// Direct manipulation of the stored records, as someone with write
// access to the database would do it.

func (f *fixture) records() []Record { return f.s.chains[f.chain] }

func (f *fixture) set(rs []Record, ts []time.Time) {
	f.s.chains[f.chain], f.s.times[f.chain] = rs, ts
}

// edit changes event seq's body, leaving its hash.
func (f *fixture) edit(seq int) {
	r := &f.records()[seq-1]
	r.Body = bytes.Replace(r.Body, []byte(`"alice"`), []byte(`"mallory"`), 1)
}

// rewrite changes event seq's body and rehashes the chain from there on,
// as someone who knows the format but not the key would.
func (f *fixture) rewrite(seq int) {
	f.edit(seq)
	f.rehash(seq)
}

// rehash recomputes every link and hash from event seq on.
func (f *fixture) rehash(seq int) {
	rs := f.records()
	h := Head{Seq: uint64(seq - 1), Hash: rs[seq-1].Prev}
	for i := seq - 1; i < len(rs); i++ {
		rs[i], h = h.Next(f.chain, rs[i].Body)
	}
}

// remove deletes event seq; renumber also renumbers and relinks the ones
// after it (without rehashing the bodies, which it cannot hide).
func (f *fixture) remove(seq int, renumber bool) {
	rs, ts := f.records(), f.s.times[f.chain]
	rs = slices.Delete(slices.Clone(rs), seq-1, seq)
	ts = slices.Delete(slices.Clone(ts), seq-1, seq)
	if renumber {
		for i := seq - 1; i < len(rs); i++ {
			rs[i].Seq--
		}
		rs[seq-1].Prev = rs[seq-2].Hash
	}
	f.set(rs, ts)
}

// swap exchanges events seq and seq+1 in storage order; renumber keeps
// the sequence numbers in order (the bodies and hashes move).
func (f *fixture) swap(seq int, renumber bool) {
	rs, ts := f.records(), f.s.times[f.chain]
	i := seq - 1
	rs[i], rs[i+1] = rs[i+1], rs[i]
	ts[i], ts[i+1] = ts[i+1], ts[i]
	if renumber {
		rs[i].Seq, rs[i+1].Seq = rs[i+1].Seq, rs[i].Seq
	}
}

// truncate removes the last k events.
func (f *fixture) truncate(k int) {
	rs, ts := f.records(), f.s.times[f.chain]
	f.set(rs[:len(rs)-k], ts[:len(ts)-k])
}

// exportReport exports the whole chain and verifies the file.
func exportReport(t *testing.T, s Store, chain string, pub ed25519.PublicKey) (*Report, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(context.Background(), s, chain, time.Time{}, time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyExport(bytes.NewReader(buf.Bytes()), pub)
	if err != nil {
		t.Fatalf("VerifyExport: %v\n%s", err, buf.Bytes())
	}
	return rep, buf.Bytes()
}

// TestTamperingCaught: every kind of tampering with the stored chain is
// found by VerifyStore, and by VerifyExport of an export of it, at the
// same first broken link.
func TestTamperingCaught(t *testing.T) {
	for _, tt := range tamperings {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, 20, 5)
			tt.tamper(f)
			rep, err := VerifyStore(context.Background(), f.s, f.chain, testPub)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.FirstBroken.Seq != tt.seq || !strings.Contains(rep.FirstBroken.Reason, tt.reason) || !errors.Is(rep.Err(), ErrBroken) {
				t.Fatalf("VerifyStore: %s\nwant BROKEN at event %d: …%s…", rep.Status(), tt.seq, tt.reason)
			}
			xrep, file := exportReport(t, f.s, f.chain, testPub)
			if diff := cmp.Diff(rep.FirstBroken, xrep.FirstBroken); diff != "" {
				t.Errorf("VerifyExport names another first broken link than VerifyStore (-store +export):\n%s\n%s", diff, file)
			}
		})
	}
}

// tamperings are the kinds of tampering TestTamperingCaught checks (and
// FuzzVerifyExport's seeds), each on a fixture of 20 events with
// checkpoints at 5, 10, 15 and 20, with the first broken link it leaves.
var tamperings = []struct {
	name   string
	tamper func(*fixture)
	seq    uint64
	reason string // a part of the ChainError's Reason
}{
	{"edited", func(f *fixture) { f.edit(7) }, 7, "hash does not match its content (changed)"},
	{"edited and rehashed", func(f *fixture) { f.rewrite(7) }, 10, "events 6 to 10 were rewritten"},
	{"edited and rehashed at a checkpoint", func(f *fixture) { f.rewrite(20) }, 20, "events 16 to 20 were rewritten"},
	{"deleted", func(f *fixture) { f.remove(7, false) }, 7, "event 7 is missing (next is 8)"},
	{"deleted and renumbered", func(f *fixture) { f.remove(7, true) }, 7, "hash does not match its content"},
	{"deleted, renumbered and relinked", func(f *fixture) {
		f.remove(7, true)
		f.rehash(7) // from the gap on, so every link and hash holds
	}, 10, "events 6 to 10 were rewritten"},
	{"swapped", func(f *fixture) { f.swap(7, false) }, 7, "event 7 is missing (next is 8)"},
	{"swapped and renumbered", func(f *fixture) { f.swap(7, true) }, 7, "does not link to the previous event"},
	{"first event edited", func(f *fixture) { f.edit(1) }, 1, "hash does not match its content"},
	{"tail truncated", func(f *fixture) { f.truncate(3) }, 18, "a signed checkpoint covers 20 events but only 17 remain (truncated)"},
	{"tail truncated past a checkpoint", func(f *fixture) { f.truncate(8) }, 13, "covers 15 events but only 12 remain (truncated)"},
	{"all events removed", func(f *fixture) { f.truncate(20) }, 1, "covers 5 events but only 0 remain (truncated)"},
	{"body no longer JSON", func(f *fixture) { f.records()[11].Body = []byte("{\"time\":\n garbage") }, 12, "hash does not match its content"},
	{"checkpoint by another key", func(f *fixture) {
		f.s.cps[f.chain] = append(f.s.cps[f.chain], *f.signed(otherKey, f.head(12), eventTime(12)))
	}, 12, "checkpoint is signed by key " + KeyID(otherKey.Public().(ed25519.PublicKey)) + ", not by the key given (" + KeyID(testPub) + ")"},
	{"checkpoint altered", func(f *fixture) { f.s.cps[f.chain][1].Count = 11 }, 11, "checkpoint signature does not verify (forged or altered)"},
	{"checkpoint re-signed with a forged key id", func(f *fixture) {
		cp := f.signed(otherKey, f.head(14), eventTime(14))
		cp.KeyID = KeyID(testPub)
		f.s.cps[f.chain][2] = *cp
	}, 14, "checkpoint signature does not verify (forged or altered)"},
}

// TestVerifyIntact: an untouched chain verifies, with every checkpoint.
func TestVerifyIntact(t *testing.T) {
	f := setup(t, 23, 5)
	rep, err := VerifyStore(context.Background(), f.s, f.chain, testPub)
	if err != nil {
		t.Fatal(err)
	}
	rs := f.records()
	want := &Report{
		Chain: f.chain, Events: 23, Head: Head{Seq: 23, Hash: rs[22].Hash}, Checkpoints: 5, Signed: 23,
		Latest: &f.s.cps[f.chain][4],
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Fatalf("VerifyStore (-want +got):\n%s", diff)
	}
	if rep.Status() != "OK" || rep.Unsigned() != 0 {
		t.Errorf("Status %q, Unsigned %d", rep.Status(), rep.Unsigned())
	}
	xrep, _ := exportReport(t, f.s, f.chain, testPub)
	if diff := cmp.Diff(want, xrep); diff != "" {
		t.Fatalf("VerifyExport (-want +got):\n%s", diff)
	}
}

// TestVerifyOtherKey: checkpoints are refused with any key but the
// signing key's, so a forged trail with checkpoints of the forger's own
// key does not pass.
func TestVerifyOtherKey(t *testing.T) {
	f := setup(t, 10, 5)
	other := otherKey.Public().(ed25519.PublicKey)
	rep, err := VerifyStore(context.Background(), f.s, f.chain, other)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.FirstBroken.Seq != 5 || !strings.Contains(rep.FirstBroken.Reason, "not by the key given") {
		t.Fatalf("verified with another key: %s", rep.Status())
	}
	xrep, _ := exportReport(t, f.s, f.chain, other)
	if xrep.OK() || xrep.FirstBroken.Seq != 5 {
		t.Fatalf("export verified with another key: %s", xrep.Status())
	}
}

// TestVerifyRetention: a chain whose oldest events were removed by
// retention verifies from its first kept event, and the report says so.
func TestVerifyRetention(t *testing.T) {
	f := setup(t, 20, 5)
	early := f.signed(testKey, f.head(3), eventTime(30))
	if _, err := f.s.DeleteBefore(context.Background(), eventTime(8)); err != nil {
		t.Fatal(err)
	}
	for _, verify := range []func() *Report{
		func() *Report {
			rep, err := VerifyStore(context.Background(), f.s, f.chain, testPub)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		},
		func() *Report { rep, _ := exportReport(t, f.s, f.chain, testPub); return rep },
	} {
		rep := verify()
		if want := "OK, starts at event 8 (earlier events past retention)"; rep.Status() != want {
			t.Errorf("Status %q, want %q", rep.Status(), want)
		}
		if rep.From.Seq != 7 || rep.Events != 13 || rep.Checkpoints != 3 || rep.Signed != 20 {
			t.Errorf("report %+v", rep)
		}
	}
	// A checkpoint of removed events (which DeleteBefore removes too, but
	// a backend might keep): its signature is checked, its hash cannot be.
	f.put(t, early)
	rep, _ := VerifyStore(context.Background(), f.s, f.chain, testPub)
	if rep.PastRetention != 1 {
		t.Errorf("PastRetention %d, want 1", rep.PastRetention)
	}
	// A checkpoint at the boundary is compared with the first kept
	// event's Prev.
	f.put(t, f.signed(testKey, Head{Seq: 7, Hash: Hash{1}}, eventTime(40)))
	rep, _ = VerifyStore(context.Background(), f.s, f.chain, testPub)
	if rep.OK() || rep.FirstBroken.Seq != 7 || !strings.Contains(rep.FirstBroken.Reason, "differs from the signed checkpoint") {
		t.Errorf("a checkpoint at the boundary disagreeing with Prev: %s", rep.Status())
	}
}

// TestVerifyRetentionEmptied: a chain that retention emptied verifies
// from its kept head, with no events.
func TestVerifyRetentionEmptied(t *testing.T) {
	f := setup(t, 10, 5)
	if _, err := f.s.DeleteBefore(context.Background(), eventTime(100)); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyStore(context.Background(), f.s, f.chain, testPub)
	if err != nil {
		t.Fatal(err)
	}
	xrep, _ := exportReport(t, f.s, f.chain, testPub)
	for _, r := range []*Report{rep, xrep} {
		if want := "OK, starts at event 11 (earlier events past retention)"; r.Status() != want || r.Events != 0 {
			t.Errorf("Status %q (%d events), want %q", r.Status(), r.Events, want)
		}
	}
}

// TestVerifyEmpty: a chain without events or checkpoints verifies (there
// is nothing to prove); unsigned events are counted as such.
func TestVerifyEmpty(t *testing.T) {
	s := NewMemoryStore()
	rep, err := VerifyStore(context.Background(), s, "tnothing", testPub)
	if err != nil || !rep.OK() || rep.Events != 0 || rep.Status() != "OK" {
		t.Fatalf("empty chain: %+v, %v", rep, err)
	}
	f := setup(t, 7, 5) // checkpoint at 5 and 7
	f.s.cps[f.chain] = f.s.cps[f.chain][:1]
	rep, _ = VerifyStore(context.Background(), f.s, f.chain, testPub)
	if !rep.OK() || rep.Signed != 5 || rep.Unsigned() != 2 {
		t.Fatalf("7 events, a checkpoint at 5: %+v", rep)
	}
}

// TestVerifySystemChain: the chain of no tenant verifies like any other
// and is named "system" in errors.
func TestVerifySystemChain(t *testing.T) {
	f := &fixture{s: NewMemoryStore(), chain: SystemChain}
	f.fill(t, testKey, 12, 5)
	rep, err := VerifyStore(context.Background(), f.s, SystemChain, testPub)
	if err != nil || !rep.OK() || rep.Events != 12 || rep.Checkpoints != 3 {
		t.Fatalf("system chain: %+v %v", rep, err)
	}
	f.edit(3)
	rep, _ = VerifyStore(context.Background(), f.s, SystemChain, testPub)
	if want := "audit chain system broken at event 3: hash does not match its content (changed)"; rep.Err() == nil || rep.Err().Error() != want {
		t.Fatalf("system chain edited: %v, want %s", rep.Err(), want)
	}
}

// failingStore fails Scan, as an unreachable database would.
type failingStore struct{ *MemoryStore }

var errDown = errors.New("database down")

func (failingStore) Scan(context.Context, string, uint64, func(*Record) error) error { return errDown }

// TestVerifyStoreError: a store that cannot be read is an error, not a
// broken chain.
func TestVerifyStoreError(t *testing.T) {
	_, err := VerifyStore(context.Background(), failingStore{NewMemoryStore()}, testChain, testPub)
	if !errors.Is(err, errDown) || errors.Is(err, ErrBroken) {
		t.Fatalf("err = %v", err)
	}
	if err := Export(context.Background(), failingStore{NewMemoryStore()}, testChain, time.Time{}, time.Time{}, &bytes.Buffer{}); !errors.Is(err, errDown) {
		t.Fatalf("Export err = %v", err)
	}
}

// BenchmarkVerifyStore verifies a chain of 1,000,000 events with a
// checkpoint every 10,000 (from a MemoryStore: hashing and checking, not
// database reads).
func BenchmarkVerifyStore(b *testing.B) {
	f := setup(b, 1_000_000, 10_000)
	for b.Loop() {
		rep, err := VerifyStore(context.Background(), f.s, f.chain, testPub)
		if err != nil || !rep.OK() || rep.Events != 1_000_000 {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/event")
}
