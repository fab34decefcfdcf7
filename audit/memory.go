package audit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryStore is a Store in process memory, for tests and examples.
type MemoryStore struct {
	mu     sync.Mutex
	chains map[string][]Record
	cps    map[string][]Checkpoint
	times  map[string][]time.Time // event time of each record, for Query and DeleteBefore
	// floors are where chains stood before their first kept record, once
	// DeleteBefore removed records: the head of a chain it emptied.
	floors map[string]Head
}

var (
	_ Store             = (*MemoryStore)(nil)
	_ CheckpointBatcher = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{chains: map[string][]Record{}, cps: map[string][]Checkpoint{}, times: map[string][]time.Time{}, floors: map[string]Head{}}
}

func (m *MemoryStore) headLocked(chain string) Head {
	rs := m.chains[chain]
	if len(rs) == 0 {
		return m.floors[chain]
	}
	last := rs[len(rs)-1]
	return Head{Seq: last.Seq, Hash: last.Hash}
}

// Append implements Store.
func (m *MemoryStore) Append(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	heads := map[string]Head{}
	times := make([]time.Time, len(recs))
	for i := range recs {
		r := &recs[i]
		h, ok := heads[r.Chain]
		if !ok {
			h = m.headLocked(r.Chain)
		}
		if r.Seq != h.Seq+1 || r.Prev != h.Hash {
			return fmt.Errorf("%w: chain %q at %d, record %d", ErrConflict, r.Chain, h.Seq, r.Seq)
		}
		e, err := r.Event()
		if err != nil {
			return err
		}
		times[i] = e.Time
		heads[r.Chain] = Head{Seq: r.Seq, Hash: r.Hash}
	}
	for i, r := range recs {
		r.Body = slices.Clone(r.Body)
		m.chains[r.Chain] = append(m.chains[r.Chain], r)
		m.times[r.Chain] = append(m.times[r.Chain], times[i])
	}
	return nil
}

// Head implements Store.
func (m *MemoryStore) Head(_ context.Context, chain string) (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.headLocked(chain), nil
}

// Chains implements Store.
func (m *MemoryStore) Chains(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for c, rs := range m.chains {
		if len(rs) > 0 {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Scan implements Store.
func (m *MemoryStore) Scan(ctx context.Context, chain string, from uint64, fn func(*Record) error) error {
	m.mu.Lock()
	rs := slices.Clone(m.chains[chain])
	m.mu.Unlock()
	for i := range rs {
		if rs[i].Seq < from {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r := rs[i]
		r.Body = slices.Clone(r.Body) // the caller's to change
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// Query implements Store.
func (m *MemoryStore) Query(_ context.Context, chain string, f Filter) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rs, ts := m.chains[chain], m.times[chain]
	var out []Record
	for i := len(rs) - 1; i >= 0 && len(out) < limit; i-- {
		r := rs[i]
		if f.BeforeSeq != 0 && r.Seq >= f.BeforeSeq {
			continue
		}
		if !f.Since.IsZero() && ts[i].Before(f.Since) || !f.Until.IsZero() && !ts[i].Before(f.Until) {
			continue
		}
		if f.Outcome != "" || f.Tool != "" || f.User != "" {
			e, err := r.Event()
			if err != nil {
				return nil, err
			}
			if f.Outcome != "" && e.Outcome != f.Outcome || f.Tool != "" && e.Tool != f.Tool || f.User != "" && e.User != f.User {
				continue
			}
		}
		r.Body = slices.Clone(r.Body)
		out = append(out, r)
	}
	return out, nil
}

// PutCheckpoint implements Store.
func (m *MemoryStore) PutCheckpoint(_ context.Context, cp *Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cps[cp.Chain] = append(m.cps[cp.Chain], *cp)
	return nil
}

// PutCheckpoints implements CheckpointBatcher.
func (m *MemoryStore) PutCheckpoints(_ context.Context, cps []Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cp := range cps {
		m.cps[cp.Chain] = append(m.cps[cp.Chain], cp)
	}
	return nil
}

// Checkpoints implements Store.
func (m *MemoryStore) Checkpoints(_ context.Context, chain string) ([]Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cps[chain]), nil
}

// DeleteBefore implements Store.
func (m *MemoryStore) DeleteBefore(_ context.Context, t time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for c, ts := range m.times {
		k := 0
		for k < len(ts) && ts[k].Before(t) {
			k++
		}
		if k > 0 {
			last := m.chains[c][k-1]
			m.floors[c] = Head{Seq: last.Seq, Hash: last.Hash}
		}
		n += int64(k)
		m.chains[c] = m.chains[c][k:]
		m.times[c] = ts[k:]
	}
	for c, list := range m.cps {
		cps := list[:0]
		for _, cp := range list {
			if !cp.Time.Before(t) && cp.Count > m.floors[c].Seq {
				cps = append(cps, cp)
			}
		}
		m.cps[c] = cps
	}
	return n, nil
}

// Close implements Store.
func (m *MemoryStore) Close() error { return nil }
