package admin_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/admin/admintest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	admintest.Run(t, func(t *testing.T) admin.Store { return admin.NewMemoryStore() })
}

func ExampleMemoryStore() {
	ctx := context.Background()
	s := admin.NewMemoryStore()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	req := admin.RequestHash(sha256.Sum256([]byte(`{"external_id":"org_42"}`)))

	_, claimed, _ := s.ClaimIdempotencyKey(ctx, "signup-42", req, now)
	fmt.Println("first claim:", claimed)
	_ = s.CompleteIdempotencyKey(ctx, "signup-42", tenant.ID("tabcdefghijklmnopqrst"))

	rec, claimed, _ := s.ClaimIdempotencyKey(ctx, "signup-42", req, now.Add(time.Minute))
	fmt.Println("retry claim:", claimed, rec.Request == req, rec.Tenant)

	_, claimed, _ = s.ClaimIdempotencyKey(ctx, "signup-42", req, now.Add(admin.IdempotencyTTL+time.Second))
	fmt.Println("a day later:", claimed)
	// Output:
	// first claim: true
	// retry claim: false true tabcdefghijklmnopqrst
	// a day later: true
}
