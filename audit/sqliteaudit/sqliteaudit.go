package sqliteaudit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/internal/batch"
)

// Options configures Open. A nil *Options means defaults.
type Options struct {
	// BusyTimeout is how long a statement waits for another process
	// holding the file's write lock. 0 means 5s.
	BusyTimeout time.Duration
	// ReadConns bounds the connections that read (Head, Chains, Scan,
	// Query, Checkpoints). 0 means 4. Writes go through one connection of
	// their own, whatever this is.
	ReadConns int
	// Logger receives migration notices. nil discards.
	Logger *slog.Logger
}

// Store is an audit.Store in one SQLite file. It is safe for concurrent
// use; writes are serialised on one connection.
type Store struct {
	w, r *sql.DB // the writer (one connection) and the readers
	path string

	// wmu serialises the writes, on wc: w's one connection, held for the
	// store's life, so that the statements prepared on it stay prepared
	// and PRAGMA data_version keeps meaning "changed by another
	// connection" (see chains).
	wmu sync.Mutex
	wc  *sql.Conn
	// Statements prepared once on wc: SQLite's parser is a good part of
	// a small Append otherwise.
	begin, commit, version, insert, insertSpan *sql.Stmt
	headW, spanTo, spanTimes, dropSpans        *sql.Stmt
	headR                                      *sql.Stmt // on r
	// chains is what this store knows of the chains it wrote to: valid
	// while the file's data_version (which changes only when another
	// connection, such as another process, commits) is still
	// dataVersion. With it, an Append reads nothing back from the file
	// unless someone else wrote to it. nil = not valid.
	chains      map[string]chainState
	dataVersion int64
}

var (
	_ audit.Store             = (*Store)(nil)
	_ audit.CheckpointBatcher = (*Store)(nil)
)

const defaultBusy = 5 * time.Second

// scanPage is how many records Scan reads at a time; between pages it
// holds no connection, so fn may use the store.
const scanPage = 1000

// Open opens (creating if needed, with mode 0600 and its directory with
// 0700) the audit file at path and migrates it to the current schema.
// The file may be shared with other tenantmcp tables: the audit tables
// are named audit_*.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if path == "" {
		return nil, errors.New("sqliteaudit: empty path; pass the audit file's path (e.g. <data dir>/audit.db)")
	}
	if o.BusyTimeout < 0 || o.ReadConns < 0 {
		return nil, errors.New("sqliteaudit: BusyTimeout and ReadConns must not be negative")
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = defaultBusy
	}
	if o.ReadConns == 0 {
		o.ReadConns = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqliteaudit: resolve %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqliteaudit: create directory of %s: %w", abs, err)
	}
	// Create the file ourselves so that it is private from the start.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqliteaudit: create %s: %w", abs, err)
	}
	w, err := openDB(abs, o.BusyTimeout, 1, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.BusyTimeout+10*time.Second)
	defer cancel()
	if err := migrate(ctx, w, o.Logger); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqliteaudit: migrate %s: %w", abs, err)
	}
	r, err := openDB(abs, o.BusyTimeout, o.ReadConns, true)
	if err != nil {
		w.Close()
		return nil, err
	}
	s := &Store{w: w, r: r, path: abs}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqliteaudit: open %s: %w", abs, err)
	}
	return s, nil
}

// prepare takes the writer's connection for the store's life and prepares
// the statements Append and Head run.
func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.wc, err = s.w.Conn(ctx); err != nil {
		return err
	}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&s.begin, `BEGIN IMMEDIATE`}, {&s.commit, `COMMIT`}, {&s.version, `PRAGMA data_version`},
		{&s.insert, insertSQL}, {&s.insertSpan, insertSpanSQL},
		{&s.headW, headSQL}, {&s.spanTo, spanToSQL}, {&s.spanTimes, spanTimesSQL}, {&s.dropSpans, dropSpansSQL},
	} {
		if *p.st, err = s.wc.PrepareContext(ctx, p.q); err != nil {
			return err
		}
	}
	s.headR, err = s.r.PrepareContext(ctx, headSQL)
	return err
}

// writerCache is the page cache of the writer's connection, in KiB: a
// batch across many chains dirties a page of the primary key per chain,
// and SQLite's default (2 MiB, 125 pages of 16 KiB) spilled them to the
// WAL before the commit.
const writerCache = 32 << 10

// openDB opens a pool of n connections to the file at abs.
func openDB(abs string, busy time.Duration, n int, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	// The driver runs _pragma values (sorted) before the shorthand keys,
	// so that page_size applies to a new file before WAL fixes it.
	q.Add("_pragma", "page_size(16384)") // fewer, larger writes for batches (4 KiB: a quarter fewer events/s at 1,000 a batch)
	if !readOnly {
		q.Add("_pragma", "cache_size(-"+strconv.Itoa(writerCache)+")")
	} // fewer, larger writes for batches (4 KiB: a quarter fewer events/s at 1,000 a batch)
	q.Add("_pragma", "temp_store(MEMORY)") // statement journals of multi-row INSERTs stay off the disk
	q.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	q.Set("_journal_mode", "WAL")
	// FULL: a batch Append reported stored survives a power cut too.
	q.Set("_synchronous", "FULL")
	if readOnly {
		q.Set("_query_only", "1")
	}
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	if filepath.Separator == '\\' {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("sqliteaudit: open %s: %w", abs, err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// Path returns the absolute path of the audit file.
func (s *Store) Path() string { return s.path }

// Close implements audit.Store.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, st := range []*sql.Stmt{s.begin, s.commit, s.version, s.insert, s.insertSpan,
		s.headW, s.spanTo, s.spanTimes, s.dropSpans, s.headR} {
		if st != nil {
			st.Close()
		}
	}
	var errs []error
	if s.wc != nil {
		errs = append(errs, s.wc.Close())
		s.wc = nil
	}
	s.chains = nil
	return errors.Join(append(errs, s.r.Close(), s.w.Close())...)
}

// errClosed is what writes to a closed Store return.
var errClosed = errors.New("sqliteaudit: store closed")

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const headSQL = `SELECT seq, hash FROM (SELECT seq, hash FROM audit_records WHERE chain = ?1 ORDER BY seq DESC LIMIT 1)
	UNION ALL SELECT seq, hash FROM audit_floors WHERE chain = ?1
	ORDER BY seq DESC LIMIT 1`

// head runs headSQL, prepared as st.
func head(ctx context.Context, st *sql.Stmt, chain string) (audit.Head, error) {
	var h audit.Head
	var seq int64
	var hash []byte
	err := st.QueryRowContext(ctx, chain).Scan(&seq, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return audit.Head{}, nil
	case err != nil:
		return h, err
	}
	h.Seq = uint64(seq)
	if err := batch.SetHash(&h.Hash, hash); err != nil {
		return h, err
	}
	return h, nil
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, chain string) (audit.Head, error) {
	h, err := head(ctx, s.headR, chain)
	if err != nil {
		return h, fmt.Errorf("sqliteaudit: head of chain %q: %w", chain, err)
	}
	return h, nil
}

// chainsSQL lists the distinct chains through the primary key index, one
// step per chain (SQLite would otherwise read every record).
const chainsSQL = `WITH RECURSIVE c(chain) AS (
		SELECT (SELECT chain FROM audit_records ORDER BY chain LIMIT 1)
		UNION ALL
		SELECT (SELECT chain FROM audit_records WHERE chain > c.chain ORDER BY chain LIMIT 1) FROM c WHERE c.chain IS NOT NULL
	) SELECT chain FROM c WHERE chain IS NOT NULL`

func chains(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, chainsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Chains implements audit.Store.
func (s *Store) Chains(ctx context.Context) ([]string, error) {
	cs, err := chains(ctx, s.r)
	if err != nil {
		return nil, fmt.Errorf("sqliteaudit: list chains: %w", err)
	}
	return cs, nil
}

// Scan implements audit.Store. It reads a page at a time and holds no
// connection while fn runs.
func (s *Store) Scan(ctx context.Context, chain string, from uint64, fn func(*audit.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	from = max(from, 1)
	for {
		page, err := s.records(ctx, `SELECT seq, prev, hash, body FROM audit_records
			WHERE chain = ? AND seq >= ? ORDER BY seq LIMIT ?`, chain, int64(from), scanPage)
		if err != nil {
			return fmt.Errorf("sqliteaudit: scan chain %q from %d: %w", chain, from, err)
		}
		for i := range page {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		from = page[len(page)-1].Seq + 1
	}
}

// records runs a query of seq, prev, hash, body on the readers; the
// first argument is the chain.
func (s *Store) records(ctx context.Context, query string, chain string, args ...any) ([]audit.Record, error) {
	rows, err := s.r.QueryContext(ctx, query, append([]any{chain}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return batch.ScanRecords(rows, chain)
}

// Query implements audit.Store. With a time bound it reads only the runs
// of records whose spans can match (see timeRanges), newest first, until
// the page is full.
func (s *Store) Query(ctx context.Context, chain string, f audit.Filter) ([]audit.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var where strings.Builder
	var args []any
	cond := func(c string, v any) {
		where.WriteString(" AND " + c)
		args = append(args, v)
	}
	since, until := int64(math.MinInt64), int64(math.MaxInt64)
	if !f.Since.IsZero() {
		since = batch.Micros(f.Since)
		cond("time >= ?", since)
	}
	if !f.Until.IsZero() {
		until = batch.Micros(f.Until)
		cond("time < ?", until)
	}
	if f.Outcome != "" {
		cond("outcome = ?", f.Outcome)
	}
	if f.Tool != "" {
		cond("tool = ?", f.Tool)
	}
	if f.User != "" {
		cond("user_id = ?", f.User)
	}
	before := uint64(math.MaxInt64)
	if f.BeforeSeq != 0 {
		before = min(f.BeforeSeq-1, before)
	}
	ranges := []seqRange{{from: 1, to: before}}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		var err error
		if ranges, err = s.timeRanges(ctx, chain, since, until); err != nil {
			return nil, fmt.Errorf("sqliteaudit: query chain %q: spans: %w", chain, err)
		}
	}
	query := `SELECT seq, prev, hash, body FROM audit_records WHERE chain = ? AND seq BETWEEN ? AND ?` + where.String() +
		` ORDER BY seq DESC LIMIT ?`
	var out []audit.Record
	for _, rg := range ranges {
		rg.to = min(rg.to, before)
		if rg.from > rg.to {
			continue
		}
		rs, err := s.records(ctx, query, chain, slices.Concat([]any{int64(rg.from), int64(rg.to)}, args, []any{limit - len(out)})...)
		if err != nil {
			return nil, fmt.Errorf("sqliteaudit: query chain %q: %w", chain, err)
		}
		if out = append(out, rs...); len(out) == limit {
			break
		}
	}
	return out, nil
}

// PutCheckpoint implements audit.Store.
func (s *Store) PutCheckpoint(ctx context.Context, cp *audit.Checkpoint) error {
	return s.PutCheckpoints(ctx, []audit.Checkpoint{*cp})
}

// PutCheckpoints implements audit.CheckpointBatcher: one transaction.
func (s *Store) PutCheckpoints(ctx context.Context, cps []audit.Checkpoint) error {
	for i := range cps {
		if cps[i].Count > math.MaxInt64 {
			return fmt.Errorf("sqliteaudit: checkpoint count %d out of range", cps[i].Count)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wc == nil {
		return fmt.Errorf("sqliteaudit: store checkpoints: %w", errClosed)
	}
	if len(cps) == 0 {
		return nil
	}
	tx, err := s.wc.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqliteaudit: store checkpoints: begin: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO audit_checkpoints (chain, count, head, time, time_ns, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqliteaudit: store checkpoints: %w", err)
	}
	defer st.Close()
	for i := range cps {
		cp := &cps[i]
		us, ns := batch.SplitTime(cp.Time)
		if _, err := st.ExecContext(ctx, cp.Chain, int64(cp.Count), cp.Head[:], us, ns, cp.KeyID, nonNil(cp.Signature)); err != nil {
			return fmt.Errorf("sqliteaudit: store checkpoint of chain %q at %d: %w", cp.Chain, cp.Count, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqliteaudit: store checkpoints: commit: %w", err)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Checkpoints implements audit.Store.
func (s *Store) Checkpoints(ctx context.Context, chain string) ([]audit.Checkpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT count, head, time, time_ns, key_id, signature
		FROM audit_checkpoints WHERE chain = ? ORDER BY id`, chain)
	if err != nil {
		return nil, fmt.Errorf("sqliteaudit: checkpoints of chain %q: %w", chain, err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		cp := audit.Checkpoint{Chain: chain}
		var count, us int64
		var ns int16
		var hash []byte
		if err := rows.Scan(&count, &hash, &us, &ns, &cp.KeyID, &cp.Signature); err != nil {
			return nil, fmt.Errorf("sqliteaudit: checkpoints of chain %q: %w", chain, err)
		}
		if err := batch.SetHash(&cp.Head, hash); err != nil {
			return nil, fmt.Errorf("sqliteaudit: checkpoint of chain %q at %d: %w", chain, count, err)
		}
		cp.Count, cp.Time = uint64(count), batch.JoinTime(us, ns)
		if len(cp.Signature) == 0 {
			cp.Signature = nil
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqliteaudit: checkpoints of chain %q: %w", chain, err)
	}
	return out, nil
}

// DeleteBefore implements audit.Store, in one transaction.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wc == nil {
		return 0, fmt.Errorf("sqliteaudit: delete before %s: %w", t, errClosed)
	}
	// Heads do not change (floors keep them), but nothing is lost by
	// reading them again after a rare retention run.
	s.chains = nil
	tx, err := s.wc.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqliteaudit: delete before %s: begin: %w", t, err)
	}
	defer tx.Rollback()
	n, err := deleteBefore(ctx, tx, t)
	if err != nil {
		return 0, fmt.Errorf("sqliteaudit: delete before %s: %w", t, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqliteaudit: delete before %s: commit: %w", t, err)
	}
	return n, nil
}

func deleteBefore(ctx context.Context, tx *sql.Tx, t time.Time) (int64, error) {
	cs, err := chains(ctx, tx)
	if err != nil {
		return 0, err
	}
	cut := batch.Micros(t)
	var n int64
	for _, c := range cs {
		// The last record of the chain's oldest run before the cut: the
		// new floor. "+time" keeps SQLite on the primary key (seq order),
		// so this reads only the records it removes, and one more.
		var seq int64
		var hash []byte
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_records WHERE chain = ?1 AND seq < COALESCE(
				(SELECT seq FROM audit_records WHERE chain = ?1 AND +time >= ?2 ORDER BY seq LIMIT 1), 9223372036854775807)
			ORDER BY seq DESC LIMIT 1`, c, cut).Scan(&seq, &hash)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("chain %q: %w", c, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_records WHERE chain = ? AND seq <= ?`, c, seq)
		if err != nil {
			return 0, fmt.Errorf("chain %q: %w", c, err)
		}
		k, _ := res.RowsAffected()
		n += k
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_floors (chain, seq, hash) VALUES (?1, ?2, ?3)
			ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > audit_floors.seq`,
			c, seq, hash); err != nil {
			return 0, fmt.Errorf("chain %q: floor: %w", c, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_spans WHERE chain = ? AND seq_to <= ?`, c, seq); err != nil {
			return 0, fmt.Errorf("chain %q: spans: %w", c, err)
		}
		// Checkpoints that cover only removed records can no longer be
		// compared with anything.
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE chain = ? AND count <= ?`, c, seq); err != nil {
			return 0, fmt.Errorf("chain %q: checkpoints: %w", c, err)
		}
	}
	us, ns := batch.SplitTime(t)
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE time < ?1 OR (time = ?1 AND time_ns < ?2)`, us, ns); err != nil {
		return 0, fmt.Errorf("checkpoints: %w", err)
	}
	return n, nil
}
