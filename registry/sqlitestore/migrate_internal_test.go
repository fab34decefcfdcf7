package sqlitestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

// A file made by an earlier version (schema version 1, no change log) is
// migrated on Open: its tenants stay, and writes are logged for Watch.
func TestMigrateVersion1File(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`,
		migrations[0],
		`INSERT INTO schema_version VALUES (1, 0)`,
		`INSERT INTO tenants (id, issuer, external_id, status, created_at, updated_at)
			VALUES ('taaaaaaaaaaaaaaaaaaaa', 'https://idp.example.com/', 'org_old', 'active', 0, 0)`,
	} {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRow(`SELECT MAX(version) FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(migrations))
	}
	if _, err := s.Get(ctx, "https://idp.example.com/", "org_old"); err != nil {
		t.Fatalf("the old tenant: %v", err)
	}
	rec := registrytest.Record("https://idp.example.com/", "org_new")
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM tenant_changes WHERE tenant_id = $1`, string(rec.ID)).Scan(&v); err != nil || v != 1 {
		t.Fatalf("change log rows for the new tenant: %d (%v), want 1", v, err)
	}
	// And the leases of lifecycle operations have their table.
	now := time.Now()
	if err := s.AcquireLease(ctx, registry.Lease{Issuer: rec.Issuer, ExternalID: rec.ExternalID, Token: "t", AcquiredAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatalf("AcquireLease on a migrated file: %v", err)
	}
}
