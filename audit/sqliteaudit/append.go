package sqliteaudit

import (
	"context"
	"errors"
	"fmt"
	"math"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/internal/batch"
)

// insertSQL inserts one record. A batch runs it once per record: a
// single-row INSERT needs no statement journal, which a multi-row one
// keeps (a copy of every page it changes) to undo itself on a failure.
// OR ROLLBACK: a failing record ends the transaction, which Append would
// roll back anyway.
const insertSQL = `INSERT OR ROLLBACK INTO audit_records (chain, seq, prev, hash, time, outcome, tool, user_id, body)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Spans stand in for an index on (chain, time): each row of audit_spans
// gives the smallest and largest event time of a run of a chain's
// records, so that a query by time reads only the runs that can match
// (see Query). Append closes a chain's open run, the records after its
// last span, once it holds spanLen records; a span costs a row per
// spanLen records, where an index costs an entry, and a page written, per
// record and chain of every batch.
const spanLen = 256

const (
	insertSpanSQL = `INSERT INTO audit_spans (chain, seq_from, seq_to, min_time, max_time) VALUES (?, ?, ?, ?, ?)`
	spanToSQL     = `SELECT COALESCE(MAX(seq_to), 0) FROM audit_spans WHERE chain = ?`
	spanTimesSQL  = `SELECT COUNT(*), COALESCE(MIN(time), 0), COALESCE(MAX(time), 0) FROM audit_records WHERE chain = ? AND seq > ?`
	// dropSpansSQL removes spans past a chain's head, which only a
	// truncated file has: the records appended from there on must not
	// seem covered by them.
	dropSpansSQL = `DELETE FROM audit_spans WHERE chain = ? AND seq_to > ?`
)

// chainState is what Append needs of a chain: its stored head and its
// open run of records (spanTo+1 … head.Seq), with their times.
type chainState struct {
	head   audit.Head
	spanTo uint64 // the last seq audit_spans covers
	// open counts the records after spanTo, minTime and maxTime (Unix
	// microseconds) their times.
	open             uint64
	minTime, maxTime int64
}

func (c *chainState) add(r *audit.Record, t int64) {
	if c.open == 0 {
		c.minTime, c.maxTime = t, t
	}
	c.minTime, c.maxTime = min(c.minTime, t), max(c.maxTime, t)
	c.open++
	c.head = audit.Head{Seq: r.Seq, Hash: r.Hash}
}

// maxChains bounds the chains a Store remembers; past it, a random one
// is forgotten for each new one (and read from the file when next
// needed).
const maxChains = 1 << 17

// Append implements audit.Store: one BEGIN IMMEDIATE transaction, in
// which each chain's head is checked before the batch goes in. The heads
// are those this store last wrote, unless another connection (a second
// process, or anything else writing the file) has committed since: then
// they are read from the file again, inside the transaction, so a batch
// that does not follow what the file holds is refused (audit.ErrConflict)
// however the file was changed.
func (s *Store) Append(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	firsts, err := batch.Check(recs)
	if err != nil {
		return fmt.Errorf("sqliteaudit: append: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wc == nil {
		return fmt.Errorf("sqliteaudit: append: %w", errClosed)
	}
	if _, err := s.begin.ExecContext(ctx); err != nil { // the write lock, now
		return fmt.Errorf("sqliteaudit: append: begin: %w", err)
	}
	next, err := s.appendTx(ctx, recs, firsts)
	if err != nil {
		s.rollback()
		return fmt.Errorf("sqliteaudit: append: %w", err)
	}
	for c, st := range next {
		s.remember(c, st)
	}
	return nil
}

// appendTx checks and inserts recs, closes the runs that are long enough
// and commits, inside the transaction Append began. It returns the states
// of the batch's chains.
func (s *Store) appendTx(ctx context.Context, recs []audit.Record, firsts []*audit.Record) (map[string]chainState, error) {
	// The statements inside the transaction wait for nothing (the write
	// lock is held): they run without ctx's cancellation, for which the
	// driver starts a goroutine per statement, and ctx is checked between
	// them instead.
	cancel := ctx
	ctx = context.WithoutCancel(ctx)
	var v int64
	if err := s.version.QueryRowContext(ctx).Scan(&v); err != nil {
		return nil, fmt.Errorf("data version: %w", err)
	}
	if s.chains == nil || v != s.dataVersion {
		// First use, or another connection committed: forget everything.
		s.chains, s.dataVersion = map[string]chainState{}, v
	}
	next := make(map[string]chainState, len(firsts))
	for _, f := range firsts {
		st, ok := s.chains[f.Chain]
		if !ok {
			var err error
			if st, err = s.load(ctx, f.Chain); err != nil {
				return nil, fmt.Errorf("chain %q: %w", f.Chain, err)
			}
			s.remember(f.Chain, st)
		}
		if err := batch.Follows(f, st.head); err != nil {
			return nil, err
		}
		next[f.Chain] = st
	}
	err := batch.Decode(recs, 64, func(recs []audit.Record, fields []batch.Fields) error {
		if err := cancel.Err(); err != nil {
			return err
		}
		for i := range recs {
			r, f := &recs[i], &fields[i]
			t := f.Time.UnixMicro()
			_, err := s.insert.ExecContext(ctx, r.Chain, int64(r.Seq), r.Prev[:], r.Hash[:], t, f.Outcome, f.Tool, f.User, []byte(r.Body))
			var se *sqlite.Error
			if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
				// The head check above rules this out, since the write lock
				// is held; the primary key is the last line of defence.
				return fmt.Errorf("%w: record %d of chain %q is stored already", audit.ErrConflict, r.Seq, r.Chain)
			}
			if err != nil {
				return err
			}
			st := next[r.Chain]
			st.add(r, t)
			next[r.Chain] = st
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for c, st := range next {
		if st.open < spanLen {
			continue
		}
		if _, err := s.insertSpan.ExecContext(ctx, c, int64(st.spanTo+1), int64(st.head.Seq), st.minTime, st.maxTime); err != nil {
			return nil, fmt.Errorf("span of chain %q: %w", c, err)
		}
		next[c] = chainState{head: st.head, spanTo: st.head.Seq}
	}
	if err := cancel.Err(); err != nil {
		return nil, err
	}
	if _, err := s.commit.ExecContext(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return next, nil
}

// load reads chain's state from the file, inside Append's transaction.
func (s *Store) load(ctx context.Context, chain string) (chainState, error) {
	var st chainState
	var err error
	if st.head, err = head(ctx, s.headW, chain); err != nil {
		return st, fmt.Errorf("head: %w", err)
	}
	if _, err := s.dropSpans.ExecContext(ctx, chain, int64(st.head.Seq)); err != nil {
		return st, fmt.Errorf("spans: %w", err)
	}
	var to int64
	if err := s.spanTo.QueryRowContext(ctx, chain).Scan(&to); err != nil {
		return st, fmt.Errorf("spans: %w", err)
	}
	var open int64
	if err := s.spanTimes.QueryRowContext(ctx, chain, to).Scan(&open, &st.minTime, &st.maxTime); err != nil {
		return st, fmt.Errorf("open run: %w", err)
	}
	st.spanTo, st.open = uint64(to), uint64(open)
	return st, nil
}

// rollback ends a failed Append's transaction (if a statement's OR
// ROLLBACK has not ended it already) and forgets the chains, whatever
// state the failure left. It does not take the caller's context: a
// cancelled one must not leave the connection inside a transaction.
func (s *Store) rollback() {
	s.wc.ExecContext(context.Background(), `ROLLBACK`) //nolint:errcheck // "no transaction is active" after OR ROLLBACK
	s.chains = nil
}

// remember keeps st as chain's state (under wmu, while chains is valid).
func (s *Store) remember(chain string, st chainState) {
	if s.chains == nil {
		return
	}
	if _, ok := s.chains[chain]; !ok && len(s.chains) >= maxChains {
		for c := range s.chains { // a random one
			delete(s.chains, c)
			break
		}
	}
	s.chains[chain] = st
}

// seqRange is the records from seq from to seq to of a chain.
type seqRange struct{ from, to uint64 }

// timeRanges returns, newest first, the runs of chain's records that can
// hold events with since ≤ time < until (Unix microseconds): the spans
// whose times overlap, merged where they touch, and the open run after
// the last span, whose times are not recorded.
func (s *Store) timeRanges(ctx context.Context, chain string, since, until int64) ([]seqRange, error) {
	var last int64
	if err := s.r.QueryRowContext(ctx, spanToSQL, chain).Scan(&last); err != nil {
		return nil, err
	}
	out := []seqRange{{from: uint64(last) + 1, to: math.MaxInt64}}
	rows, err := s.r.QueryContext(ctx, `SELECT seq_from, seq_to FROM audit_spans
		WHERE chain = ? AND seq_to <= ? AND max_time >= ? AND min_time < ? ORDER BY seq_to DESC`, chain, last, since, until)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var from, to int64
		if err := rows.Scan(&from, &to); err != nil {
			return nil, err
		}
		if p := &out[len(out)-1]; uint64(to)+1 == p.from {
			p.from = uint64(from)
		} else {
			out = append(out, seqRange{from: uint64(from), to: uint64(to)})
		}
	}
	return out, rows.Err()
}
