// Package sqlitestore is the embedded storage backend: one SQLite database
// file per tenant (isolation = "database_per_tenant"), through the pure-Go
// driver modernc.org/sqlite, so no cgo and no server are needed.
//
// Each tenant's data lives in <dir>/<internal id>.db. A handle (a
// database/sql pool on that file) is opened on first use and kept in a
// bounded LRU cache; an evicted handle is closed only once no operation or
// transaction still uses it. Each file is migrated to the current schema
// (a documents table) the first time it is opened.
//
//	s, err := sqlitestore.Open("/var/lib/tenantmcp/tenants", nil)
//	if err != nil { return err }
//	defer s.Close()
//	set := &store.Set{Docs: s, SQL: s} // documents and tenant-bound SQL
//
// A tenant's transaction can only ever reach that tenant's file: the file
// name comes from the registry-assigned id, never from claim text, and
// ATTACH of any named database (including VACUUM INTO) is refused by an
// authorizer installed on every connection.
//
// Reads for a tenant that has no file yet (Get, List, Delete) return
// store.ErrNotFound or an empty list without creating one; only writes,
// InTx and Provision create the file.
//
// Placeholders are $1, $2, ... (the driver binds $N by position, and a
// repeated $N refers to the same argument, as on PostgreSQL).
//
// The Store is a store.Portable. Export writes one part, PartName
// ("sqlite/tenant.db"): a consistent snapshot of the tenant's whole file
// (documents and every table of its SQL) made with VACUUM INTO on an
// internal connection. Import checks that part (quick_check, documents
// table) in a temporary file and renames it over the tenant's file;
// Purge removes the file with its -wal, -shm and -journal. Both first
// take the tenant's handle out of the cache and wait for the operations
// using it; operations that start meanwhile wait and then open the new
// file. They cannot stop another process that has the file open, so run
// them where no other process (a CLI) uses that tenant.
package sqlitestore
