// Package pgstore keeps the tenant registry in PostgreSQL (through pgx),
// for deployments that run several server replicas.
//
//	st, err := pgstore.Open(ctx, "postgres://tenantmcp@db/tenantmcp", nil) // connects and migrates
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	reg := registry.New(st, nil)
//
// With a pool the caller owns, use New and call Migrate once at start-up:
//
//	st := pgstore.New(pool, &pgstore.Options{Schema: "control"})
//	if err := st.Migrate(ctx); err != nil { ... }
//
// Records live in table tenantmcp_tenants of the chosen schema (default
// public) with jsonb columns for lists and maps and a unique constraint on
// (issuer, external_id) compared exactly (collation "C"). Migrations are
// versioned (table tenantmcp_registry_version) and run under a
// transaction-scoped advisory lock, so replicas starting together apply
// each migration once. Identifiers are quoted, so any schema name is safe.
// The leases of lifecycle operations (registry.Lease) live in table
// tenantmcp_tenant_leases beside it; each acquisition is one INSERT … ON
// CONFLICT statement, so of two replicas at most one takes a lease.
//
// Every Create, Update and Delete sends a NOTIFY in its own statement
// (on Store.Channel, one channel per schema), and Store.Watch LISTENs on a
// connection of its own, so every replica whose Registry runs Watch drops
// a changed tenant's cached record as soon as the change commits:
//
//	go reg.Watch(ctx)
package pgstore
