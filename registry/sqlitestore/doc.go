// Package sqlitestore keeps the tenant registry in one SQLite file,
// through the pure-Go driver modernc.org/sqlite (driver name "sqlite"): the
// embedded default, so a server needs nothing but Go.
//
//	st, err := sqlitestore.Open(filepath.Join(dataDir, "registry.db"), nil)
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	reg := registry.New(st, nil)
//
// The file is opened in WAL mode with a busy timeout, and every write is a
// single statement, so several goroutines and several processes (a CLI
// `tenant add` beside a running `dev` server) may use it at once. Its
// schema is versioned (table schema_version) and migrated on Open, inside
// one BEGIN IMMEDIATE transaction, so two processes opening a new file
// together apply each migration once.
//
// Lists and maps are stored as JSON text, times as Unix microseconds (UTC).
// (issuer, external_id) is UNIQUE and compared exactly (binary collation).
// The leases of lifecycle operations (registry.Lease) live in table
// tenant_leases; each acquisition is one upsert statement, which SQLite
// runs alone, so of two processes at most one takes a lease.
//
// Triggers record every write of a tenant in table tenant_changes, and
// Store.Watch polls the file for writes of other connections (every
// 250ms by default), so a server whose Registry runs Watch sees a tenant
// that the CLI adds or suspends within a second:
//
//	go reg.Watch(ctx)
package sqlitestore
