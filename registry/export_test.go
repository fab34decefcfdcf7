package registry

// Waiters reports how many Resolve calls wait for the store lookup of
// (issuer, externalID) now in flight (0 if none is).
func (r *Registry) Waiters(issuer, externalID string) int {
	s := r.cache.shard(issuer, externalID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.calls[key{issuer, externalID}]; c != nil {
		return c.waiters
	}
	return 0
}
