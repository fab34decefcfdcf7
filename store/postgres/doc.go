// Package postgres implements tenant isolation on PostgreSQL in the two
// ways the deployment file offers, both as store.Backend (documents) and
// store.SQLBackend (tenant-bound SQL):
//
//   - RLS ("row_level_security"): shared tables with a forced row level
//     security policy on the transaction-local setting app.tenant_id.
//   - Schemas ("schema_per_tenant"): a schema and a NOLOGIN role per
//     tenant; each transaction does SET LOCAL ROLE and SET LOCAL
//     search_path.
//
// Every operation is one transaction on one connection, so no tenant
// setting can outlive it or reach the next borrower of a pooled
// connection. Entering the tenant travels in the same network write as the
// first statement (a pgx batch), so a documents operation is one round
// trip, and every statement is parameterised with the same text for every
// tenant, so pgx prepares it once per connection. Three roles take part: an administrator (superuser or
// CREATEROLE) runs Setup and provisioning; the owner role (NOLOGIN) owns
// every table and schema and runs migrations; the application role the
// server connects as is NOSUPERUSER NOBYPASSRLS NOINHERIT and owns nothing.
// CheckAppRole refuses any other kind of connection at startup.
//
//	// once, as an administrator
//	err := postgres.Setup(ctx, adminDSN, &postgres.SetupOptions{AppPassword: pw})
//	err = postgres.Migrate(ctx, adminPool, postgres.RowLevelSecurity, nil)
//
//	// in the server, connected as tenantmcp_app
//	if err := postgres.CheckAppRole(ctx, appPool); err != nil {
//		return err
//	}
//	docs, err := postgres.NewRLS(appPool, nil)
//	set := &store.Set{Docs: docs, SQL: docs}
//
// See docs/isolation-postgres.md for the threat model of each strategy.
package postgres
