package postgres

import (
	"bytes"
	"context"
	"errors"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantmcp/tenantmcp/store"
)

// wireQuery is one statement of a oneTrip batch as the wire carries it:
// its text and its parameters, already encoded.
type wireQuery struct {
	sql    string
	params [][]byte
	// formats are params' format codes (nil: all text; see pgconn's
	// ExecParams), results the result columns' (nil: all text).
	formats, results []int16
}

// Format codes of the documents statements: a bytea travels as its raw
// bytes in binary format; everything else is text.
var (
	binaryResult = []int16{1}       // get_document's one bytea column
	rlsPutParams = []int16{0, 0, 1} // tenant_id, key, content
	schemaPutFmt = []int16{0, 1}    // key, content
)

// text is s as a text-format parameter, without a copy: the wire encoder
// only reads it. An empty s is an empty value, never nil, which the wire
// would carry as NULL.
func text(s string) []byte {
	if s == "" {
		return noBytes
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

var noBytes = []byte{}

// args is q's parameters as pgx query arguments (strings, for the
// enter statements, which are all text).
func (q wireQuery) args() []any {
	a := make([]any, len(q.params))
	for i, p := range q.params {
		a[i] = string(p)
	}
	return a
}

// prepares reports whether c prepares named statements, once per
// connection: pgx's default mode (cache_statement). The other modes are
// for poolers that cannot keep prepared statements (PgBouncer in
// transaction mode), where statements go unnamed, parsed each time.
func prepares(c *pgx.ConnConfig) bool {
	return c.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement
}

// oneTrip runs the single statement stmt in a tenant transaction that
// costs one round trip: the enter statement (set_config(…, true) of the
// tenant's settings) and stmt go to the server as one batch, in one
// network write ended by one Sync. Without a BEGIN, the statements up to
// a Sync are one implicit transaction, so the settings end with it:
// committed with stmt's work, or rolled back with it if either statement
// fails (the server then skips the rest up to the Sync, and the
// connection is idle again). read reads stmt's result and closes it. A
// failure to enter is a *beginError.
//
// The batch is written at the protocol level (pgconn), not through pgx's
// batch, whose pipeline bookkeeping and argument encoding cost more than
// the two statements: both are parameterised, with the same text for
// every tenant, and their parameters are strings and bytes. If named (the
// pool prepares statements: prepares), each is prepared once per
// connection under its text, as pgx's Prepare does, and bound by its
// description (the schema strategy prepares its unqualified statements
// itself, inside a tenant transaction, before they are used here);
// otherwise each is sent unnamed and parsed in order, after the settings
// before it have taken effect.
//
// The Sync that commits travels with the statement, so a statement whose
// context ends while it runs must be stopped on the server: pgconn then
// stops waiting and closes the connection, but the server would finish
// the statement and commit it. oneTrip then sends PostgreSQL a cancel
// request for the connection's backend before it returns, so a cancelled
// Put or Delete changes nothing, as a failed one does. The connection is
// closed by then, so the request can reach no later statement of another
// user of it.
func oneTrip(ctx context.Context, c *pgx.Conn, named bool, enter, stmt wireQuery, read func(*pgconn.ResultReader) error) error {
	var b pgconn.Batch
	if named {
		sd, err := c.Prepare(ctx, enter.sql, enter.sql)
		if err != nil {
			return &beginError{err}
		}
		b.ExecStatement(sd, enter.params, enter.formats, enter.results)
		if sd, err = c.Prepare(ctx, stmt.sql, stmt.sql); err != nil {
			return err
		}
		b.ExecStatement(sd, stmt.params, stmt.formats, stmt.results)
	} else {
		b.ExecParams(enter.sql, enter.params, nil, enter.formats, enter.results)
		b.ExecParams(stmt.sql, stmt.params, nil, stmt.formats, stmt.results)
	}
	err := runBatch(c.PgConn().ExecBatch(ctx, &b), read)
	if err != nil && ctx.Err() != nil {
		cancelStatement(ctx, c.PgConn())
	}
	return err
}

// runBatch reads the results of oneTrip's batch: the enter statement's,
// then stmt's through read.
func runBatch(mrr *pgconn.MultiResultReader, read func(*pgconn.ResultReader) error) error {
	if !mrr.NextResult() {
		return &beginError{closeBatch(mrr)}
	}
	if _, err := mrr.ResultReader().Close(); err != nil {
		mrr.Close()
		return &beginError{err}
	}
	if !mrr.NextResult() {
		return closeBatch(mrr)
	}
	err := read(mrr.ResultReader())
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	return err
}

// cancelStatement asks the server to cancel what pc's backend runs, best
// effort, waiting at most cancelRequestTimeout (the request is a
// connection of its own to the server).
func cancelStatement(ctx context.Context, pc *pgconn.PgConn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelRequestTimeout)
	defer cancel()
	pc.CancelRequest(cctx)
}

// closeBatch reads the rest of a batch that ended before all of its
// results: its error, which is never nil.
func closeBatch(mrr *pgconn.MultiResultReader) error {
	if err := mrr.Close(); err != nil {
		return err
	}
	return errMissingResult
}

var errMissingResult = errors.New("postgres: the server answered a batch with fewer results than statements")

// forgetStatements drops the named statements of a oneTrip from c (the
// server's copy and pgx's record of it), after the server said one is
// gone (retryable): the next oneTrip prepares them again. A statement the
// server no longer has is no error.
func forgetStatements(ctx context.Context, c *pgx.Conn, sqls ...string) {
	for _, q := range sqls {
		c.Deallocate(ctx, q)
	}
}

// Readers of the documents statements' results, for oneTrip; both
// strategies use them.

func getDoc(v *[]byte) func(*pgconn.ResultReader) error {
	return func(rr *pgconn.ResultReader) error {
		found := false
		for rr.NextRow() {
			*v, found = bytes.Clone(rr.Values()[0]), true
		}
		if _, err := rr.Close(); err != nil {
			return err
		}
		if !found {
			return pgx.ErrNoRows
		}
		return nil
	}
}

func putDoc(rr *pgconn.ResultReader) error {
	_, err := rr.Close()
	return err
}

func deleteDoc(rr *pgconn.ResultReader) error {
	tag, err := rr.Close()
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func listDocs(keys *[]string) func(*pgconn.ResultReader) error {
	return func(rr *pgconn.ResultReader) error {
		k := []string{}
		for rr.NextRow() {
			k = append(k, string(rr.Values()[0]))
		}
		if _, err := rr.Close(); err != nil {
			return err
		}
		*keys = k
		return nil
	}
}
