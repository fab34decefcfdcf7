// Package sqliteadmin keeps the admin store (impersonation grants and
// idempotency keys, admin.Store) in a SQLite file through the pure-Go
// driver modernc.org/sqlite: in the registry's file, beside the tenants.
//
//	st, err := sqliteadmin.Open(filepath.Join(dataDir, "registry.db"), nil)
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//
// Its tables are admin_impersonations and admin_idempotency, versioned in
// admin_schema_version, so they migrate independently of the registry's
// tables (whose version table is schema_version) and never touch them.
// Migrations run on Open inside one BEGIN IMMEDIATE transaction, so
// several processes opening a file together apply each once.
//
// The file is opened as registry/sqlitestore opens it: WAL mode, a busy
// timeout, transactions that take the write lock when they begin. Every
// write is one statement or one short transaction, so the server, the CLI
// and the registry's store may use the file at once. A claim of an
// idempotency key reads and writes in one transaction, so of concurrent
// claims (from any process) exactly one wins.
//
// Times are stored as Unix microseconds (UTC), scopes as a JSON array,
// hashes as 32-byte blobs; text is compared exactly (binary collation).
package sqliteadmin
