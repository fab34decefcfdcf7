package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// InTx runs fn in one transaction on tenant id's file, creating and
// migrating the file if needed. The transaction starts with BEGIN
// IMMEDIATE: it takes the file's write lock up front (waiting up to
// Options.BusyTimeout), so a read-then-write transaction cannot fail
// half-way with SQLITE_BUSY. If fn returns an error or panics, the
// transaction is rolled back.
func (s *Store) InTx(ctx context.Context, id tenant.ID, fn func(store.Tx) error) error {
	if !id.Valid() {
		return fmt.Errorf("sqlitestore: %w", tenant.ErrInvalidID)
	}
	return s.use(ctx, id, true, func(db *sql.DB) (err error) {
		sqlTx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlitestore: begin transaction: %w", err)
		}
		done := false
		defer func() {
			if !done {
				sqlTx.Rollback() // fn panicked
			}
		}()
		if err := fn(txn{sqlTx}); err != nil {
			done = true
			if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				return errors.Join(err, fmt.Errorf("sqlitestore: rollback: %w", rbErr))
			}
			return err
		}
		done = true
		if err := sqlTx.Commit(); err != nil {
			return fmt.Errorf("sqlitestore: commit: %w", err)
		}
		return nil
	})
}

// txn adapts *sql.Tx to store.Tx.
type txn struct{ tx *sql.Tx }

func (t txn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	r, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (t txn) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (t txn) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	return row{t.tx.QueryRowContext(ctx, query, args...)}
}

type row struct{ r *sql.Row }

// Scan returns store.ErrNotFound when the query returned no row.
func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: query returned no row", store.ErrNotFound)
	}
	return err
}
