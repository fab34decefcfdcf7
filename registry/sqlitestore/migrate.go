package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// migrations bring the registry file to the current schema; migrations[i]
// is version i+1. Append only: never edit or reorder an applied one.
var migrations = []string{
	// 1: the tenants table.
	`CREATE TABLE tenants (
		id            TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 21),
		issuer        TEXT    NOT NULL,
		external_id   TEXT    NOT NULL,
		name          TEXT    NOT NULL DEFAULT '',
		status        TEXT    NOT NULL,
		trial_ends_at INTEGER,                       -- Unix microseconds, NULL if none
		rate_limit    INTEGER NOT NULL DEFAULT 0,
		rate_burst    INTEGER NOT NULL DEFAULT 0,
		allowed_tools TEXT    NOT NULL DEFAULT '[]', -- JSON array
		flags         TEXT    NOT NULL DEFAULT '{}', -- JSON object
		config        TEXT    NOT NULL DEFAULT '{}', -- JSON object
		created_at    INTEGER NOT NULL,              -- Unix microseconds
		updated_at    INTEGER NOT NULL,
		UNIQUE (issuer, external_id)
	) STRICT`,
}

// migrate applies the migrations the file lacks, in one BEGIN IMMEDIATE
// transaction (the DSN's _txlock), so concurrent openers serialise.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err == nil && v == len(migrations) {
		return nil // up to date: no write lock needed
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("the file has schema version %d but this program knows only %d: upgrade tenantmcp", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`,
			i+1, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
		log.Info("sqlitestore: migrated tenant registry", "version", i+1)
	}
	return tx.Commit()
}
