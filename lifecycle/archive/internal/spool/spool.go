// Package spool makes the temporary files the archive packages spool
// parts and uploads into.
package spool

import (
	"errors"
	"os"
	"runtime"
)

// File is a temporary file, readable and writable, mode 0600. Where the
// system allows it (not on Windows) its name is removed as soon as it is
// created, so nothing is left behind even if the process dies; elsewhere
// Close removes it.
type File struct {
	*os.File
	path string // still to remove on Close; "" once removed
}

// Create makes a temporary file in dir ("" means os.TempDir()).
func Create(dir string) (*File, error) {
	f, err := os.CreateTemp(dir, "tenantmcp-archive-*.tmp")
	if err != nil {
		return nil, err
	}
	s := &File{File: f, path: f.Name()}
	if runtime.GOOS != "windows" && os.Remove(s.path) == nil {
		s.path = ""
	}
	return s, nil
}

// Close closes and removes the file.
func (f *File) Close() error {
	err := f.File.Close()
	if f.path != "" {
		if rerr := os.Remove(f.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
		f.path = ""
	}
	return err
}
