package sqliteadmin

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// VersionTable records the versions of this package's migrations applied
// to the file. The registry keeps its own (schema_version), so the two
// migrate independently.
const VersionTable = "admin_schema_version"

// migrations bring the admin tables to the current schema; migrations[i]
// is version i+1. Append only: never edit or reorder an applied one.
var migrations = []string{
	// 1: impersonation grants and idempotency keys.
	`CREATE TABLE admin_impersonations (
		id                TEXT    PRIMARY KEY NOT NULL,
		token_hash        BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32), -- SHA-256 of the credential
		tenant            TEXT    NOT NULL,
		admin             TEXT    NOT NULL,
		admin_issuer      TEXT    NOT NULL DEFAULT '',
		user_id           TEXT    NOT NULL,
		reason            TEXT    NOT NULL,
		ticket            TEXT    NOT NULL DEFAULT '',
		scopes            TEXT    NOT NULL DEFAULT '[]',  -- JSON array
		read_only         INTEGER NOT NULL CHECK (read_only IN (0, 1)),
		include_suspended INTEGER NOT NULL CHECK (include_suspended IN (0, 1)),
		created_at        INTEGER NOT NULL,               -- Unix microseconds
		expires_at        INTEGER NOT NULL,
		ended_at          INTEGER,                        -- NULL while not ended
		ended_by          TEXT    NOT NULL DEFAULT ''
	) STRICT;
	CREATE INDEX admin_impersonations_newest ON admin_impersonations (created_at DESC, id DESC);
	CREATE INDEX admin_impersonations_tenant ON admin_impersonations (tenant, created_at DESC, id DESC);
	CREATE INDEX admin_impersonations_admin ON admin_impersonations (admin, created_at DESC, id DESC);
	CREATE TABLE admin_idempotency (
		key        TEXT    PRIMARY KEY NOT NULL,
		request    BLOB    NOT NULL CHECK (length(request) = 32), -- SHA-256 of the request
		tenant     TEXT    NOT NULL DEFAULT '',                   -- '' while the create runs
		created_at INTEGER NOT NULL                               -- Unix microseconds
	) STRICT;
	CREATE INDEX admin_idempotency_created ON admin_idempotency (created_at)`,
}

// migrate applies the migrations the file lacks, inside one BEGIN
// IMMEDIATE transaction (the DSN's _txlock), so that openers in several
// processes serialise and apply each migration once. It touches no table
// but its own.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	current := len(migrations)
	var v int
	if db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+VersionTable).Scan(&v) == nil && v == current {
		return nil // current: no write lock taken
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+VersionTable+` (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL -- Unix milliseconds
	) STRICT`); err != nil {
		return fmt.Errorf("create %s: %w", VersionTable, err)
	}
	// Read again under the lock: another process may have migrated since.
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+VersionTable).Scan(&v); err != nil {
		return fmt.Errorf("read %s: %w", VersionTable, err)
	}
	if v > current {
		return fmt.Errorf("the file's admin tables are at version %d but this program knows only %d: upgrade tenantmcp", v, current)
	}
	for i, m := range migrations[v:] {
		version := v + i + 1
		if _, err := tx.ExecContext(ctx, m); err != nil {
			return fmt.Errorf("admin migration %d: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+VersionTable+` (version, applied_at) VALUES (?, ?)`, version, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("record admin migration %d: %w", version, err)
		}
		log.InfoContext(ctx, "sqliteadmin: migrated admin tables", "version", version)
	}
	return tx.Commit()
}
