package pgaudit

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/audit"
)

// Tamperer changes stored audit records behind the Store's back, as a
// database superuser would (it bypasses the append-only trigger with
// session_replication_role = replica). It is for tests that show
// verification catches each change (it implements audittest.Tamperer);
// checkpoints, which such a person cannot forge without the signing key,
// are left as they are.
type Tamperer struct {
	pool    *pgxpool.Pool
	records string
}

// NewTamperer tampers with the audit tables in schema ("" = public) through
// pool, which must connect as a superuser.
func NewTamperer(pool *pgxpool.Pool, schema string) *Tamperer {
	if schema == "" {
		schema = "public"
	}
	return &Tamperer{pool: pool, records: ident(schema) + "." + RecordsTable}
}

// do runs fn in a transaction with triggers off.
func (t *Tamperer) do(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, t.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		return fmt.Errorf("pgaudit: tamper: %w", err)
	}
	return nil
}

// one executes a statement that must change exactly one row.
func one(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%d rows changed, want 1 (no such record?)", tag.RowsAffected())
	}
	return nil
}

// EditBody replaces the body of record seq of chain; its hash and prev
// stay.
func (t *Tamperer) EditBody(ctx context.Context, chain string, seq uint64, body []byte) error {
	return t.do(ctx, func(tx pgx.Tx) error {
		return one(ctx, tx, "UPDATE "+t.records+" SET body = $3 WHERE chain = $1 AND seq = $2", chain, int64(seq), body)
	})
}

// Delete removes record seq of chain.
func (t *Tamperer) Delete(ctx context.Context, chain string, seq uint64) error {
	return t.do(ctx, func(tx pgx.Tx) error {
		return one(ctx, tx, "DELETE FROM "+t.records+" WHERE chain = $1 AND seq = $2", chain, int64(seq))
	})
}

// SwapBodies exchanges the bodies of records a and b of chain.
func (t *Tamperer) SwapBodies(ctx context.Context, chain string, a, b uint64) error {
	return t.do(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE "+t.records+` r SET body = o.body FROM `+t.records+` o
			WHERE r.chain = $1 AND o.chain = $1 AND (r.seq, o.seq) IN (($2, $3), ($3, $2))`, chain, int64(a), int64(b))
		if err == nil && tag.RowsAffected() != 2 {
			err = fmt.Errorf("%d rows changed, want 2 (no such records?)", tag.RowsAffected())
		}
		return err
	})
}

// TruncateTail removes the last k records of chain.
func (t *Tamperer) TruncateTail(ctx context.Context, chain string, k int) error {
	return t.do(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM "+t.records+" WHERE chain = $1 AND seq IN (SELECT seq FROM "+t.records+
			" WHERE chain = $1 ORDER BY seq DESC LIMIT $2)", chain, k)
		if err == nil && tag.RowsAffected() != int64(k) {
			err = fmt.Errorf("removed %d records, want %d", tag.RowsAffected(), k)
		}
		return err
	})
}

// Rechain replaces the body of record seq of chain and recomputes the
// hashes from there on, so that every link holds again.
func (t *Tamperer) Rechain(ctx context.Context, chain string, seq uint64, body []byte) error {
	return t.do(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT seq, prev, body FROM "+t.records+" WHERE chain = $1 AND seq >= $2 ORDER BY seq", chain, int64(seq))
		if err != nil {
			return err
		}
		type rec struct {
			seq        int64
			prev, body []byte
		}
		recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
			var x rec
			return x, r.Scan(&x.seq, &x.prev, &x.body)
		})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return fmt.Errorf("chain %q has no record %d", chain, seq)
		}
		var prev audit.Hash
		copy(prev[:], recs[0].prev)
		recs[0].body = body
		for _, r := range recs {
			h := audit.Link(prev, r.body)
			if err := one(ctx, tx, "UPDATE "+t.records+" SET prev = $3, hash = $4, body = $5 WHERE chain = $1 AND seq = $2",
				chain, r.seq, prev[:], h[:], r.body); err != nil {
				return err
			}
			prev = h
		}
		return nil
	})
}
