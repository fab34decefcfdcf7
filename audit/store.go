package audit

import (
	"context"
	"time"
)

// Store keeps records and checkpoints. It is append-only: nothing in this
// interface changes or removes a record, except DeleteBefore, which the
// retention job alone calls. Implementations: audit/sqliteaudit,
// audit/pgaudit; audit/audittest is the contract suite both pass.
type Store interface {
	// Append stores records atomically: all or none. Each record must be
	// the next of its chain (Seq one more than the stored head, Prev its
	// hash); otherwise Append stores nothing and returns an error matching
	// ErrConflict (another writer appended first: reload the heads with
	// Head and chain again).
	Append(ctx context.Context, recs []Record) error
	// Head returns where chain stands: zero for a chain that never had a
	// record. A chain whose records DeleteBefore removed keeps its head,
	// so that it continues where it stood rather than starting again at 1.
	Head(ctx context.Context, chain string) (Head, error)
	// Chains lists the chains that have records, SystemChain included if
	// it has any.
	Chains(ctx context.Context) ([]string, error)
	// Scan calls fn with the chain's records in order, from seq from
	// (1 = the beginning), until fn returns an error (returned as is) or
	// the records end.
	Scan(ctx context.Context, chain string, from uint64, fn func(*Record) error) error
	// Query returns a page of one chain's events matching f, newest first.
	Query(ctx context.Context, chain string, f Filter) ([]Record, error)
	// PutCheckpoint stores a signed checkpoint.
	PutCheckpoint(ctx context.Context, cp *Checkpoint) error
	// Checkpoints returns the chain's checkpoints, oldest first.
	Checkpoints(ctx context.Context, chain string) ([]Checkpoint, error)
	// DeleteBefore removes, for the retention job, each chain's oldest
	// records while their event time is before t (the longest such prefix:
	// never a gap, so the remaining records still verify from the first
	// one kept, which names its predecessor's hash as Prev), the
	// checkpoints older than t and those that cover only removed records.
	// It returns how many records it removed.
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	// Close releases the store.
	Close() error
}

// CheckpointBatcher is a Store that stores many checkpoints at once: all
// or none, in one transaction. The Writer uses it, where the store has
// it, for the checkpoints of an interval: with thousands of chains, a
// transaction (and on SQLite an fsync) for each would keep the writer
// from its batches for seconds.
type CheckpointBatcher interface {
	PutCheckpoints(ctx context.Context, cps []Checkpoint) error
}

// Filter selects events for Query. Zero fields select everything.
type Filter struct {
	Since, Until time.Time // Since ≤ time < Until
	Outcome      string
	Tool         string
	User         string
	// BeforeSeq pages backwards: only records with Seq < BeforeSeq (0 =
	// from the newest).
	BeforeSeq uint64
	// Limit caps the page; 0 = 100.
	Limit int
}
