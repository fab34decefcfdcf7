// Package admintest is the contract suite every admin.Store must pass
// (MemoryStore, sqliteadmin, pgadmin). A backend's test calls Run with a
// constructor that returns a fresh, empty store and arranges its cleanup:
//
//	func TestContract(t *testing.T) {
//		admintest.Run(t, func(t *testing.T) admin.Store {
//			s, err := sqliteadmin.Open(filepath.Join(t.TempDir(), "registry.db"), nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite covers impersonation grants (create, look up by id and by
// token hash, uniqueness, filters, ordering and paging, one tenant's grants
// never in another's list, idempotent ending) and idempotency keys (one
// claim wins among many, completion, release, expiry after
// admin.IdempotencyTTL), with hostile strings throughout. Grant and
// HostileStrings help backends write tests of their own.
package admintest
