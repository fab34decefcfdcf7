package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
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

	// 2: the change log Watch reads. Triggers write it in the transaction
	// of every write of a tenant row, whoever writes; it keeps the last
	// changeLogSize changes.
	`CREATE TABLE tenant_changes (
		seq         INTEGER PRIMARY KEY AUTOINCREMENT,
		tenant_id   TEXT    NOT NULL,
		issuer      TEXT    NOT NULL,
		external_id TEXT    NOT NULL,
		at          INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) -- Unix milliseconds
	) STRICT;
	CREATE TRIGGER tenants_inserted AFTER INSERT ON tenants BEGIN
		INSERT INTO tenant_changes (tenant_id, issuer, external_id) VALUES (NEW.id, NEW.issuer, NEW.external_id);
	END;
	CREATE TRIGGER tenants_updated AFTER UPDATE ON tenants BEGIN
		INSERT INTO tenant_changes (tenant_id, issuer, external_id) VALUES (OLD.id, OLD.issuer, OLD.external_id);
		INSERT INTO tenant_changes (tenant_id, issuer, external_id) SELECT NEW.id, NEW.issuer, NEW.external_id
			WHERE NEW.issuer IS NOT OLD.issuer OR NEW.external_id IS NOT OLD.external_id;
	END;
	CREATE TRIGGER tenants_deleted AFTER DELETE ON tenants BEGIN
		INSERT INTO tenant_changes (tenant_id, issuer, external_id) VALUES (OLD.id, OLD.issuer, OLD.external_id);
	END;
	CREATE TRIGGER tenant_changes_pruned AFTER INSERT ON tenant_changes BEGIN
		DELETE FROM tenant_changes WHERE seq <= NEW.seq - ` + strconv.Itoa(changeLogSize) + `;
	END`,

	// 3: the lifecycle state (registry.Lifecycle as a JSON object).
	`ALTER TABLE tenants ADD COLUMN lifecycle TEXT NOT NULL DEFAULT '{}'`,

	// 4: the leases of lifecycle operations (registry.Lease), by tenant
	// key, so that one can be taken before the tenant is registered. A row
	// outlives its tenant's record until its holder releases it.
	`CREATE TABLE tenant_leases (
		issuer      TEXT    NOT NULL,
		external_id TEXT    NOT NULL,
		tenant_id   TEXT    NOT NULL DEFAULT '',
		operation   TEXT    NOT NULL,
		holder      TEXT    NOT NULL,
		via         TEXT    NOT NULL DEFAULT '',
		token       TEXT    NOT NULL,
		acquired_at INTEGER NOT NULL, -- Unix microseconds
		expires_at  INTEGER NOT NULL,
		PRIMARY KEY (issuer, external_id)
	) STRICT`,
}

// changeLogSize is how many changes tenant_changes keeps: a watcher that
// falls further behind than that reports that anything may have changed.
const changeLogSize = 1000

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
