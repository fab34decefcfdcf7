package fsblob

// SetBeforeRename installs a hook that runs after a Put's data is synced
// and before it is renamed into place; an error fails the Put.
func SetBeforeRename(s *Store, fn func() error) { s.beforeRename = fn }

var ObjectPath = objectPath
