package sqliteaudit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/tenantmcp/tenantmcp/audit"
)

// Tamperer changes an audit file behind its Store's back, as someone who
// can write the file but does not hold the signing key would. It is for
// tests that show verification catches each change (it implements
// audittest.Tamperer); checkpoints, which such a person cannot forge, are
// left as they are.
type Tamperer struct {
	db *sql.DB
}

// NewTamperer opens the audit file at path (as Open made it) for
// tampering. Close it when done.
func NewTamperer(path string) (*Tamperer, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqliteaudit: resolve %s: %w", path, err)
	}
	db, err := openDB(abs, defaultBusy, 1, false)
	if err != nil {
		return nil, err
	}
	return &Tamperer{db: db}, nil
}

// Close closes the file.
func (t *Tamperer) Close() error { return t.db.Close() }

// do runs fn in a transaction with the append-only triggers dropped.
func (t *Tamperer) do(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DROP TRIGGER audit_records_append_only; DROP TRIGGER audit_checkpoints_append_only`); err != nil {
		return fmt.Errorf("sqliteaudit: tamper: %w", err)
	}
	if err := fn(tx); err != nil {
		return fmt.Errorf("sqliteaudit: tamper: %w", err)
	}
	if _, err := tx.ExecContext(ctx, appendOnlyTriggers); err != nil {
		return fmt.Errorf("sqliteaudit: tamper: %w", err)
	}
	return tx.Commit()
}

// one executes a statement that must change exactly one row.
func one(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%d rows changed, want 1 (no such record?)", n)
	}
	return nil
}

// EditBody replaces the body of record seq of chain; its hash and prev
// stay.
func (t *Tamperer) EditBody(ctx context.Context, chain string, seq uint64, body []byte) error {
	return t.do(ctx, func(tx *sql.Tx) error {
		return one(ctx, tx, `UPDATE audit_records SET body = ? WHERE chain = ? AND seq = ?`, body, chain, int64(seq))
	})
}

// Delete removes record seq of chain.
func (t *Tamperer) Delete(ctx context.Context, chain string, seq uint64) error {
	return t.do(ctx, func(tx *sql.Tx) error {
		return one(ctx, tx, `DELETE FROM audit_records WHERE chain = ? AND seq = ?`, chain, int64(seq))
	})
}

// SwapBodies exchanges the bodies of records a and b of chain.
func (t *Tamperer) SwapBodies(ctx context.Context, chain string, a, b uint64) error {
	return t.do(ctx, func(tx *sql.Tx) error {
		var ba, bb []byte
		q := `SELECT body FROM audit_records WHERE chain = ? AND seq = ?`
		if err := errors.Join(tx.QueryRowContext(ctx, q, chain, int64(a)).Scan(&ba), tx.QueryRowContext(ctx, q, chain, int64(b)).Scan(&bb)); err != nil {
			return err
		}
		u := `UPDATE audit_records SET body = ? WHERE chain = ? AND seq = ?`
		return errors.Join(one(ctx, tx, u, bb, chain, int64(a)), one(ctx, tx, u, ba, chain, int64(b)))
	})
}

// TruncateTail removes the last k records of chain.
func (t *Tamperer) TruncateTail(ctx context.Context, chain string, k int) error {
	return t.do(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_records WHERE chain = ?1 AND seq IN
			(SELECT seq FROM audit_records WHERE chain = ?1 ORDER BY seq DESC LIMIT ?2)`, chain, k)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != int64(k) {
			return fmt.Errorf("removed %d records, want %d", n, k)
		}
		return nil
	})
}

// Rechain replaces the body of record seq of chain and recomputes the
// hashes from there on, so that every link holds again.
func (t *Tamperer) Rechain(ctx context.Context, chain string, seq uint64, body []byte) error {
	return t.do(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, prev, body FROM audit_records WHERE chain = ? AND seq >= ? ORDER BY seq`, chain, int64(seq))
		if err != nil {
			return err
		}
		type rec struct {
			seq  int64
			body []byte
		}
		var recs []rec
		var prev audit.Hash
		for rows.Next() {
			var r rec
			var p []byte
			if err := rows.Scan(&r.seq, &p, &r.body); err != nil {
				rows.Close()
				return err
			}
			if len(recs) == 0 {
				copy(prev[:], p)
				r.body = body
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(recs) == 0 {
			return fmt.Errorf("chain %q has no record %d", chain, seq)
		}
		for _, r := range recs {
			h := audit.Link(prev, r.body)
			if err := one(ctx, tx, `UPDATE audit_records SET prev = ?, hash = ?, body = ? WHERE chain = ? AND seq = ?`,
				prev[:], h[:], r.body, chain, r.seq); err != nil {
				return err
			}
			prev = h
		}
		return nil
	})
}
