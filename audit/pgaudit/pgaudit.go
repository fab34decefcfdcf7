package pgaudit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/internal/batch"
)

// Errors returned by this package. Classify them with errors.Is.
var (
	// ErrNotMigrated: the audit tables do not exist; run Migrate (`tenantmcp
	// db migrate`) first.
	ErrNotMigrated = errors.New("pgaudit: audit tables not found; run Migrate (`tenantmcp db migrate`) first")
	// ErrUnsafeRole: the connected role could change or remove audit
	// records (see CheckAppRole).
	ErrUnsafeRole = errors.New("pgaudit: connected role can change the audit trail")
	// ErrInvalidOptions: an option or argument is not acceptable.
	ErrInvalidOptions = errors.New("pgaudit: invalid options")
)

// Options configures a Store. A nil *Options means defaults.
type Options struct {
	// Schema holds the audit tables (as given to Migrate). "" means public.
	Schema string
	// RetentionRole is the role DeleteBefore acts as (SET LOCAL ROLE),
	// for a pool of an administrator that is a member of it: the owner
	// role Migrate was given, which is NOLOGIN when store/postgres.Setup
	// made it. "" means the pool's own role, which then needs DELETE on
	// the tables (the owner does; the application role does not).
	RetentionRole string
	// MaxConns bounds the pool Open creates. 0 means pgx's default.
	MaxConns int32
}

// Store is an audit.Store in PostgreSQL. It is safe for concurrent use,
// and several Stores (replicas) may append to one chain: an Append that
// does not follow the chain's stored head, or loses the race for it,
// stores nothing and returns an error matching audit.ErrConflict.
type Store struct {
	pool  *pgxpool.Pool
	owned bool // Close closes the pool
	role  string

	schema                      string
	records, checkpoints, floor string // quoted, schema-qualified
	recordsID                   pgx.Identifier
	q                           queries
}

var (
	_ audit.Store             = (*Store)(nil)
	_ audit.CheckpointBatcher = (*Store)(nil)
)

type queries struct {
	appendBatch, follows, heads, head, chains, scan, putCheckpoints, checkpoints string
	cut, deleteRecords, setFloor, deleteCovered, deleteOld                       string
}

// scanPage is how many records Scan reads at a time; between pages it
// holds no connection, so fn may use the store.
const scanPage = 1000

// Open connects to dsn and checks that the audit tables exist
// (ErrNotMigrated if not); it does not migrate: that needs the owner role
// (see Migrate). Close closes the connections.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgaudit: parse DSN: %w", err)
	}
	if opts != nil && opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgaudit: connect: %w", err)
	}
	s := New(pool, opts)
	s.owned = true
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.records).Scan(&ok); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgaudit: connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if !ok {
		pool.Close()
		return nil, ErrNotMigrated
	}
	return s, nil
}

// New returns a Store on a pool the caller owns (Close leaves it open).
func New(pool *pgxpool.Pool, opts *Options) *Store {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = "public"
	}
	qs := ident(o.Schema)
	s := &Store{
		pool:        pool,
		role:        o.RetentionRole,
		schema:      o.Schema,
		records:     qs + "." + RecordsTable,
		checkpoints: qs + "." + CheckpointsTable,
		floor:       qs + "." + FloorsTable,
		recordsID:   pgx.Identifier{o.Schema, RecordsTable},
	}
	// headOf is the stored head of chain c.chain: its last record, or
	// its floor once retention removed every record.
	headOf := `SELECT seq, hash FROM (
			(SELECT seq, hash FROM ` + s.records + ` r WHERE r.chain = c.chain ORDER BY r.seq DESC LIMIT 1)
			UNION ALL (SELECT seq, hash FROM ` + s.floor + ` f WHERE f.chain = c.chain)
		) h ORDER BY seq DESC LIMIT 1`
	// conflicts(p) are the first records of a batch's chains (parameters
	// p, p+1, p+2: chain, seq, prev) that do not follow their chain's
	// stored head.
	conflicts := func(p int) string {
		return fmt.Sprintf(`SELECT 1 FROM unnest($%d::text[], $%d::bigint[], $%d::bytea[]) AS c(chain, seq, prev)
			LEFT JOIN LATERAL (%s) h ON true
			WHERE c.seq <> COALESCE(h.seq, 0) + 1 OR c.prev <> COALESCE(h.hash, '\x%s'::bytea)`, p, p+1, p+2, headOf, strings.Repeat("00", 32))
	}
	s.q = queries{
		// One statement, so one snapshot and one round trip: it inserts
		// the batch only if the first record of each chain follows that
		// chain's stored head; the primary key settles races between
		// writers that read the same head.
		appendBatch: `INSERT INTO ` + s.records + ` (chain, seq, prev, hash, time, outcome, tool, user_id, body)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bytea[], $5::timestamptz[],
				$6::text[], $7::text[], $8::text[], $9::bytea[])
			WHERE NOT EXISTS (` + conflicts(10) + `)`,
		follows: `SELECT NOT EXISTS (` + conflicts(1) + `)`,
		heads:   `SELECT c.chain, h.seq, h.hash FROM unnest($1::text[]) AS c(chain) CROSS JOIN LATERAL (` + headOf + `) h`,
		head:    `SELECT h.seq, h.hash FROM (SELECT $1::text AS chain) c CROSS JOIN LATERAL (` + headOf + `) h`,
		chains:  chainsSQL(s.records),
		scan:    `SELECT seq, prev, hash, body FROM ` + s.records + ` WHERE chain = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
		putCheckpoints: `INSERT INTO ` + s.checkpoints + ` (chain, count, head, time, time_ns, key_id, signature)
			SELECT chain, count, head, time, time_ns, key_id, signature FROM unnest($1::text[], $2::bigint[], $3::bytea[],
				$4::timestamptz[], $5::smallint[], $6::text[], $7::bytea[]) WITH ORDINALITY
				AS c(chain, count, head, time, time_ns, key_id, signature, n) ORDER BY n`,
		checkpoints: `SELECT count, head, time, time_ns, key_id, signature FROM ` + s.checkpoints + ` WHERE chain = $1 ORDER BY id`,
		// The last record of the chain's oldest run of records before
		// the cut: the new floor.
		cut: `SELECT seq, hash FROM ` + s.records + ` WHERE chain = $1 AND seq < COALESCE(
				(SELECT seq FROM ` + s.records + ` WHERE chain = $1 AND time >= $2 ORDER BY seq LIMIT 1), 9223372036854775807)
			ORDER BY seq DESC LIMIT 1`,
		deleteRecords: `DELETE FROM ` + s.records + ` WHERE chain = $1 AND seq <= $2`,
		setFloor: `INSERT INTO ` + s.floor + ` AS f (chain, seq, hash) VALUES ($1, $2, $3)
			ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > f.seq`,
		deleteCovered: `DELETE FROM ` + s.checkpoints + ` WHERE chain = $1 AND count <= $2`,
		deleteOld:     `DELETE FROM ` + s.checkpoints + ` WHERE time < $1 OR (time = $1 AND time_ns < $2)`,
	}
	return s
}

// chainsSQL lists the distinct chains of table through its primary key,
// one index probe per chain (PostgreSQL would otherwise read every row).
func chainsSQL(table string) string {
	return `WITH RECURSIVE c(chain) AS (
			(SELECT chain FROM ` + table + ` ORDER BY chain LIMIT 1)
			UNION ALL
			SELECT (SELECT chain FROM ` + table + ` r WHERE r.chain > c.chain ORDER BY chain LIMIT 1) FROM c WHERE c.chain IS NOT NULL
		) SELECT chain FROM c WHERE chain IS NOT NULL`
}

// Close closes the pool if Open created it.
func (s *Store) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// copyRows is the batch size from which Append uses COPY: more round
// trips, but faster per record and decoding while it streams.
const copyRows = 256

// Append implements audit.Store. A batch goes in whole or not at all, and
// only if the first record of each of its chains follows that chain's
// stored head; the primary key settles races between writers that read
// the same head (ErrConflict for the loser).
func (s *Store) Append(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	firsts, err := batch.Check(recs)
	if err != nil {
		return fmt.Errorf("pgaudit: append: %w", err)
	}
	// Insert in (chain, seq) order, so that writers racing with batches
	// of several chains take index locks in the same order and never
	// deadlock.
	if len(firsts) > 1 {
		recs = slices.Clone(recs)
		slices.SortStableFunc(recs, func(x, y audit.Record) int { return strings.Compare(x.Chain, y.Chain) })
	}
	fchain, fseq, fprev := make([]string, len(firsts)), make([]int64, len(firsts)), make([][]byte, len(firsts))
	for i, f := range firsts {
		fchain[i], fseq[i], fprev[i] = f.Chain, int64(f.Seq), f.Prev[:]
	}
	var stored int64
	if len(recs) < copyRows {
		stored, err = s.insert(ctx, recs, fchain, fseq, fprev)
	} else {
		stored, err = s.copy(ctx, recs, fchain, fseq, fprev)
	}
	switch code := pgCode(err); {
	case code == "23505": // unique_violation: another writer stored one of these seqs first
		return fmt.Errorf("pgaudit: append: %w: another writer appended to %s first", audit.ErrConflict, chainList(firsts))
	case code == "40P01": // deadlock_detected, with a writer outside this package
		return fmt.Errorf("pgaudit: append: %w: %v", audit.ErrConflict, err)
	case errors.Is(err, errConflict):
		return s.conflict(ctx, firsts)
	case err != nil:
		return fmt.Errorf("pgaudit: append: %w", err)
	case stored != int64(len(recs)):
		return fmt.Errorf("pgaudit: append: stored %d of %d records", stored, len(recs)) // cannot happen: one statement or transaction
	}
	return nil
}

// errConflict: the batch does not follow a stored head; Append says which.
var errConflict = errors.New("conflict")

// insert stores a small batch in one statement (one round trip).
func (s *Store) insert(ctx context.Context, recs []audit.Record, fchain []string, fseq []int64, fprev [][]byte) (int64, error) {
	n := len(recs)
	chain, seq, prev, hash := make([]string, n), make([]int64, n), make([][]byte, n), make([][]byte, n)
	tm, outcome, tool, user, body := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i := range recs {
		r := &recs[i]
		f, err := batch.Index(r)
		if err != nil {
			return 0, err
		}
		chain[i], seq[i], prev[i], hash[i], body[i] = r.Chain, int64(r.Seq), r.Prev[:], r.Hash[:], r.Body
		tm[i], outcome[i], tool[i], user[i] = f.Time, f.Outcome, f.Tool, f.User
	}
	tag, err := s.pool.Exec(ctx, s.q.appendBatch, chain, seq, prev, hash, tm, outcome, tool, user, body, fchain, fseq, fprev)
	if err != nil {
		return 0, err
	}
	if tag.RowsAffected() == 0 {
		return 0, errConflict
	}
	return tag.RowsAffected(), nil
}

// copy stores a large batch in a transaction: the heads are checked, then
// the records stream in by COPY, each decoded as it is sent.
func (s *Store) copy(ctx context.Context, recs []audit.Record, fchain []string, fseq []int64, fprev [][]byte) (int64, error) {
	var stored int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, s.q.follows, fchain, fseq, fprev).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		i := 0
		var err error
		stored, err = tx.CopyFrom(ctx, s.recordsID, recordColumns, pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(recs) {
				return nil, nil
			}
			r := &recs[i]
			i++
			f, err := batch.Index(r)
			if err != nil {
				return nil, err
			}
			return []any{r.Chain, int64(r.Seq), r.Prev[:], r.Hash[:], f.Time, f.Outcome, f.Tool, f.User, []byte(r.Body)}, nil
		}))
		return err
	})
	return stored, err
}

var recordColumns = []string{"chain", "seq", "prev", "hash", "time", "outcome", "tool", "user_id", "body"}

// conflict names the first chain of the batch whose stored head the batch
// does not follow (as it stands now: another writer may have moved it).
func (s *Store) conflict(ctx context.Context, firsts []*audit.Record) error {
	names := make([]string, len(firsts))
	for i, f := range firsts {
		names[i] = f.Chain
	}
	heads := map[string]audit.Head{}
	rows, err := s.pool.Query(ctx, s.q.heads, names)
	if err == nil {
		for rows.Next() {
			var c string
			var h audit.Head
			if h, err = scanHead(rows, &c); err != nil {
				break
			}
			heads[c] = h
		}
		rows.Close()
		err = errors.Join(err, rows.Err())
	}
	if err == nil {
		for _, f := range firsts {
			if err := batch.Follows(f, heads[f.Chain]); err != nil {
				return fmt.Errorf("pgaudit: append: %w", err)
			}
		}
	}
	return fmt.Errorf("pgaudit: append: %w: %s moved while appending", audit.ErrConflict, chainList(firsts))
}

func chainList(firsts []*audit.Record) string {
	var b strings.Builder
	for i, f := range firsts {
		if i == 3 {
			fmt.Fprintf(&b, " and %d more", len(firsts)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "chain %q", f.Chain)
	}
	return b.String()
}

// scanHead scans seq and hash (and, if chain is not nil, the chain first).
func scanHead(row pgx.Row, chain *string) (audit.Head, error) {
	var h audit.Head
	var seq int64
	var hash []byte
	dest := []any{&seq, &hash}
	if chain != nil {
		dest = append([]any{chain}, dest...)
	}
	if err := row.Scan(dest...); err != nil {
		return h, err
	}
	h.Seq = uint64(seq)
	return h, batch.SetHash(&h.Hash, hash)
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, chain string) (audit.Head, error) {
	h, err := scanHead(s.pool.QueryRow(ctx, s.q.head, chain), nil)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return audit.Head{}, nil
	case err != nil:
		return h, fmt.Errorf("pgaudit: head of chain %q: %w", chain, err)
	}
	return h, nil
}

// Chains implements audit.Store.
func (s *Store) Chains(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.q.chains)
	if err != nil {
		return nil, fmt.Errorf("pgaudit: list chains: %w", err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgaudit: list chains: %w", err)
	}
	return cs, nil
}

// Scan implements audit.Store. It reads a page at a time and holds no
// connection while fn runs.
func (s *Store) Scan(ctx context.Context, chain string, from uint64, fn func(*audit.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if from > math.MaxInt64 {
		return nil
	}
	from = max(from, 1)
	for {
		page, err := s.readRecords(ctx, chain, s.q.scan, chain, int64(from), scanPage)
		if err != nil {
			return fmt.Errorf("pgaudit: scan chain %q from %d: %w", chain, from, err)
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

// readRecords runs a query of seq, prev, hash, body of chain.
func (s *Store) readRecords(ctx context.Context, chain, query string, args ...any) ([]audit.Record, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return batch.ScanRecords(rows, chain)
}

// Query implements audit.Store.
func (s *Store) Query(ctx context.Context, chain string, f audit.Filter) ([]audit.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var where strings.Builder
	args := []any{chain}
	cond := func(c string, v any) {
		args = append(args, v)
		fmt.Fprintf(&where, " AND %s $%d", c, len(args))
	}
	if f.BeforeSeq != 0 {
		cond("seq <", int64(min(f.BeforeSeq, math.MaxInt64)))
	}
	if !f.Since.IsZero() {
		cond("time >=", batch.CeilMicro(f.Since))
	}
	if !f.Until.IsZero() {
		cond("time <", batch.CeilMicro(f.Until))
	}
	if f.Outcome != "" {
		cond("outcome =", f.Outcome)
	}
	if f.Tool != "" {
		cond("tool =", f.Tool)
	}
	if f.User != "" {
		cond("user_id =", f.User)
	}
	args = append(args, limit)
	q := fmt.Sprintf(`SELECT seq, prev, hash, body FROM %s WHERE chain = $1%s ORDER BY seq DESC LIMIT $%d`, s.records, where.String(), len(args))
	rs, err := s.readRecords(ctx, chain, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pgaudit: query chain %q: %w", chain, err)
	}
	return rs, nil
}

// PutCheckpoint implements audit.Store.
func (s *Store) PutCheckpoint(ctx context.Context, cp *audit.Checkpoint) error {
	return s.PutCheckpoints(ctx, []audit.Checkpoint{*cp})
}

// PutCheckpoints implements audit.CheckpointBatcher: one statement.
func (s *Store) PutCheckpoints(ctx context.Context, cps []audit.Checkpoint) error {
	if len(cps) == 0 {
		return nil
	}
	n := len(cps)
	chain, count, head, tm, ns := make([]string, n), make([]int64, n), make([][]byte, n), make([]time.Time, n), make([]int16, n)
	keyID, sig := make([]string, n), make([][]byte, n)
	for i := range cps {
		cp := &cps[i]
		if cp.Count > math.MaxInt64 {
			return fmt.Errorf("pgaudit: checkpoint count %d out of range", cp.Count)
		}
		var us int64
		us, ns[i] = batch.SplitTime(cp.Time)
		chain[i], count[i], head[i], tm[i], keyID[i], sig[i] = cp.Chain, int64(cp.Count), cp.Head[:], time.UnixMicro(us), cp.KeyID, cp.Signature
		if sig[i] == nil {
			sig[i] = []byte{}
		}
	}
	if _, err := s.pool.Exec(ctx, s.q.putCheckpoints, chain, count, head, tm, ns, keyID, sig); err != nil {
		if n == 1 {
			return fmt.Errorf("pgaudit: store checkpoint of chain %q at %d: %w", cps[0].Chain, cps[0].Count, err)
		}
		return fmt.Errorf("pgaudit: store %d checkpoints: %w", n, err)
	}
	return nil
}

// Checkpoints implements audit.Store.
func (s *Store) Checkpoints(ctx context.Context, chain string) ([]audit.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, s.q.checkpoints, chain)
	if err != nil {
		return nil, fmt.Errorf("pgaudit: checkpoints of chain %q: %w", chain, err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		cp := audit.Checkpoint{Chain: chain}
		var count int64
		var tm time.Time
		var ns int16
		var head []byte
		if err := rows.Scan(&count, &head, &tm, &ns, &cp.KeyID, &cp.Signature); err != nil {
			return nil, fmt.Errorf("pgaudit: checkpoints of chain %q: %w", chain, err)
		}
		if err := batch.SetHash(&cp.Head, head); err != nil {
			return nil, fmt.Errorf("pgaudit: checkpoint of chain %q at %d: %w", chain, count, err)
		}
		cp.Count, cp.Time = uint64(count), batch.JoinTime(tm.UnixMicro(), ns)
		if len(cp.Signature) == 0 {
			cp.Signature = nil
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgaudit: checkpoints of chain %q: %w", chain, err)
	}
	return out, nil
}

// DeleteBefore implements audit.Store, in one transaction that sets
// RetentionSetting (and, with Options.RetentionRole, acts as that role).
// The application role cannot run it: it has no DELETE privilege.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if s.role != "" {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident(s.role)); err != nil {
				return fmt.Errorf("act as retention role %q: %w", s.role, err)
			}
		}
		if _, err := tx.Exec(ctx, "SELECT set_config($1, 'on', true)", RetentionSetting); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, s.q.chains)
		if err != nil {
			return err
		}
		cs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		cut := batch.CeilMicro(t)
		for _, c := range cs {
			floor, err := scanHead(tx.QueryRow(ctx, s.q.cut, c, cut), nil)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("chain %q: %w", c, err)
			}
			tag, err := tx.Exec(ctx, s.q.deleteRecords, c, int64(floor.Seq))
			if err != nil {
				return fmt.Errorf("chain %q: %w", c, err)
			}
			n += tag.RowsAffected()
			if _, err := tx.Exec(ctx, s.q.setFloor, c, int64(floor.Seq), floor.Hash[:]); err != nil {
				return fmt.Errorf("chain %q: floor: %w", c, err)
			}
			// Checkpoints that cover only removed records can no longer
			// be compared with anything.
			if _, err := tx.Exec(ctx, s.q.deleteCovered, c, int64(floor.Seq)); err != nil {
				return fmt.Errorf("chain %q: checkpoints: %w", c, err)
			}
		}
		us, ns := batch.SplitTime(t)
		if _, err := tx.Exec(ctx, s.q.deleteOld, time.UnixMicro(us), ns); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
		return nil
	})
	if err != nil {
		if pgCode(err) == "42501" {
			return 0, fmt.Errorf("pgaudit: delete before %s: only the owner role may (the application role may only insert and read): %w", t.UTC().Format(time.RFC3339), err)
		}
		return 0, fmt.Errorf("pgaudit: delete before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
