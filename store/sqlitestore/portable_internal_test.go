package sqlitestore

import "github.com/tenantmcp/tenantmcp/tenant"

// Held reports whether Purge or Import holds tenant id exclusively.
func Held(s *Store, id tenant.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.excl[id] != nil
}
