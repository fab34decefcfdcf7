package postgres_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/postgres"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Setting up row-level security once as an administrator, then serving
// tenants as the application role.
func ExampleNewRLS() {
	ctx := context.Background()
	adminDSN := "postgres://postgres@127.0.0.1:5432/tenantmcp"
	appDSN := "postgres://tenantmcp_app@127.0.0.1:5432/tenantmcp"

	// Once, from a deploy job (tenantmcp db setup / db migrate).
	if err := postgres.Setup(ctx, adminDSN, nil); err != nil {
		log.Fatal(err)
	}
	admin, err := pgxpool.New(ctx, adminDSN)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	if err := postgres.Migrate(ctx, admin, postgres.RowLevelSecurity, nil); err != nil {
		log.Fatal(err)
	}

	// In the server.
	pool, err := pgxpool.New(ctx, appDSN)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.CheckAppRole(ctx, pool); err != nil {
		log.Fatal(err) // superuser, BYPASSRLS or owner: refuse to serve
	}
	rls, err := postgres.NewRLS(pool, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx = store.WithSet(ctx, &store.Set{Docs: rls, SQL: rls})
	ctx = tenant.With(ctx, &tenant.Context{ID: tenant.NewID()}) // done by the server's middleware

	docs, err := store.Docs(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := docs.Put(ctx, "notes/q3.md", []byte("plan")); err != nil {
		log.Fatal(err)
	}
}

// Provisioning a tenant's schema when it is added, and upgrading every
// schema after a release.
func ExampleProvisioner() {
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	p, err := postgres.NewProvisioner(admin, &postgres.ProvisionerOptions{
		Migrations: []postgres.Migration{{Version: 1, Name: "notes",
			SQL: "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL)"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Provision(ctx, tenant.NewID()); err != nil { // tenantmcp tenant add
		log.Fatal(err)
	}
	err = p.MigrateAll(ctx, func(done, total int, id tenant.ID) { // tenantmcp db migrate
		log.Printf("%d/%d %s", done, total, id)
	})
	if err != nil {
		log.Fatal(err)
	}
}
