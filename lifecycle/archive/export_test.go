package archive

import "os"

// SetBeforeRename makes the store's Puts call fn after the data is on
// disk and before the rename; an error from fn fails the Put there.
func SetBeforeRename(s *DirStore, fn func() error) { s.beforeRename = fn }

// SpoolFile is the archive's spool, to change it behind its back.
func SpoolFile(a *Archive) *os.File { return a.f.File }
