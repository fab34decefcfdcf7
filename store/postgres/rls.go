package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// RLSOptions configures NewRLS.
type RLSOptions struct {
	// Logger receives failures to roll back. nil discards.
	Logger *slog.Logger
	// AcquireTimeout is the longest an operation waits for a free
	// connection of the pool; past it the operation fails with
	// ErrPoolTimeout without touching the database. 0 waits as long as
	// the operation's context allows.
	AcquireTimeout time.Duration
	// StatementTimeout is the statement_timeout of every tenant
	// transaction (documents and InTx; exports, imports and purges are
	// not limited). 0 leaves the server's setting.
	StatementTimeout time.Duration
}

// RLS is the row-level-security strategy: every tenant's rows live in
// shared tables whose policy compares tenant_id with the
// transaction-local setting app.tenant_id. Each operation is one
// transaction on one connection, whose settings cannot outlive it or reach
// the next borrower of the connection.
//
// A documents operation is one statement, sent with the tenant setting in
// one batch: one network write, one round trip (see oneTrip):
//
//	SELECT set_config('app.tenant_id', $1, true) | the statement | Sync
//
// The statements up to the Sync are one implicit transaction, so the
// setting ends with it. InTx opens its transaction with fn's first
// statement, BEGIN and the setting in front of it in one batch (see
// pipelinedTx), so a transaction of one statement costs two round trips.
// Every statement on the way is parameterised, with the same text for
// every tenant, so pgx's statement cache prepares it once per connection.
// Documents use the shared table public.tenantmcp_documents (created by
// Migrate with RowLevelSecurity).
type RLS struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	limits limits
	// prepare says the pool prepares statements (prepares), so oneTrip
	// sends the documents statements named, once per connection.
	prepare bool
	closed  atomic.Bool
}

var (
	_ store.Backend    = (*RLS)(nil)
	_ store.SQLBackend = (*RLS)(nil)
)

// NewRLS returns the row-level-security backend over pool, which must
// connect as the application role (check it with CheckAppRole at
// startup). The caller owns pool: Close does not close it.
func NewRLS(pool *pgxpool.Pool, o *RLSOptions) (*RLS, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	if o == nil {
		o = &RLSOptions{}
	}
	if o.AcquireTimeout < 0 || o.StatementTimeout < 0 {
		return nil, fmt.Errorf("%w: AcquireTimeout and StatementTimeout must not be negative", ErrInvalidOptions)
	}
	return &RLS{pool: pool, log: logger(o.Logger), limits: newLimits(o.AcquireTimeout, o.StatementTimeout),
		prepare: prepares(pool.Config().ConnConfig)}, nil
}

// InTx runs fn in one transaction, on one connection, in which
// app.tenant_id is id: row level security shows and accepts only id's
// rows. If fn returns an error, or a statement fails, the transaction is
// rolled back and the setting goes with it.
func (r *RLS) InTx(ctx context.Context, id tenant.ID, fn func(store.Tx) error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	enter, err := r.enter(id)
	if err != nil {
		return err
	}
	begin, _ := rlsBegin(id)
	if ms := r.limits.statementMS(); ms != "" {
		begin += "; SET LOCAL statement_timeout = " + ms
	}
	conn, err := r.limits.conn(ctx, r.pool)
	if err != nil {
		return err
	}
	defer conn.Release() // destroys the connection unless it is idle and healthy
	return runPipelined(ctx, conn.Conn(), r.log, begin, enter.sql, enter.args(), fn)
}

// Statements that enter tenant id (the first with a statement timeout).
const (
	rlsEnter        = `SELECT set_config('app.tenant_id', $1, true)`
	rlsEnterTimeout = `SELECT set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true)`
)

// enter returns the statement that sets tenant id (and the statement
// timeout) for the rest of the transaction, with its arguments.
func (r *RLS) enter(id tenant.ID) (wireQuery, error) {
	if !id.Valid() {
		return wireQuery{}, fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	if r.limits.ms != "" {
		return wireQuery{sql: rlsEnterTimeout, params: [][]byte{text(string(id)), text(r.limits.ms)}}, nil
	}
	return wireQuery{sql: rlsEnter, params: [][]byte{text(string(id))}}, nil
}

// one runs stmt alone for tenant id in one round trip (oneTrip). Every
// documents statement names the tenant as its first parameter as well.
func (r *RLS) one(ctx context.Context, id tenant.ID, stmt wireQuery, read func(*pgconn.ResultReader) error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	enter, err := r.enter(id)
	if err != nil {
		return err
	}
	conn, err := r.limits.conn(ctx, r.pool)
	if err != nil {
		return err
	}
	defer conn.Release()
	err = oneTrip(ctx, conn.Conn(), r.prepare, enter, stmt, read)
	if retryable(err) {
		forgetStatements(ctx, conn.Conn(), enter.sql, stmt.sql)
		err = oneTrip(ctx, conn.Conn(), r.prepare, enter, stmt, read)
	}
	return err
}

// rlsBegin returns the BEGIN query of a tenant transaction that runs
// through runTx (exports, imports and purges):
//
//	BEGIN; SET LOCAL app.tenant_id = '<id>'
//
// sent as one simple-protocol query, so entering the tenant costs no round
// trip of its own; the statements after it may add their own settings.
// The id is inlined as a literal, which is safe only because it is
// checked here to be a tenant.ID: "t" and 20 characters of [a-z2-7],
// nothing that could end the literal. A literal per tenant must stay a
// simple query: prepared, every tenant would take a slot of the statement
// cache.
func rlsBegin(id tenant.ID) (string, error) {
	if !id.Valid() {
		return "", fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	return "BEGIN; SET LOCAL app.tenant_id = '" + string(id) + "'", nil
}

const (
	rlsGet    = `SELECT content FROM public.tenantmcp_documents WHERE tenant_id = $1 AND key = $2`
	rlsPut    = `INSERT INTO public.tenantmcp_documents (tenant_id, key, content) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, key) DO UPDATE SET content = EXCLUDED.content, updated_at = now()`
	rlsDelete = `DELETE FROM public.tenantmcp_documents WHERE tenant_id = $1 AND key = $2`
	rlsList   = `SELECT key FROM public.tenantmcp_documents WHERE tenant_id = $1 AND starts_with(key, $2) ORDER BY key`
)

// The document queries name the tenant explicitly as well: the policy is
// the guarantee, the WHERE clause is defence in depth and documents intent.

// Get implements store.Backend.
func (r *RLS) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	var v []byte
	err := r.one(ctx, id, wireQuery{sql: rlsGet, params: [][]byte{text(string(id)), text(key)}, results: binaryResult}, getDoc(&v))
	return docResult(v, err, "get")
}

// Put implements store.Backend.
func (r *RLS) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	put := wireQuery{sql: rlsPut, params: [][]byte{text(string(id)), text(key), value}, formats: rlsPutParams}
	if err := r.one(ctx, id, put, putDoc); err != nil {
		return fmt.Errorf("postgres: put document: %w", err)
	}
	return nil
}

// Delete implements store.Backend.
func (r *RLS) Delete(ctx context.Context, id tenant.ID, key string) error {
	return deleteResult(r.one(ctx, id, wireQuery{sql: rlsDelete, params: [][]byte{text(string(id)), text(key)}}, deleteDoc))
}

// List implements store.Backend.
func (r *RLS) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	var keys []string
	if err := r.one(ctx, id, wireQuery{sql: rlsList, params: [][]byte{text(string(id)), text(prefix)}}, listDocs(&keys)); err != nil {
		return nil, fmt.Errorf("postgres: list documents: %w", err)
	}
	return keys, nil
}

// Close marks the backend closed. It does not close the pool.
func (r *RLS) Close() error {
	r.closed.Store(true)
	return nil
}

func docResult(v []byte, err error, what string) ([]byte, error) {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("postgres: %s document: %w", what, err)
	case v == nil:
		v = []byte{}
	}
	return v, nil
}

func deleteResult(err error) error {
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, ErrNotProvisioned) {
		return fmt.Errorf("postgres: delete document: %w", err)
	}
	return err
}
