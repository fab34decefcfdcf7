// Package batch holds what the SQL audit stores share: checking a batch
// of records before it is stored, the columns they index, and time
// conversions.
package batch

import (
	"fmt"
	"math"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// Row is one record of a checked batch with the event fields stores index.
type Row struct {
	Rec *audit.Record
	// Time is the event's time (UTC); stores keep it in microseconds,
	// the precision of Event.Encode.
	Time                time.Time
	Outcome, Tool, User string
}

// Batch is a checked batch.
type Batch struct {
	Rows []Row
	// Firsts are the first record of each chain in the batch, in order
	// of first appearance: each must follow its chain's stored head.
	Firsts []*audit.Record
}

// Prepare checks that, within recs, each chain's records follow one
// another (Seq one more, Prev the previous Hash), as audit.MemoryStore
// does, and decodes each body. A break is an error matching
// audit.ErrConflict; a body that is not an event is an error too.
func Prepare(recs []audit.Record) (*Batch, error) {
	b := &Batch{Rows: make([]Row, len(recs))}
	last := map[string]*audit.Record{}
	for i := range recs {
		r := &recs[i]
		if r.Seq == 0 || r.Seq > math.MaxInt64 {
			return nil, fmt.Errorf("%w: chain %q: record seq %d out of range", audit.ErrConflict, r.Chain, r.Seq)
		}
		if p, ok := last[r.Chain]; !ok {
			b.Firsts = append(b.Firsts, r)
		} else if r.Seq != p.Seq+1 || r.Prev != p.Hash {
			return nil, Conflict(r.Chain, audit.Head{Seq: p.Seq, Hash: p.Hash}, r.Seq)
		}
		last[r.Chain] = r
		e, err := r.Event()
		if err != nil {
			return nil, err
		}
		b.Rows[i] = Row{Rec: r, Time: e.Time.UTC(), Outcome: e.Outcome, Tool: e.Tool, User: e.User}
	}
	return b, nil
}

// Follows checks that first is the next record after head.
func Follows(first *audit.Record, head audit.Head) error {
	if first.Seq != head.Seq+1 || first.Prev != head.Hash {
		return Conflict(first.Chain, head, first.Seq)
	}
	return nil
}

// Conflict is the error for record seq that does not follow head.
func Conflict(chain string, head audit.Head, seq uint64) error {
	return fmt.Errorf("%w: chain %q is at %d, record %d", audit.ErrConflict, chain, head.Seq, seq)
}

// Micros is t in Unix microseconds, rounded up: for a stored time m in
// microseconds, m >= Micros(t) exactly when m is not before t, and
// m < Micros(t) exactly when m is before t.
func Micros(t time.Time) int64 {
	us := t.UnixMicro() // rounds down, also before 1970
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// CeilMicro is t rounded up to the microsecond (see Micros).
func CeilMicro(t time.Time) time.Time { return time.UnixMicro(Micros(t)).UTC() }

// SplitTime splits a checkpoint time into Unix microseconds, rounded down,
// and the nanoseconds beyond (0 to 999), so that stores keep it exactly:
// a checkpoint's signature covers its time to the nanosecond.
func SplitTime(t time.Time) (micros int64, nanos int16) {
	return t.UnixMicro(), int16(t.Nanosecond() % 1000)
}

// JoinTime is the inverse of SplitTime, in UTC.
func JoinTime(micros int64, nanos int16) time.Time {
	return time.UnixMicro(micros).Add(time.Duration(nanos)).UTC()
}
