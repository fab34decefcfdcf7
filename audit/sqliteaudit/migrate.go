package sqliteaudit

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// appendOnlyTriggers refuse UPDATE of records and checkpoints: nothing
// ever changes one (retention only deletes). They guard against mistakes;
// whoever can write the file can drop them, which verification catches.
const appendOnlyTriggers = `
CREATE TRIGGER audit_records_append_only BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused'); END;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: UPDATE refused'); END;
`

// migrations bring the audit tables to the current schema; migrations[i]
// is version i+1. Append only: never edit or reorder an applied one.
var migrations = []string{
	// 1: records, checkpoints, floors.
	`CREATE TABLE audit_records (
		chain   TEXT    NOT NULL,           -- tenant id, '' = the system chain
		seq     INTEGER NOT NULL CHECK (seq > 0),
		prev    BLOB    NOT NULL CHECK (length(prev) = 32),
		hash    BLOB    NOT NULL CHECK (length(hash) = 32),
		time    INTEGER NOT NULL,           -- event time, Unix microseconds
		outcome TEXT    NOT NULL,
		tool    TEXT    NOT NULL,
		user_id TEXT    NOT NULL,
		body    BLOB    NOT NULL,           -- the event's bytes, exactly as hashed
		PRIMARY KEY (chain, seq)
	) STRICT;
	CREATE INDEX audit_records_chain_time ON audit_records (chain, time);
	CREATE TABLE audit_checkpoints (
		id        INTEGER PRIMARY KEY,      -- order of storing
		chain     TEXT    NOT NULL,
		count     INTEGER NOT NULL CHECK (count >= 0),
		head      BLOB    NOT NULL CHECK (length(head) = 32),
		time      INTEGER NOT NULL,         -- Unix microseconds
		time_ns   INTEGER NOT NULL CHECK (time_ns BETWEEN 0 AND 999), -- and nanoseconds beyond: signed exactly
		key_id    TEXT    NOT NULL,
		signature BLOB    NOT NULL
	) STRICT;
	CREATE INDEX audit_checkpoints_chain ON audit_checkpoints (chain, id);
	CREATE INDEX audit_checkpoints_time ON audit_checkpoints (time);
	-- Where a chain stood before its first kept record, once retention
	-- removed records: the head of a chain it emptied.
	CREATE TABLE audit_floors (
		chain TEXT    PRIMARY KEY NOT NULL,
		seq   INTEGER NOT NULL,
		hash  BLOB    NOT NULL CHECK (length(hash) = 32)
	) STRICT;` + appendOnlyTriggers,
	// 2: spans instead of the (chain, time) index, which cost each Append
	// a page of the index per chain it wrote to. Existing records are
	// covered in spans of spanLen.
	`DROP INDEX audit_records_chain_time;
	CREATE TABLE audit_spans (
		chain    TEXT    NOT NULL,
		seq_from INTEGER NOT NULL,
		seq_to   INTEGER NOT NULL CHECK (seq_to >= seq_from),
		min_time INTEGER NOT NULL,          -- of the span's records, Unix microseconds
		max_time INTEGER NOT NULL,
		PRIMARY KEY (chain, seq_to)
	) STRICT;
	INSERT INTO audit_spans (chain, seq_from, seq_to, min_time, max_time)
		SELECT chain, MIN(seq), MAX(seq), MIN(time), MAX(time) FROM audit_records
		GROUP BY chain, (seq - 1) / ` + strconv.Itoa(spanLen) + `;`,
}

// migrate applies the migrations the file lacks, in one BEGIN IMMEDIATE
// transaction (the DSN's _txlock), so concurrent openers serialise. Its
// version table is audit_schema_version, so that the file may hold other
// tenantmcp tables too.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM audit_schema_version`).Scan(&v); err == nil && v == len(migrations) {
		return nil // up to date: no write lock needed
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS audit_schema_version (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create audit_schema_version: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM audit_schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("the file has audit schema version %d but this program knows only %d: upgrade tenantmcp", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_schema_version (version, applied_at) VALUES (?, ?)`,
			i+1, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
		log.Info("sqliteaudit: migrated audit tables", "version", i+1)
	}
	return tx.Commit()
}
