package audit

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of WriterOptions.
const (
	DefaultQueueSize          = 65536
	DefaultBatchSize          = 256
	DefaultFlushInterval      = 100 * time.Millisecond
	DefaultMaxWait            = 100 * time.Millisecond
	DefaultCheckpointInterval = time.Minute
	DefaultStoreTimeout       = 10 * time.Second
)

// Bounds of the writer's retries of a failing store.
const (
	// maxConflictRetries is how many times in a row a batch is chained
	// again at once after ErrConflict (another replica appended to one of
	// its chains) before the writer backs off as for any other error.
	maxConflictRetries = 8
	minBackoff         = 50 * time.Millisecond
	maxBackoff         = 5 * time.Second
	// dropLogEvery bounds how often dropped events are logged: one line
	// for the first, then one line per interval with the count since.
	dropLogEvery = time.Second
)

var (
	// ErrBackpressure: the queue stayed full for WriterOptions.MaxWait (the
	// store is not keeping up, or failing). A server answers the request
	// with 503 and Retry-After rather than serve it unaudited.
	ErrBackpressure = errors.New("audit: the audit queue is full (the audit store is not keeping up)")
	// ErrClosed: the writer is closed (or closing) and takes no new events.
	ErrClosed = errors.New("audit: writer closed")
)

// WriterOptions configure a Writer. The zero value of every field means
// its default.
type WriterOptions struct {
	// QueueSize bounds the events reserved or waiting to be stored; 0 =
	// DefaultQueueSize. When it is full, Reserve and Record wait (MaxWait)
	// and then fail with ErrBackpressure.
	QueueSize int
	// BatchSize is the most events one Append stores; a batch this size is
	// written at once. 0 = DefaultBatchSize.
	BatchSize int
	// FlushInterval is the longest an event waits for its batch to fill
	// before it is written anyway; 0 = DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxWait is how long Reserve and Record wait for room in a full
	// queue; 0 = DefaultMaxWait.
	MaxWait time.Duration
	// CheckpointInterval is how often every chain that grew gets a signed
	// checkpoint (Close writes final ones too); 0 =
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// StoreTimeout bounds each call to the store; a call that takes longer
	// counts as failed and is retried. 0 = DefaultStoreTimeout.
	StoreTimeout time.Duration
	// Logger receives store failures and dropped events; nil discards them.
	Logger *slog.Logger
	// Now is the clock of checkpoints; nil = time.Now.
	Now func() time.Time
}

// Writer chains events and writes them to a Store in batches, from one
// goroutine that owns the chains' heads. A request reserves its place in
// the bounded queue before it is served (Reserve) and fills it when it
// ends (Slot.Commit), so the event of a request that was served is never
// refused; other events (refusals) are recorded with Record, which waits
// as briefly and counts what it cannot queue as dropped. Nothing is
// dropped silently: every drop is counted (Stats) and logged.
//
// A failing store is retried with backoff while events stay queued, so a
// store that is down turns into backpressure, not lost events. Several
// Writers (replicas) may share a store: a batch that loses a race for a
// chain (ErrConflict) is chained again on the stored head.
//
// Close drains the queue and writes a final checkpoint of every chain
// that grew.
type Writer struct {
	store Store
	key   ed25519.PrivateKey
	opts  WriterOptions
	log   *slog.Logger

	// slots holds a token for every event reserved or queued and not yet
	// stored (or dropped): its length is the queue depth.
	slots chan struct{}
	wake  chan struct{} // nudges run; capacity 1

	mu      sync.Mutex
	pending []pending
	open    int  // slots reserved, not yet committed
	urgent  int  // Flush calls waiting: write without waiting for a batch
	closed  bool // Close was called: no new slots
	stopped bool // run has returned
	// queued counts events ever put in pending, retired those taken off
	// its head (stored, or dropped by a Close out of time): pending is
	// FIFO, so retired ≥ n means the first n are done.
	queued, retired uint64
	progress        chan struct{} // closed and replaced whenever retired grows

	closing  chan struct{} // closed by Close
	ctx      context.Context
	abort    context.CancelFunc // ends store calls and retries: Close ran out of time
	done     chan struct{}      // closed when run returns
	closeMu  sync.Mutex
	closeErr error
	abortErr error // why Close aborted

	heads map[string]Head // owned by run
	grown map[string]bool // chains appended to since their last checkpoint; owned by run

	statsMu sync.Mutex
	stats   WriterStats
	dropLog struct {
		last     time.Time
		unlogged uint64
	}
}

type pending struct {
	chain string
	body  []byte
	at    time.Time // when it was committed
}

// Slot is a place in the queue reserved for one event (Writer.Reserve).
type Slot struct {
	w    *Writer
	used atomic.Bool
}

// NewWriter starts a writer of events to store, signing checkpoints with
// key. Close it to drain the queue and stop its goroutine.
func NewWriter(store Store, key ed25519.PrivateKey, opts *WriterOptions) (*Writer, error) {
	var o WriterOptions
	if opts != nil {
		o = *opts
	}
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("audit: NewWriter needs a store"))
	}
	if len(key) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("audit: checkpoint key has %d bytes: want an Ed25519 private key (%d bytes)", len(key), ed25519.PrivateKeySize))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"QueueSize", int64(o.QueueSize)}, {"BatchSize", int64(o.BatchSize)},
		{"FlushInterval", int64(o.FlushInterval)}, {"MaxWait", int64(o.MaxWait)},
		{"CheckpointInterval", int64(o.CheckpointInterval)}, {"StoreTimeout", int64(o.StoreTimeout)}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("audit: WriterOptions.%s is negative: want a positive value, or 0 for the default", f.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.QueueSize = cmp.Or(o.QueueSize, DefaultQueueSize)
	o.BatchSize = cmp.Or(o.BatchSize, DefaultBatchSize)
	o.FlushInterval = cmp.Or(o.FlushInterval, DefaultFlushInterval)
	o.MaxWait = cmp.Or(o.MaxWait, DefaultMaxWait)
	o.CheckpointInterval = cmp.Or(o.CheckpointInterval, DefaultCheckpointInterval)
	o.StoreTimeout = cmp.Or(o.StoreTimeout, DefaultStoreTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, abort := context.WithCancel(context.Background())
	w := &Writer{
		store:    store,
		key:      key,
		opts:     o,
		log:      log,
		slots:    make(chan struct{}, o.QueueSize),
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
		closing:  make(chan struct{}),
		ctx:      ctx,
		abort:    abort,
		done:     make(chan struct{}),
		heads:    map[string]Head{},
		grown:    map[string]bool{},
	}
	w.stats.QueueCapacity = o.QueueSize
	w.stats.BatchLatency.Bounds = BatchLatencyBounds
	w.stats.BatchLatency.Counts = make([]uint64, len(BatchLatencyBounds))
	go w.run()
	return w, nil
}

// Store is the store the writer writes to (to read events back).
func (w *Writer) Store() Store { return w.store }

// Reserve takes a place in the queue for the event of a request about to
// be served; commit the event into it when the request ends. With the
// queue full it waits at most MaxWait (less if ctx ends first; with ctx
// already done it does not wait at all) and returns ErrBackpressure: the
// request should be refused, not served. After Close it returns ErrClosed.
func (w *Writer) Reserve(ctx context.Context) (*Slot, error) {
	if err := w.acquire(ctx); err != nil {
		return nil, err
	}
	return &Slot{w: w}, nil
}

// Commit queues e in the slot. It never blocks and never fails: the place
// was reserved. Only the first Commit of a slot counts; e must not change
// afterwards.
func (s *Slot) Commit(e *Event) {
	if s == nil || !s.used.CompareAndSwap(false, true) {
		return
	}
	s.w.commit(e)
}

// Record queues e, waiting for room as Reserve does. An event it cannot
// queue is counted as dropped and logged, and the error (ErrBackpressure
// or ErrClosed) returned.
func (w *Writer) Record(ctx context.Context, e *Event) error {
	if err := w.acquire(ctx); err != nil {
		w.drop(e, 1, err)
		return err
	}
	w.commit(e)
	return nil
}

func (w *Writer) acquire(ctx context.Context) error {
	select {
	case w.slots <- struct{}{}:
	default:
		if ctx.Err() != nil {
			return w.refuseSlot()
		}
		t := time.NewTimer(w.opts.MaxWait)
		defer t.Stop()
		select {
		case w.slots <- struct{}{}:
		case <-t.C:
			return w.refuseSlot()
		case <-ctx.Done():
			return w.refuseSlot()
		case <-w.closing:
			return ErrClosed
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		<-w.slots
		return ErrClosed
	}
	w.open++
	return nil
}

func (w *Writer) refuseSlot() error {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	w.statsMu.Lock()
	w.stats.Backpressure++
	w.statsMu.Unlock()
	return ErrBackpressure
}

// commit queues e in a slot already taken.
func (w *Writer) commit(e *Event) {
	body, err := e.Encode()
	w.mu.Lock()
	w.open--
	if err != nil || w.stopped {
		w.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		w.release(1)
		w.drop(e, 1, err)
		return
	}
	w.queued++
	w.pending = append(w.pending, pending{chain: e.Chain(), body: body, at: time.Now()})
	n := len(w.pending)
	nudge := n == 1 || n == w.opts.BatchSize || w.closed
	w.mu.Unlock()
	if nudge {
		w.nudge()
	}
}

func (w *Writer) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// release frees n slots.
func (w *Writer) release(n int) {
	for range n {
		<-w.slots
	}
}

// retireLocked takes n events off the head of pending (under w.mu) and wakes
// Flush calls.
func (w *Writer) retireLocked(n int) {
	w.pending = w.pending[n:]
	w.retired += uint64(n)
	close(w.progress)
	w.progress = make(chan struct{})
}

// drop counts n events that will not be stored and logs them, at most one
// line per dropLogEvery.
func (w *Writer) drop(e *Event, n int, err error) {
	w.statsMu.Lock()
	w.stats.Dropped += uint64(n)
	now := time.Now()
	d := &w.dropLog
	d.unlogged += uint64(n)
	if !d.last.IsZero() && now.Sub(d.last) < dropLogEvery {
		w.statsMu.Unlock()
		return
	}
	count, total := d.unlogged, w.stats.Dropped
	d.last, d.unlogged = now, 0
	w.statsMu.Unlock()
	attrs := []any{"err", err, "dropped", count, "dropped_total", total}
	if e != nil {
		attrs = append(attrs, "kind", e.Kind, "tenant_id", e.Tenant, "request_id", e.RequestID)
	}
	w.log.Error("audit events dropped", attrs...)
}

// Flush waits until every event committed before it was called is stored
// (or dropped), writing them without waiting for their batch to fill.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.queued
	w.urgent++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.urgent--
		w.mu.Unlock()
	}()
	w.nudge()
	for {
		w.mu.Lock()
		retired, ch, stopped := w.retired, w.progress, w.stopped
		w.mu.Unlock()
		if retired >= target {
			return nil
		}
		if stopped {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-w.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops taking events, waits for reserved slots to be committed,
// writes everything queued and a final checkpoint of every chain that grew,
// and stops the writer's goroutine. If ctx ends first, what is left is
// counted as dropped (and logged) and the error says how many. Close
// returns the same result every time it is called.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.closing)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		w.closeMu.Lock()
		w.abortErr = fmt.Errorf("audit: closing: %w", ctx.Err())
		w.closeMu.Unlock()
		w.abort()
		<-w.done
	}
	w.closeMu.Lock()
	defer w.closeMu.Unlock()
	return w.closeErr
}

// run is the writer's goroutine: it alone chains and appends.
func (w *Writer) run() {
	defer close(w.done)
	defer w.abort()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	cp := time.NewTicker(w.opts.CheckpointInterval)
	defer cp.Stop()
	closing := w.closing
	for {
		w.mu.Lock()
		n := len(w.pending)
		var oldest time.Time
		if n > 0 {
			oldest = w.pending[0].at
		}
		drain, urgent, open := w.closed, w.urgent > 0, w.open
		w.mu.Unlock()
		wait := w.opts.FlushInterval - time.Since(oldest)
		if n >= w.opts.BatchSize || n > 0 && (drain || urgent || wait <= 0) {
			if !w.writeNext() {
				w.stop(w.aborted())
				return
			}
			continue
		}
		if drain && n == 0 && open == 0 {
			w.stop(w.checkpoint(true))
			return
		}
		var flush <-chan time.Time
		if n > 0 {
			timer.Reset(wait)
			flush = timer.C
		}
		select {
		case <-w.wake:
		case <-flush:
		case <-cp.C:
			w.checkpoint(false)
		case <-closing:
			closing = nil // from now on, commits nudge
		case <-w.ctx.Done():
			w.stop(w.aborted())
			return
		}
		timer.Stop()
	}
}

func (w *Writer) aborted() error {
	w.closeMu.Lock()
	defer w.closeMu.Unlock()
	return w.abortErr
}

// stop marks the writer stopped and counts what is still queued as
// dropped (and what is still reserved, when it is committed).
func (w *Writer) stop(err error) {
	w.mu.Lock()
	w.stopped = true
	left, open := len(w.pending), w.open
	w.retireLocked(left)
	w.mu.Unlock()
	if left > 0 {
		w.drop(nil, left, err)
		w.release(left)
		err = fmt.Errorf("%w: %d audit events not written", err, left)
	}
	if open > 0 {
		err = fmt.Errorf("%w; %d reserved slots not committed in time (their events will be dropped)", err, open)
	}
	w.closeMu.Lock()
	w.closeErr = err
	w.closeMu.Unlock()
}

// writeNext writes the oldest batch, retrying until it is stored; false
// means the writer was aborted (the batch stays pending).
func (w *Writer) writeNext() bool {
	w.mu.Lock()
	k := min(len(w.pending), w.opts.BatchSize)
	batch := w.pending[:k:k]
	w.mu.Unlock()

	start := time.Now()
	backoff := minBackoff
	conflicts := 0
	var uncertain []Record // a failed Append that may have stored its records after all
	for {
		recs, heads, err := w.chain(batch)
		if err == nil {
			if err = w.append(recs); err == nil {
				w.stored(batch, heads, start)
				return true
			}
			if errors.Is(err, ErrConflict) {
				w.count(func(s *WriterStats) { s.Conflicts++ })
				if uncertain != nil && w.wasStored(uncertain) {
					w.stored(batch, lastHeads(uncertain), start)
					return true
				}
				uncertain = nil
				for _, p := range batch {
					delete(w.heads, p.chain)
				}
				if conflicts++; conflicts <= maxConflictRetries {
					continue
				}
				conflicts = 0
			} else {
				uncertain = recs
			}
		}
		w.count(func(s *WriterStats) { s.AppendErrors++ })
		w.log.Error("audit: cannot write events; retrying", "err", err, "events", len(batch), "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// chain builds the batch's records on the heads, loading those not known.
func (w *Writer) chain(batch []pending) ([]Record, map[string]Head, error) {
	heads := map[string]Head{}
	recs := make([]Record, len(batch))
	for i, p := range batch {
		h, ok := heads[p.chain]
		if !ok {
			if h, ok = w.heads[p.chain]; !ok {
				ctx, cancel := context.WithTimeout(w.ctx, w.opts.StoreTimeout)
				var err error
				h, err = w.store.Head(ctx, p.chain)
				cancel()
				if err != nil {
					return nil, nil, fmt.Errorf("audit: head of chain %q: %w", p.chain, err)
				}
				w.heads[p.chain] = h
			}
		}
		recs[i], heads[p.chain] = h.Next(p.chain, p.body)
	}
	return recs, heads, nil
}

func (w *Writer) append(recs []Record) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.StoreTimeout)
	defer cancel()
	return w.store.Append(ctx, recs)
}

// wasStored reports whether the store holds recs (whose Append failed
// ambiguously, say by a timeout after the commit): the stored record at
// each chain's last seq has the same hash, which covers all before it.
func (w *Writer) wasStored(recs []Record) bool {
	for chain, h := range lastHeads(recs) {
		found := false
		ctx, cancel := context.WithTimeout(w.ctx, w.opts.StoreTimeout)
		err := w.store.Scan(ctx, chain, h.Seq, func(r *Record) error {
			found = r.Seq == h.Seq && r.Hash == h.Hash
			return errStopScan
		})
		cancel()
		if err != nil && !errors.Is(err, errStopScan) || !found {
			return false
		}
	}
	return true
}

var errStopScan = errors.New("stop")

func lastHeads(recs []Record) map[string]Head {
	heads := map[string]Head{}
	for _, r := range recs {
		heads[r.Chain] = Head{Seq: r.Seq, Hash: r.Hash}
	}
	return heads
}

// stored retires a batch that the store now holds.
func (w *Writer) stored(batch []pending, heads map[string]Head, start time.Time) {
	for c, h := range heads {
		w.heads[c] = h
		w.grown[c] = true
	}
	d := time.Since(start)
	w.count(func(s *WriterStats) {
		s.Written += uint64(len(batch))
		s.Batches++
		s.BatchLatency.observe(d)
	})
	w.release(len(batch))
	w.mu.Lock()
	w.retireLocked(len(batch))
	w.mu.Unlock()
}

// checkpoint signs and stores a checkpoint of every chain that grew since
// its last one; chains whose checkpoint fails are tried again next time.
// A store that is a CheckpointBatcher gets them checkpointChunk at a
// time, each chunk all or none.
func (w *Writer) checkpoint(final bool) error {
	chains := make([]string, 0, len(w.grown))
	for c := range w.grown {
		chains = append(chains, c)
	}
	sort.Strings(chains)
	put := func(ctx context.Context, cps []Checkpoint) error { return w.store.PutCheckpoint(ctx, &cps[0]) }
	chunk := 1
	if b, ok := w.store.(CheckpointBatcher); ok {
		put, chunk = b.PutCheckpoints, checkpointChunk
	}
	var errs []error
	cps := make([]Checkpoint, 0, min(chunk, len(chains)))
	for len(chains) > 0 {
		n := min(chunk, len(chains))
		cps = cps[:0]
		for _, c := range chains[:n] {
			h := w.heads[c]
			cp := Checkpoint{Chain: c, Count: h.Seq, Head: h.Hash, Time: w.opts.Now()}
			cp.Sign(w.key)
			cps = append(cps, cp)
		}
		chains = chains[n:]
		ctx, cancel := context.WithTimeout(w.ctx, w.opts.StoreTimeout)
		err := put(ctx, cps)
		cancel()
		if err != nil {
			w.count(func(s *WriterStats) { s.CheckpointErrors += uint64(n) })
			first := &cps[0]
			w.log.Error("audit: cannot store checkpoints", "err", err, "tenant_id", first.Chain, "count", first.Count, "checkpoints", n, "final", final)
			if n == 1 {
				errs = append(errs, fmt.Errorf("audit: checkpoint of chain %q at %d: %w", first.Chain, first.Count, err))
			} else {
				errs = append(errs, fmt.Errorf("audit: checkpoints of %d chains, the first %q at %d: %w", n, first.Chain, first.Count, err))
			}
			continue
		}
		for _, cp := range cps {
			delete(w.grown, cp.Chain)
		}
		w.count(func(s *WriterStats) { s.Checkpoints += uint64(n) })
		// Thousands of chains take a while to sign and store: events
		// keep arriving meanwhile, and must not wait for the last chunk.
		if len(chains) > 0 && !w.writeFull() {
			errs = append(errs, fmt.Errorf("audit: checkpoints of %d chains not stored: %w", len(chains), cmp.Or(w.aborted(), w.ctx.Err())))
			break
		}
	}
	return errors.Join(errs...)
}

// writeFull writes the full batches waiting; false means the writer was
// aborted.
func (w *Writer) writeFull() bool {
	for {
		w.mu.Lock()
		full := len(w.pending) >= w.opts.BatchSize
		w.mu.Unlock()
		if !full {
			return true
		}
		if !w.writeNext() {
			return false
		}
	}
}

// checkpointChunk is how many checkpoints one PutCheckpoints stores at
// most, so that one transaction stays short.
const checkpointChunk = 1000

func (w *Writer) count(f func(*WriterStats)) {
	w.statsMu.Lock()
	f(&w.stats)
	w.statsMu.Unlock()
}

// WriterStats are a Writer's counters, for metrics.
type WriterStats struct {
	// QueueDepth is how many events are reserved or queued and not yet
	// stored; QueueCapacity is WriterOptions.QueueSize.
	QueueDepth, QueueCapacity int
	// Written counts events stored; Batches the Appends that stored them.
	Written, Batches uint64
	// BatchLatency is how long batches took to store, retries included.
	BatchLatency LatencyHistogram
	// Backpressure counts Reserve and Record calls that found the queue
	// full for MaxWait.
	Backpressure uint64
	// Dropped counts events that were not stored: Record found the queue
	// full or the writer closed, an event did not encode, or Close ran
	// out of time.
	Dropped uint64
	// AppendErrors counts failed attempts to store a batch (each retried);
	// Conflicts counts Appends that lost a race for a chain to another
	// writer (chained again, not errors).
	AppendErrors, Conflicts uint64
	// Checkpoints counts checkpoints stored; CheckpointErrors those that
	// failed (tried again at the next interval).
	Checkpoints, CheckpointErrors uint64
}

// BatchLatencyBounds are the upper bounds of WriterStats.BatchLatency's
// buckets.
var BatchLatencyBounds = []time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LatencyHistogram is a cumulative histogram, as Prometheus keeps them.
type LatencyHistogram struct {
	// Bounds are the buckets' upper bounds; Counts[i] counts observations
	// of at most Bounds[i].
	Bounds []time.Duration
	Counts []uint64
	// Count and Sum are the number and total of all observations.
	Count uint64
	Sum   time.Duration
}

func (h *LatencyHistogram) observe(d time.Duration) {
	for i, b := range h.Bounds {
		if d <= b {
			h.Counts[i]++
		}
	}
	h.Count++
	h.Sum += d
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	w.statsMu.Lock()
	s := w.stats
	s.BatchLatency.Counts = append([]uint64(nil), s.BatchLatency.Counts...)
	w.statsMu.Unlock()
	s.QueueDepth = len(w.slots)
	return s
}
