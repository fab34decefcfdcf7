package archive

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Store keeps archives by name: the archive store of the lifecycle
// (DirStore on a filesystem, s3archive on S3). archivetest.RunStore is
// its contract.
type Store interface {
	// Put stores what r yields under name, replacing an archive of that
	// name. It is atomic: until it returns, readers see the old archive
	// (or none), and a failed Put leaves the old one.
	Put(ctx context.Context, name string, r io.Reader) error
	// Open returns the archive under name, or ErrNotFound; the caller
	// closes it.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Delete removes the archive under name, or returns ErrNotFound.
	Delete(ctx context.Context, name string) error
	// List returns the names that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// ErrNotFound: no archive of that name.
var ErrNotFound = errors.New("archive: no archive of that name")

// MaxStoreName is the longest store name, in bytes.
const MaxStoreName = 1024

// ValidateName reports whether name is acceptable as a store name on
// every Store: 1 to MaxStoreName bytes; "/"-separated segments of 1 to
// 255 characters A-Z a-z 0-9 . _ - that do not start with "." (for
// example "<tenant id>/20261127T100000Z.tar.gz"). Names that start with
// "." are the stores' own temporary files.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxStoreName {
		return fmt.Errorf("%w: archive name of %d bytes: want 1 to %d", ErrInvalidName, len(name), MaxStoreName)
	}
	return validateSegments(name, false)
}

// ValidatePrefix is ValidateName for List prefixes: "" is allowed, and so
// are a trailing "/" and a last segment that is cut short.
func ValidatePrefix(prefix string) error {
	if len(prefix) > MaxStoreName {
		return fmt.Errorf("%w: prefix of %d bytes: want at most %d", ErrInvalidName, len(prefix), MaxStoreName)
	}
	if prefix == "" {
		return nil
	}
	return validateSegments(prefix, true)
}

func validateSegments(name string, prefix bool) error {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		last := i == len(segs)-1
		if seg == "" && prefix && last && i > 0 {
			continue // "a/" lists under a/
		}
		if seg == "" || len(seg) > 255 || seg[0] == '.' {
			return fmt.Errorf("%w: archive name %q: segments must be 1 to 255 characters and not start with '.'", ErrInvalidName, name)
		}
		for j := 0; j < len(seg); j++ {
			if c := seg[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: archive name %q has %q: use A-Z a-z 0-9 . _ - and '/'", ErrInvalidName, name, c)
			}
		}
	}
	return nil
}

// DirStore keeps archives as files under a directory: name "a/b.tar.gz"
// is <root>/a/b.tar.gz, mode 0600, in directories of mode 0700. Every
// access goes through an os.Root, so nothing (no name, no planted link)
// reaches outside the directory. It is safe for concurrent use.
type DirStore struct {
	mu   sync.RWMutex // held for reading by every operation; Close takes it for writing
	root *os.Root     // nil once closed

	beforeRename func() error // test hook: fail a Put after its data is on disk
}

var _ Store = (*DirStore)(nil)

// ErrClosed is returned by a DirStore's methods after Close.
var ErrClosed = errors.New("archive: store is closed")

// OpenDir returns a DirStore under dir, which is created (mode 0700) if it
// does not exist.
func OpenDir(dir string) (*DirStore, error) {
	if dir == "" {
		return nil, errors.New("archive: empty archive directory; pass the directory that holds archives")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: open %s: %w", dir, err)
	}
	return &DirStore{root: root}, nil
}

// Close releases the directory once operations in flight end.
func (s *DirStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	err := s.root.Close()
	s.root = nil
	return err
}

// use runs fn with the root, holding the store open.
func (s *DirStore) use(ctx context.Context, fn func(*os.Root) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.root == nil {
		return ErrClosed
	}
	return fn(s.root)
}

// Put writes the archive to a temporary file ".tmp-<random>" in the
// target directory, fsyncs it, renames it over name and fsyncs the
// directory. A failed or cancelled Put removes the temporary file.
func (s *DirStore) Put(ctx context.Context, name string, r io.Reader) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	err := s.use(ctx, func(root *os.Root) error {
		dir := path.Dir(name)
		tmp := path.Join(dir, ".tmp-"+rand.Text())
		// A concurrent Delete may remove an empty directory between its
		// creation and the file's: try again a few times.
		var f *os.File
		var err error
		for attempt := 0; ; attempt++ {
			f, err = root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err == nil || !notExist(err) || dir == "." || attempt == 5 {
				break
			}
			if err = root.MkdirAll(dir, 0o700); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		ok := false
		defer func() {
			if !ok {
				f.Close()
				root.Remove(tmp)
			}
		}()
		if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if s.beforeRename != nil {
			if err := s.beforeRename(); err != nil {
				return err
			}
		}
		if err := root.Rename(tmp, name); err != nil {
			return err
		}
		ok = true
		return syncDir(root, dir)
	})
	if err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	return nil
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// Open returns the archive file, or ErrNotFound.
func (s *DirStore) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var f *os.File
	err := s.use(ctx, func(root *os.Root) error {
		err := isArchive(root, name)
		if err == nil {
			f, err = root.Open(name)
		}
		return err
	})
	if err != nil {
		return nil, opError("open", name, err)
	}
	return f, nil
}

// isArchive checks that name is a regular file: a directory of archives
// is no archive (fs.ErrNotExist), and a link or special file is refused.
func isArchive(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	switch {
	case err != nil:
		return err
	case fi.IsDir():
		return fs.ErrNotExist
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file (%s): refusing it", fi.Mode().Type())
	}
	return nil
}

func opError(op, name string, err error) error {
	if notExist(err) {
		err = ErrNotFound
	}
	return fmt.Errorf("archive: %s %s: %w", op, name, err)
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Delete removes the archive, then the directories it leaves empty.
func (s *DirStore) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	err := s.use(ctx, func(root *os.Root) error {
		if err := isArchive(root, name); err != nil {
			return err
		}
		if err := root.Remove(name); err != nil {
			return err
		}
		// Remove the directories left empty, and make the removal of the
		// last entry durable.
		dir := path.Dir(name)
		for dir != "." && root.Remove(dir) == nil {
			dir = path.Dir(dir)
		}
		return syncDir(root, dir)
	})
	if err != nil {
		return opError("delete", name, err)
	}
	return nil
}

// List walks the directory that prefix names (without following links)
// and returns the archives in it whose names start with prefix. Files it
// did not write (temporary files, names ValidateName refuses) are left
// out.
func (s *DirStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	names := []string{}
	err := s.use(ctx, func(root *os.Root) error {
		start := "."
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			start = prefix[:i]
			fi, err := root.Lstat(start)
			if notExist(err) || err == nil && !fi.IsDir() { // nothing there, or a link: not ours
				return nil
			}
			if err != nil {
				return err
			}
		}
		err := fs.WalkDir(root.FS(), start, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			switch {
			case p == ".":
			case d.IsDir():
				if !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
					return fs.SkipDir
				}
			case d.Type().IsRegular() && strings.HasPrefix(p, prefix) && ValidateName(p) == nil:
				names = append(names, p)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("archive: list %q: %w", prefix, err)
	}
	slices.Sort(names)
	return names, nil
}
