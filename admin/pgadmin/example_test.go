package pgadmin_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/admin/pgadmin"
)

// Migrate as the administrator (db migrate), then use the store as the
// application role.
func Example() {
	ctx := context.Background()
	adminPool, err := pgxpool.New(ctx, "postgres://postgres@db.internal/tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer adminPool.Close()
	if _, err := pgadmin.Open(ctx, adminPool, &pgadmin.Options{OwnerRole: "tenantmcp_owner", GrantTo: "tenantmcp_app"}); err != nil {
		log.Fatal(err)
	}

	appPool, err := pgxpool.New(ctx, "postgres://tenantmcp_app@db.internal/tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer appPool.Close()
	st, err := pgadmin.Open(ctx, appPool, &pgadmin.Options{SkipMigrate: true})
	if err != nil {
		log.Fatal(err) // errors.Is(err, pgadmin.ErrNotMigrated): run `tenantmcp db migrate`
	}
	defer st.Close()
}
