package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/store"
)

// limits bound the tenant transactions of a backend (RLSOptions and
// SchemaOptions set them).
type limits struct {
	// acquire is the longest wait for a free connection of the pool; 0
	// waits as long as the caller's context allows.
	acquire time.Duration
	// statement is the statement_timeout of every tenant transaction; 0
	// leaves the server's.
	statement time.Duration
	// ms is statement as a statement_timeout value ("" for 0):
	// newLimits formats it once, not on every request.
	ms string
}

// newLimits returns the limits of a backend.
func newLimits(acquire, statement time.Duration) limits {
	l := limits{acquire: acquire, statement: statement}
	if statement > 0 {
		l.ms = strconv.FormatInt(max(1, statement.Milliseconds()), 10)
	}
	return l
}

// errAcquireTimeout is the cause of the context that bounds an acquire.
var errAcquireTimeout = errors.New("acquire timeout")

// conn takes a connection of pool, waiting at most l.acquire: a request
// that finds every connection busy for that long fails with
// ErrPoolTimeout instead of queueing for as long as its context lasts.
func (l limits) conn(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Conn, error) {
	actx := ctx
	if l.acquire > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeoutCause(ctx, l.acquire, errAcquireTimeout)
		defer cancel()
	}
	c, err := pool.Acquire(actx)
	if err == nil {
		return c, nil
	}
	if ctx.Err() == nil && errors.Is(context.Cause(actx), errAcquireTimeout) {
		st := pool.Stat()
		return nil, fmt.Errorf("%w (waited %s; %d of %d connections in use)", ErrPoolTimeout, l.acquire, st.AcquiredConns(), st.MaxConns())
	}
	return nil, fmt.Errorf("postgres: acquire connection: %w", err)
}

// statementMS is l.statement as a statement_timeout value in
// milliseconds, or "" to leave the server's.
func (l limits) statementMS() string { return l.ms }

// runTx runs begin (a BEGIN followed by the statements that enter the
// tenant, as one simple query) on one connection of pool, then fn, and
// commits. See txOn.
func runTx(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, begin string, fn func(pgx.Tx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: acquire connection: %w", err)
	}
	defer conn.Release() // runs last; destroys the connection unless it is idle and healthy
	return txOn(ctx, conn.Conn(), log, begin, fn)
}

// txOn runs begin on c, then fn, and commits. On any error or panic it
// rolls back; if the rollback itself fails the connection is closed, so
// no transaction-local state can survive. If begin fails part way, the
// aborted transaction is rolled back and the connection stays clean.
func txOn(ctx context.Context, c *pgx.Conn, log *slog.Logger, begin string, fn func(pgx.Tx) error) error {
	tx, err := c.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin})
	if err != nil {
		if c.PgConn().TxStatus() != 'I' {
			c.Exec(ctx, "ROLLBACK")
		}
		return &beginError{err}
	}
	committed := false
	defer func() { // also on panic
		if committed {
			return
		}
		if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			log.WarnContext(ctx, "rollback failed; connection discarded", "err", err)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	committed = true
	return nil
}

// beginError is a failure to open or enter the tenant transaction, as
// opposed to a failure inside it.
type beginError struct{ err error }

func (e *beginError) Error() string { return "postgres: begin tenant transaction: " + e.err.Error() }
func (e *beginError) Unwrap() error { return e.err }

// cancelRequestTimeout bounds sending a cancel request (a connection of
// its own to the server).
const cancelRequestTimeout = 2 * time.Second

// retryable reports whether err says a prepared statement is gone from
// the connection (SQLSTATE 26000, after a DEALLOCATE ALL, say). The
// statement failed before it ran, so it may be sent again once pgx has
// forgotten it (it does on any batch error).
func retryable(err error) bool { return pgCode(err) == "26000" }

// runPipelined runs fn in a tenant transaction on c that is opened with
// fn's first statement: BEGIN, the enter statement and that statement
// travel as one batch (see pipelinedTx), so a transaction of one
// statement costs two round trips, that batch and COMMIT. On any error or
// panic the transaction is rolled back; if the rollback fails the
// connection is closed.
func runPipelined(ctx context.Context, c *pgx.Conn, log *slog.Logger, begin, enter string, enterArgs []any, fn func(store.Tx) error) error {
	t := &pipelinedTx{conn: c, begin: begin, enter: enter, enterArgs: enterArgs}
	committed := false
	defer func() { // also on panic
		if !committed {
			t.rollback(ctx, log)
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.commit(ctx); err != nil {
		return err
	}
	committed = true
	return nil
}

// pipelinedTx is a store.Tx whose transaction starts with its first
// statement: BEGIN, the enter statement and the first statement are one
// batch, one network write. Later statements run on the connection, in
// the transaction. A transaction that runs no statement sends nothing.
//
// A first Exec without arguments is sent as pgx sends any Exec without
// arguments, as a simple query (which may hold several statements),
// behind begin: "BEGIN; SET LOCAL …; <query>", one round trip too.
type pipelinedTx struct {
	conn      *pgx.Conn
	begin     string // BEGIN and the settings as one simple query
	enter     string
	enterArgs []any
	begun     bool             // the first batch was sent
	pending   pgx.BatchResults // the first batch, until its results are read
}

var _ store.Tx = (*pipelinedTx)(nil)

// first sends BEGIN, the enter statement and query as one batch and reads
// the results of the first two; the caller reads query's. A query with a
// pgx.QueryExecMode argument cannot be batched: it runs after a batch of
// the other two.
func (t *pipelinedTx) first(ctx context.Context, query string, args []any) (pgx.BatchResults, error) {
	t.begun = true
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(t.enter, t.enterArgs...)
	own := len(args) > 0
	if own {
		_, own = args[0].(pgx.QueryExecMode)
	}
	if !own {
		b.Queue(query, args...)
	}
	br := t.conn.SendBatch(ctx, b)
	for range 2 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, &beginError{err}
		}
	}
	if own {
		return nil, br.Close()
	}
	t.pending = br
	return br, nil
}

// settle finishes reading the first batch, if its results are still
// pending (rows not closed, a row not scanned).
func (t *pipelinedTx) settle() error {
	br := t.pending
	if br == nil {
		return nil
	}
	t.pending = nil
	return br.Close()
}

func (t *pipelinedTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if !t.begun && len(args) == 0 {
		t.begun = true
		query = t.begin + "; " + query
	}
	if !t.begun {
		br, err := t.first(ctx, query, args)
		if err != nil {
			return 0, err
		}
		if br != nil {
			tag, err := br.Exec()
			if cerr := t.settle(); err == nil {
				err = cerr
			}
			if err != nil {
				return 0, err
			}
			return tag.RowsAffected(), nil
		}
	}
	if err := t.settle(); err != nil {
		return 0, err
	}
	tag, err := t.conn.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *pipelinedTx) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	if !t.begun {
		br, err := t.first(ctx, query, args)
		if err != nil {
			return nil, err
		}
		if br != nil {
			rows, err := br.Query()
			if err != nil {
				t.settle()
				return nil, err
			}
			return &batchRows{rows: rows, tx: t}, nil
		}
	}
	if err := t.settle(); err != nil {
		return nil, err
	}
	rows, err := t.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (t *pipelinedTx) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	if !t.begun {
		br, err := t.first(ctx, query, args)
		if err != nil {
			return errRow{err}
		}
		if br != nil {
			return batchRow{row: br.QueryRow(), tx: t}
		}
	}
	if err := t.settle(); err != nil {
		return errRow{err}
	}
	return pgRow{t.conn.QueryRow(ctx, query, args...)}
}

// commit commits the transaction, if fn opened one. A transaction that a
// failed statement aborted answers COMMIT with ROLLBACK: that is an
// error, as with pgx.Tx.
func (t *pipelinedTx) commit(ctx context.Context) error {
	if err := t.settle(); err != nil {
		return err
	}
	if t.conn.PgConn().TxStatus() == 'I' {
		return nil // no statement ran, or none reached the server
	}
	tag, err := t.conn.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	if tag.String() == "ROLLBACK" {
		return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// rollback rolls the transaction back, if one is open; if that fails it
// closes the connection, which the pool then discards.
func (t *pipelinedTx) rollback(ctx context.Context, log *slog.Logger) {
	t.settle()
	if t.conn.IsClosed() || t.conn.PgConn().TxStatus() == 'I' {
		return
	}
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		log.WarnContext(ctx, "rollback failed; connection discarded", "err", err)
		t.conn.Close(context.WithoutCancel(ctx))
	}
}

// batchRows are the rows of a pipelinedTx's first statement; the batch is
// finished when they end or are closed.
type batchRows struct {
	rows pgx.Rows
	tx   *pipelinedTx
	err  error // of finishing the batch
	done bool
}

func (r *batchRows) Next() bool {
	if r.rows.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *batchRows) Scan(dest ...any) error { return r.rows.Scan(dest...) }

func (r *batchRows) Err() error {
	if err := r.rows.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *batchRows) Close() error {
	r.finish()
	return r.Err()
}

func (r *batchRows) finish() {
	if r.done {
		return
	}
	r.done = true
	r.rows.Close()
	r.err = r.tx.settle()
}

// batchRow is the row of a pipelinedTx's first statement.
type batchRow struct {
	row pgx.Row
	tx  *pipelinedTx
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.tx.settle(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// pgTx adapts a pgx.Tx to store.Tx.
type pgTx struct{ tx pgx.Tx }

var (
	_ store.Tx   = pgTx{}
	_ store.Rows = pgRows{}
	_ store.Row  = pgRow{}
)

func (t pgTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t pgTx) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	rows, err := t.tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (t pgTx) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	return pgRow{t.tx.QueryRow(ctx, query, args...)}
}

type pgRows struct{ r pgx.Rows }

func (r pgRows) Next() bool             { return r.r.Next() }
func (r pgRows) Scan(dest ...any) error { return r.r.Scan(dest...) }
func (r pgRows) Err() error             { return r.r.Err() }
func (r pgRows) Close() error {
	r.r.Close()
	return r.r.Err()
}

type pgRow struct{ r pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
