package sqliteadmin_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/admin/sqliteadmin"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func Example() {
	dir, err := os.MkdirTemp("", "tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := sqliteadmin.Open(filepath.Join(dir, "registry.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g := &admin.Impersonation{
		ID:        "imp_example",
		TokenHash: sha256.Sum256([]byte("tmi_credential")),
		Tenant:    tenant.ID("tabcdefghijklmnopqrst"),
		Admin:     "support-1",
		User:      "support-1",
		Reason:    "customer asked why exports fail",
		ReadOnly:  true,
		CreatedAt: now,
		ExpiresAt: now.Add(30 * time.Minute),
	}
	if err := st.CreateImpersonation(ctx, g); err != nil {
		log.Fatal(err)
	}
	active, err := st.ListImpersonations(ctx, admin.ImpersonationFilter{Tenant: g.Tenant, ActiveAt: now.Add(time.Minute)})
	fmt.Println(len(active), err)

	ended, err := st.EndImpersonation(ctx, g.ID, "support-2", now.Add(5*time.Minute))
	fmt.Println(ended.EndedBy, ended.EndedAt.Format(time.RFC3339), err)
	active, err = st.ListImpersonations(ctx, admin.ImpersonationFilter{Tenant: g.Tenant, ActiveAt: now.Add(6 * time.Minute)})
	fmt.Println(len(active), err)
	// Output:
	// 1 <nil>
	// support-2 2026-03-01T12:05:00Z <nil>
	// 0 <nil>
}
