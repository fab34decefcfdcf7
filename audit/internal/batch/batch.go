// Package batch holds what the SQL audit stores share: checking a batch
// of records before it is stored, the event fields they index, and time
// conversions.
package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// Check checks that, within recs, each chain's records follow one another
// (Seq one more, Prev the previous Hash), as audit.MemoryStore does, and
// returns the first record of each chain, in order of first appearance:
// each must follow its chain's stored head (see Follows). A break is an
// error matching audit.ErrConflict.
func Check(recs []audit.Record) ([]*audit.Record, error) {
	var firsts []*audit.Record
	last := map[string]*audit.Record{}
	for i := range recs {
		r := &recs[i]
		if r.Seq == 0 || r.Seq > math.MaxInt64 {
			return nil, fmt.Errorf("%w: chain %q: record seq %d out of range", audit.ErrConflict, r.Chain, r.Seq)
		}
		if p, ok := last[r.Chain]; !ok {
			firsts = append(firsts, r)
		} else if r.Seq != p.Seq+1 || r.Prev != p.Hash {
			return nil, Conflict(r.Chain, audit.Head{Seq: p.Seq, Hash: p.Hash}, r.Seq)
		}
		last[r.Chain] = r
	}
	return firsts, nil
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

// Fields are the fields of a record's event that stores index.
type Fields struct {
	// Time is the event's time (UTC); stores keep it in microseconds,
	// the precision of Event.Encode.
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	Tool    string    `json:"tool"`
	Outcome string    `json:"outcome"`
}

// Index decodes the indexed fields of r's body, as json.Unmarshal does;
// this runs for every record stored, so the bodies Event.Encode writes
// are read without reflection (indexPlain). A body that is not a JSON
// object with these fields of the right types is an error.
func Index(r *audit.Record) (Fields, error) {
	f, ok := indexPlain(r.Body)
	if ok {
		f.Time = f.Time.UTC()
		return f, nil
	}
	if err := json.Unmarshal(r.Body, &f); err != nil {
		return f, fmt.Errorf("audit: record %d of chain %q is not an event: %w", r.Seq, r.Chain, err)
	}
	f.Time = f.Time.UTC()
	return f, nil
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

// Decode calls fn with recs in chunks of up to size records and their
// indexed fields, in order. A goroutine decodes the next chunks while fn
// stores this one, so on two cores decoding costs little time. It stops at
// the first error, fn's or a body's, and returns it; the goroutine has
// ended when Decode returns.
func Decode(recs []audit.Record, size int, fn func(recs []audit.Record, fields []Fields) error) error {
	type chunk struct {
		recs   []audit.Record
		fields []Fields
		err    error
	}
	ch := make(chan chunk, 2)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for len(recs) > 0 {
			n := min(len(recs), size)
			c := chunk{recs: recs[:n], fields: make([]Fields, n)}
			for i := range c.recs {
				if c.fields[i], c.err = Index(&c.recs[i]); c.err != nil {
					break
				}
			}
			select {
			case ch <- c:
			case <-stop:
				return
			}
			if c.err != nil {
				return
			}
			recs = recs[n:]
		}
	}()
	defer func() { close(stop); <-done }()
	for c := range ch {
		if c.err != nil {
			return c.err
		}
		if err := fn(c.recs, c.fields); err != nil {
			return err
		}
	}
	return nil
}

// SetHash copies a stored hash into h, refusing one of the wrong length.
func SetHash(h *audit.Hash, b []byte) error {
	if len(b) != len(h) {
		return fmt.Errorf("stored hash has %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return nil
}

// Rows is what both SQL drivers' result sets (database/sql, pgx) offer.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanRecords reads rows of (seq, prev, hash, body) of chain.
func ScanRecords(rows Rows, chain string) ([]audit.Record, error) {
	var out []audit.Record
	for rows.Next() {
		r := audit.Record{Chain: chain}
		var seq int64
		var prev, hash []byte
		if err := rows.Scan(&seq, &prev, &hash, &r.Body); err != nil {
			return nil, err
		}
		r.Seq = uint64(seq)
		if err := errors.Join(SetHash(&r.Prev, prev), SetHash(&r.Hash, hash)); err != nil {
			return nil, fmt.Errorf("record %d: %w", r.Seq, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
