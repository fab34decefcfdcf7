// Package pgadmin keeps the admin store (impersonation grants and
// idempotency keys, admin.Store) in PostgreSQL through pgx, beside the
// registry, for deployments that run several server replicas.
//
// The deployment's `db migrate` (and `db setup`) creates the tables as an
// administrator acting as the owner role, and grants the application role
// what the server needs:
//
//	st, err := pgadmin.Open(ctx, adminPool, &pgadmin.Options{OwnerRole: owner, GrantTo: app})
//
// The server, connected as the application role, only checks that the
// tables are current (ErrNotMigrated if not):
//
//	st, err := pgadmin.Open(ctx, appPool, &pgadmin.Options{SkipMigrate: true})
//
// # Tables and privileges
//
// Grants live in tenantmcp_admin_impersonations, idempotency keys in
// tenantmcp_admin_idempotency, of schema public or Options.Schema; ids,
// tenants, admins and keys are compared exactly (collation "C"), times
// are timestamptz (microseconds), scopes text[], hashes 32-byte bytea.
// Migrations are versioned in tenantmcp_admin_version, forward-only, and
// run in one transaction under the advisory lock that store/postgres and
// pgaudit migrate under, so replicas and CLIs starting together apply each
// once. Identifiers are quoted, so any schema name is safe.
//
// The application role (Options.GrantTo) may read and insert grants and
// update only their ended_at and ended_by columns: through the server's
// connection no grant can be deleted, extended or given other scopes, and
// the history of impersonations stays. It may read and write idempotency
// keys. It owns nothing, so it can neither alter nor drop the tables.
//
// # Concurrency
//
// A claim of an idempotency key is one INSERT … ON CONFLICT DO UPDATE …
// WHERE expired: the primary key settles concurrent claims from any
// number of replicas, exactly one of which wins; a loser reads the
// winner's record. Ending a grant is a conditional UPDATE, so the first
// end is the one kept.
package pgadmin
