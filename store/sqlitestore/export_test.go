package sqlitestore

// CachedHandles reports how many tenant handles the cache holds.
func (s *Store) CachedHandles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
