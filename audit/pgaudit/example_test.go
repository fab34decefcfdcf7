package pgaudit_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/audit/pgaudit"
)

// Migrate as the administrator (db setup), append as the application
// role, delete past retention as the owner.
func Example() {
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, "postgres://admin@db.internal/tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	if err := pgaudit.Migrate(ctx, admin, "tenantmcp_owner", "tenantmcp_app", nil); err != nil {
		log.Fatal(err)
	}

	st, err := pgaudit.Open(ctx, "postgres://tenantmcp_app@db.internal/tenantmcp", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.CheckAppRole(ctx); err != nil {
		log.Fatal(err) // this role could rewrite the audit trail
	}

	retention := pgaudit.New(admin, &pgaudit.Options{RetentionRole: "tenantmcp_owner"})
	if _, err := retention.DeleteBefore(ctx, time.Now().AddDate(0, 0, -400)); err != nil {
		log.Fatal(err)
	}
}
