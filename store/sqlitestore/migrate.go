package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// migrations bring a tenant file to the current schema. migrations[i] is
// version i+1. Append only: never edit or reorder an applied migration.
var migrations = []string{
	// 1: documents, the store.Backend data.
	`CREATE TABLE documents (
		key        TEXT    PRIMARY KEY NOT NULL,
		content    BLOB    NOT NULL,
		updated_at INTEGER NOT NULL -- Unix milliseconds
	)`,
}

const versionTable = `tenantmcp_schema`

// migrate applies the migrations a file lacks. The check and the
// migrations run in one BEGIN IMMEDIATE transaction, so two processes
// opening a new file at once apply each migration exactly once.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger, id tenant.ID) error {
	// Fast path: an up-to-date file needs no write lock.
	var v int
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+versionTable).Scan(&v)
	if err == nil && v >= len(migrations) {
		return nil
	}
	if err != nil && isCantOpen(err) {
		return err
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create %s: %w", versionTable, err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+versionTable).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+versionTable+` (version, applied_at) VALUES ($1, $2)`,
			i+1, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
		log.Debug("sqlitestore: migrated tenant file", "tenant_id", id, "version", i+1)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return nil
}
