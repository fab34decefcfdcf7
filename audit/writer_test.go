package audit_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
}

func newWriter(t testing.TB, store audit.Store, opts *audit.WriterOptions) *audit.Writer {
	t.Helper()
	w, err := audit.NewWriter(store, testKey(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Close(ctx) // bounded: a test that leaves a slot reserved fails instead of hanging
	})
	return w
}

func event(chain string, i int) *audit.Event {
	return &audit.Event{Time: time.Unix(1700000000, 0), Tenant: chain, RequestID: fmt.Sprintf("r%d", i), Kind: audit.KindRequest, Method: "tools/list", Outcome: audit.OutcomeOK}
}

// verifyChains checks every chain of store link by link and against each
// of its checkpoints (signed with testKey), and returns how many events
// each holds.
func verifyChains(t *testing.T, store audit.Store) map[string]int {
	t.Helper()
	ctx := context.Background()
	pub := testKey(t).Public().(ed25519.PublicKey)
	chains, err := store.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, c := range chains {
		v := audit.NewVerifier(c)
		hashes := map[uint64]audit.Hash{}
		err := store.Scan(ctx, c, 1, func(r *audit.Record) error {
			hashes[r.Seq] = r.Hash
			return v.Next(r)
		})
		if err != nil {
			t.Fatalf("chain %q: %v", c, err)
		}
		counts[c] = int(v.Head().Seq)
		cps, err := store.Checkpoints(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps {
			if err := cp.VerifySignature(pub); err != nil {
				t.Fatal(err)
			}
			if err := v.Check(&cp, func(seq uint64) (audit.Hash, bool) { h, ok := hashes[seq]; return h, ok }); err != nil {
				t.Fatalf("chain %q: %v", c, err)
			}
		}
	}
	return counts
}

// latestCheckpoint is the count of the chain's newest checkpoint (0 if none).
func latestCheckpoint(t *testing.T, store audit.Store, chain string) uint64 {
	t.Helper()
	cps, err := store.Checkpoints(context.Background(), chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) == 0 {
		return 0
	}
	return cps[len(cps)-1].Count
}

// TestWriterChainsPerTenant: events from many goroutines, through Reserve
// and Record, land once each in their own chain; every chain verifies and
// ends with a checkpoint of its full length after Close.
func TestWriterChainsPerTenant(t *testing.T) {
	t.Parallel()
	store := audit.NewMemoryStore()
	w := newWriter(t, store, &audit.WriterOptions{BatchSize: 16, FlushInterval: time.Millisecond})
	chains := []string{audit.SystemChain, "t_a", "t_b"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 120 {
				e := event(chains[(g+i)%len(chains)], i)
				if i%2 == 0 {
					if err := w.Record(context.Background(), e); err != nil {
						t.Error(err)
					}
					continue
				}
				slot, err := w.Reserve(context.Background())
				if err != nil {
					t.Error(err)
					continue
				}
				slot.Commit(e)
				slot.Commit(event("t_other", i)) // a second commit does nothing
			}
		})
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts := verifyChains(t, store)
	want := map[string]int{audit.SystemChain: 320, "t_a": 320, "t_b": 320}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("events per chain %v, want %v", counts, want)
	}
	for c, n := range want {
		if got := latestCheckpoint(t, store, c); got != uint64(n) {
			t.Errorf("chain %q: final checkpoint at %d, want %d", c, got, n)
		}
	}
	st := w.Stats()
	if st.Written != 960 || st.Dropped != 0 || st.QueueDepth != 0 || st.BatchLatency.Count != st.Batches {
		t.Errorf("stats %+v", st)
	}
}

// countingStore records the size of every Append.
type countingStore struct {
	audit.Store
	mu      sync.Mutex
	batches []int
}

func (s *countingStore) Append(ctx context.Context, recs []audit.Record) error {
	s.mu.Lock()
	s.batches = append(s.batches, len(recs))
	s.mu.Unlock()
	return s.Store.Append(ctx, recs)
}

// TestWriterBatches: a full batch is written at once; the rest waits for
// FlushInterval, or for Flush.
func TestWriterBatches(t *testing.T) {
	t.Parallel()
	store := &countingStore{Store: audit.NewMemoryStore()}
	w := newWriter(t, store, &audit.WriterOptions{BatchSize: 10, FlushInterval: time.Hour})
	for i := range 25 {
		if err := w.Record(context.Background(), event("t_a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	got := fmt.Sprint(store.batches)
	store.mu.Unlock()
	if got != "[10 10 5]" {
		t.Fatalf("batches %s, want [10 10 5]", got)
	}
}

// TestWriterReplicasShareChains: two writers (replicas) appending to the
// same chains of one store lose races to each other (ErrConflict), chain
// again, and lose nothing.
func TestWriterReplicasShareChains(t *testing.T) {
	t.Parallel()
	store := audit.NewMemoryStore()
	opts := &audit.WriterOptions{BatchSize: 8, FlushInterval: time.Millisecond}
	ws := []*audit.Writer{newWriter(t, store, opts), newWriter(t, store, opts)}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for i := range 400 {
				if err := w.Record(context.Background(), event([]string{"t_a", "t_b"}[i%2], i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, w := range ws {
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	counts := verifyChains(t, store)
	if counts["t_a"] != 400 || counts["t_b"] != 400 {
		t.Fatalf("events per chain %v, want 400 each", counts)
	}
	if d := ws[0].Stats().Dropped + ws[1].Stats().Dropped; d != 0 {
		t.Fatalf("%d dropped", d)
	}
	t.Logf("conflicts: %d + %d", ws[0].Stats().Conflicts, ws[1].Stats().Conflicts)
}

// flakyStore fails the next failures Appends; with storeThenFail it
// stores the records first (an error after the commit).
type flakyStore struct {
	audit.Store
	failures      atomic.Int32
	storeThenFail bool
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Append(ctx context.Context, recs []audit.Record) error {
	if s.failures.Add(-1) < 0 {
		return s.Store.Append(ctx, recs)
	}
	if s.storeThenFail {
		if err := s.Store.Append(ctx, recs); err != nil {
			return err
		}
	}
	return errStoreDown
}

// TestWriterRetriesFailingStore: failed Appends are retried; nothing is
// lost, and each failure is counted.
func TestWriterRetriesFailingStore(t *testing.T) {
	t.Parallel()
	store := &flakyStore{Store: audit.NewMemoryStore()}
	store.failures.Store(3)
	w := newWriter(t, store, &audit.WriterOptions{FlushInterval: time.Millisecond})
	for i := range 20 {
		if err := w.Record(context.Background(), event("t_a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := verifyChains(t, store)["t_a"]; n != 20 {
		t.Fatalf("%d events stored, want 20", n)
	}
	if st := w.Stats(); st.AppendErrors != 3 || st.Dropped != 0 {
		t.Fatalf("stats %+v: want 3 append errors, none dropped", st)
	}
}

// TestWriterAmbiguousAppend: an Append that stored its batch but
// reported an error (a timeout after the commit) is not stored twice.
func TestWriterAmbiguousAppend(t *testing.T) {
	t.Parallel()
	store := &flakyStore{Store: audit.NewMemoryStore(), storeThenFail: true}
	store.failures.Store(1)
	w := newWriter(t, store, &audit.WriterOptions{FlushInterval: time.Millisecond})
	for i := range 5 {
		if err := w.Record(context.Background(), event("t_a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := verifyChains(t, store)["t_a"]; n != 5 {
		t.Fatalf("%d events stored, want 5 (each once)", n)
	}
}

// blockingStore holds every Append until open is closed.
type blockingStore struct {
	audit.Store
	open chan struct{}
}

func (s *blockingStore) Append(ctx context.Context, recs []audit.Record) error {
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Append(ctx, recs)
}

// TestWriterBackpressure: with the store stuck, the queue fills; Reserve
// then fails after MaxWait with ErrBackpressure, Record counts a drop, and
// once the store moves every reserved event is stored.
func TestWriterBackpressure(t *testing.T) {
	t.Parallel()
	store := &blockingStore{Store: audit.NewMemoryStore(), open: make(chan struct{})}
	w := newWriter(t, store, &audit.WriterOptions{QueueSize: 4, MaxWait: 10 * time.Millisecond, FlushInterval: time.Millisecond})
	var slots []*audit.Slot
	for range 4 {
		s, err := w.Reserve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	if _, err := w.Reserve(context.Background()); !errors.Is(err, audit.ErrBackpressure) {
		t.Fatalf("Reserve on a full queue: %v, want ErrBackpressure", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Reserve(ctx); !errors.Is(err, audit.ErrBackpressure) {
		t.Fatalf("Reserve with a done context on a full queue: %v, want ErrBackpressure", err)
	}
	if err := w.Record(context.Background(), event("t_a", 99)); !errors.Is(err, audit.ErrBackpressure) {
		t.Fatalf("Record on a full queue: %v, want ErrBackpressure", err)
	}
	for i, s := range slots {
		s.Commit(event("t_a", i))
	}
	if st := w.Stats(); st.QueueDepth != 4 || st.Dropped != 1 || st.Backpressure != 3 {
		t.Fatalf("stats %+v: want depth 4, 1 dropped, 3 backpressure", st)
	}
	close(store.open)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := verifyChains(t, store)["t_a"]; n != 4 {
		t.Fatalf("%d events stored, want the 4 reserved", n)
	}
	s, err := w.Reserve(context.Background())
	if err != nil {
		t.Fatalf("Reserve after the queue drained: %v", err)
	}
	s.Commit(event("t_a", 5))
}

// TestWriterCloseOutOfTime: with the store down, Close gives up at its
// deadline, says how many events were not written and counts them.
func TestWriterCloseOutOfTime(t *testing.T) {
	t.Parallel()
	store := &flakyStore{Store: audit.NewMemoryStore()}
	store.failures.Store(1 << 30)
	w := newWriter(t, store, &audit.WriterOptions{FlushInterval: time.Millisecond})
	for i := range 3 {
		if err := w.Record(context.Background(), event("t_a", i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "3 audit events not written") {
		t.Fatalf("Close: %v, want 3 events not written", err)
	}
	if st := w.Stats(); st.Dropped != 3 || st.AppendErrors == 0 || st.QueueDepth != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err2 := w.Close(context.Background()); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second Close: %v, want %v", err2, err)
	}
}

// TestWriterClosed: a closed writer takes nothing more, and says so.
func TestWriterClosed(t *testing.T) {
	t.Parallel()
	w := newWriter(t, audit.NewMemoryStore(), nil)
	slot, err := w.Reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- w.Close(context.Background()) }()
	// Close waits for the reserved slot.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a slot still reserved", err)
	case <-time.After(20 * time.Millisecond):
	}
	slot.Commit(event("t_a", 1))
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := w.Reserve(context.Background()); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Reserve after Close: %v", err)
	}
	if err := w.Record(context.Background(), event("t_a", 2)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
	if st := w.Stats(); st.Written != 1 || st.Dropped != 1 {
		t.Fatalf("stats %+v: want 1 written, 1 dropped", st)
	}
}

// TestWriterCheckpointsGrownChains: periodic checkpoints cover the chains
// that grew since their last one, and only those.
func TestWriterCheckpointsGrownChains(t *testing.T) {
	t.Parallel()
	store := audit.NewMemoryStore()
	w := newWriter(t, store, &audit.WriterOptions{CheckpointInterval: 5 * time.Millisecond, FlushInterval: time.Millisecond})
	waitCheckpoint := func(chain string, count uint64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); latestCheckpoint(t, store, chain) != count; {
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of %q at %d", chain, count)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 3 {
		w.Record(context.Background(), event("t_a", i))
	}
	waitCheckpoint("t_a", 3)
	w.Record(context.Background(), event("t_b", 1))
	waitCheckpoint("t_b", 1)
	time.Sleep(20 * time.Millisecond) // a few more intervals: t_a did not grow
	cps, _ := store.Checkpoints(context.Background(), "t_a")
	if len(cps) != 1 {
		t.Fatalf("t_a has %d checkpoints, want 1 (it did not grow)", len(cps))
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cps, _ := store.Checkpoints(context.Background(), "t_a"); len(cps) != 1 {
		t.Fatalf("Close checkpointed t_a again (%d)", len(cps))
	}
	verifyChains(t, store)
}

// TestWriterUnencodableEvent: an event without kind or outcome is
// dropped (counted), not stored and not silently lost.
func TestWriterUnencodableEvent(t *testing.T) {
	t.Parallel()
	w := newWriter(t, audit.NewMemoryStore(), nil)
	if err := w.Record(context.Background(), &audit.Event{Tenant: "t_a"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Dropped != 1 || st.Written != 0 || st.QueueDepth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNewWriterValidates reports every problem at once.
func TestNewWriterValidates(t *testing.T) {
	t.Parallel()
	_, err := audit.NewWriter(nil, nil, &audit.WriterOptions{QueueSize: -1, MaxWait: -time.Second})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"needs a store", "Ed25519 private key", "QueueSize", "MaxWait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// discardStore keeps nothing: for benchmarks of the writer alone.
type discardStore struct{ audit.Store }

func (discardStore) Append(context.Context, []audit.Record) error           { return nil }
func (discardStore) Head(context.Context, string) (audit.Head, error)       { return audit.Head{}, nil }
func (discardStore) PutCheckpoint(context.Context, *audit.Checkpoint) error { return nil }

// BenchmarkWriter is the cost of one event through Reserve and Commit,
// from parallel callers, to a store that keeps nothing: the encoding,
// chaining and queueing a request pays for (directly or in the writer's
// goroutine).
func BenchmarkWriter(b *testing.B) {
	w, err := audit.NewWriter(discardStore{}, testKey(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	e := event("t_a", 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := w.Reserve(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			s.Commit(e)
		}
	})
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// chunkStore records the PutCheckpoints calls of a memory store and
// fails the first one whose first chain is failFirst.
type chunkStore struct {
	*audit.MemoryStore
	mu        sync.Mutex
	sizes     []int
	failFirst string
	failed    bool
}

func (s *chunkStore) PutCheckpoints(ctx context.Context, cps []audit.Checkpoint) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(cps))
	fail := !s.failed && cps[0].Chain == s.failFirst
	s.failed = s.failed || fail
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return s.MemoryStore.PutCheckpoints(ctx, cps)
}

// TestWriterCheckpointChunks: a store that takes many checkpoints at once
// gets them in chunks of at most 1,000; a chunk that fails is counted and
// reported by Close, and the other chunks are stored all the same.
func TestWriterCheckpointChunks(t *testing.T) {
	t.Parallel()
	const chains = 2500
	names := make([]string, chains)
	for i := range names {
		names[i] = fmt.Sprintf("t%05d", i)
	}
	store := &chunkStore{MemoryStore: audit.NewMemoryStore(), failFirst: names[1000]}
	w := newWriter(t, store, &audit.WriterOptions{CheckpointInterval: time.Hour, BatchSize: 500, FlushInterval: time.Millisecond})
	for i, c := range names {
		if err := w.Record(context.Background(), event(c, i)); err != nil {
			t.Fatal(err)
		}
	}
	err := w.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close = %v, want the failed chunk's error", err)
	}
	st := w.Stats()
	if st.CheckpointErrors != 1000 || st.Checkpoints != chains-1000 {
		t.Errorf("checkpoints %d stored, %d failed; want %d and 1000", st.Checkpoints, st.CheckpointErrors, chains-1000)
	}
	if want := []int{1000, 1000, 500}; fmt.Sprint(store.sizes) != fmt.Sprint(want) {
		t.Errorf("PutCheckpoints sizes %v, want %v", store.sizes, want)
	}
	signed := 0
	for _, c := range names {
		if latestCheckpoint(t, store, c) == 1 {
			signed++
		}
	}
	if signed != chains-1000 {
		t.Errorf("%d chains signed, want %d", signed, chains-1000)
	}
	verifyChains(t, store)
}

// busyStore records events into the writer while it stores the first
// chunk of checkpoints, and notes how many events it had stored when the
// next chunk came.
type busyStore struct {
	*audit.MemoryStore
	w              *audit.Writer
	chunks         atomic.Int64
	storedAtSecond atomic.Int64
	recordErr      atomic.Value
	events         atomic.Int64
}

func (s *busyStore) Append(ctx context.Context, recs []audit.Record) error {
	s.events.Add(int64(len(recs)))
	return s.MemoryStore.Append(ctx, recs)
}

func (s *busyStore) PutCheckpoints(ctx context.Context, cps []audit.Checkpoint) error {
	switch s.chunks.Add(1) {
	case 1:
		for i := range 64 {
			if err := s.w.Record(ctx, event("t_late", i)); err != nil {
				s.recordErr.Store(err)
			}
		}
	case 2:
		s.storedAtSecond.Store(s.events.Load())
	}
	return s.MemoryStore.PutCheckpoints(ctx, cps)
}

// TestWriterCheckpointsLetBatchesThrough: while the checkpoints of many
// chains are stored, chunk by chunk, full batches that arrive meanwhile
// are written between the chunks, not after the last.
func TestWriterCheckpointsLetBatchesThrough(t *testing.T) {
	t.Parallel()
	store := &busyStore{MemoryStore: audit.NewMemoryStore()}
	w := newWriter(t, store, &audit.WriterOptions{CheckpointInterval: 300 * time.Millisecond, BatchSize: 64, FlushInterval: time.Hour})
	store.w = w
	const chains = 2100
	for i := range chains {
		if err := w.Record(context.Background(), event(fmt.Sprintf("t%05d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// At the next interval, the first chunk's store records 64 more
	// events, a full batch.
	for deadline := time.Now().Add(10 * time.Second); store.chunks.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks of checkpoints stored, want 3", store.chunks.Load())
		}
	}
	if err, _ := store.recordErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	if got := store.storedAtSecond.Load(); got != chains+64 {
		t.Errorf("%d events stored when the second chunk came, want %d", got, chains+64)
	}
}
