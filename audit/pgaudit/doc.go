// Package pgaudit keeps the audit trail in PostgreSQL (through pgx), for
// deployments that run several server replicas.
//
// The deployment's `db setup` creates the roles (store/postgres.Setup)
// and the tables, as an administrator acting as the owner role:
//
//	err := pgaudit.Migrate(ctx, adminPool, owner, app, nil)
//
// The server appends and reads as the application role, and checks at
// startup that its role cannot rewrite the trail:
//
//	st := pgaudit.New(appPool, nil)
//	if err := st.CheckAppRole(ctx); err != nil { ... }
//
// The retention job deletes as the owner role, through the
// administrator's pool:
//
//	ret := pgaudit.New(adminPool, &pgaudit.Options{RetentionRole: owner})
//	n, err := ret.DeleteBefore(ctx, time.Now().AddDate(0, 0, -400))
//
// # Append-only
//
// The tables (tenantmcp_audit_records, tenantmcp_audit_checkpoints,
// tenantmcp_audit_floors in schema public, or Options.Schema) belong to the
// owner role. The application role holds SELECT and INSERT on records and
// checkpoints and SELECT on floors, nothing else: it cannot UPDATE, DELETE
// or TRUNCATE a record. A statement trigger (tenantmcp_audit_append_only)
// refuses UPDATE, DELETE and TRUNCATE of records and checkpoints to every
// role, the owner and superusers included, except DELETE in a transaction
// that set RetentionSetting to "on" — which DeleteBefore does, and which
// helps only a role that has DELETE, that is the owner. The owner can
// still disable the trigger or drop the tables, and a superuser can do
// anything: against them, the hash chain and the signed checkpoints are
// the protection (Tamperer shows, in tests, that verification catches it).
//
// # Appending from several replicas
//
// Each chain's records have a primary key (chain, seq). An Append checks,
// in the statement or transaction that inserts the batch, that the first
// record of each of its chains follows the chain's stored head (its last
// record, or where retention left it); the primary key settles two writers
// that read the same head. Either way the loser stores nothing and gets an
// error matching audit.ErrConflict. Small batches go in as one INSERT (one
// round trip); from 256 records on, by COPY in a transaction, each record
// decoded while the previous ones stream.
// Bodies are bytea: the bytes hashed, never re-encoded.
package pgaudit
