package fsblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Errors returned by a Store.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("fsblob: store is closed")
	// ErrUnsafePath means something on disk is not what this package
	// writes (a symbolic link or special file where an object or
	// directory belongs) and was refused rather than followed. An
	// operator should inspect the tenant directory. (Links that would
	// leave the tenant directory are refused by os.Root with its own
	// error.)
	ErrUnsafePath = errors.New("fsblob: unexpected file type on disk; refusing to follow it")
)

// Options configure a Store. A nil *Options means all defaults.
type Options struct {
	// Logger receives warnings about unexpected files found on disk (for
	// example a symbolic link planted in a tenant directory). Nil
	// discards them.
	Logger *slog.Logger
}

// Store keeps each tenant's objects in its own directory, root/<id>/.
// It implements store.Backend and is safe for concurrent use.
type Store struct {
	log *slog.Logger

	mu   sync.RWMutex // held for reading by every operation; Close takes it for writing
	top  *os.Root     // nil once closed
	name string

	beforeRename func() error // test hook: fail a write after the data is on disk
}

var _ store.Backend = (*Store)(nil)

// Open returns a Store under root, which is created (mode 0700) if it does
// not exist.
func Open(root string, o *Options) (*Store, error) {
	if o == nil {
		o = &Options{}
	}
	if root == "" {
		return nil, errors.New("fsblob: empty root path; pass the directory that holds tenant objects")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("fsblob: create root %s: %w", root, err)
	}
	top, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("fsblob: open root %s: %w", root, err)
	}
	s := &Store{log: o.Logger, top: top, name: root}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Close releases the root directory handle after in-flight operations
// end. Later calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.top == nil {
		return nil
	}
	err := s.top.Close()
	s.top = nil
	return err
}

// tenantRoot opens id's directory as an os.Root, through which no path
// can leave it. With create false a missing directory yields
// fs.ErrNotExist. The caller holds s.mu for reading.
func (s *Store) tenantRoot(id tenant.ID, create bool) (*os.Root, error) {
	if s.top == nil {
		return nil, ErrClosed
	}
	name := string(id)
	fi, err := s.top.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err = s.top.Mkdir(name, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			fi, err = s.top.Lstat(name)
		}
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() { // a symlink or a file where the tenant directory belongs
		s.log.Warn("fsblob: tenant path is not a directory", "tenant_id", id, "mode", fi.Mode().String())
		return nil, ErrUnsafePath
	}
	return s.top.OpenRoot(name)
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get returns the object stored under key, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.tenantRoot(id, false)
	if notExist(err) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("fsblob: get %q: %w", key, err)
	}
	defer r.Close()
	f, err := r.Open(objectPath(key))
	if notExist(err) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, s.unsafe(id, "get", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("fsblob: get %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, s.unsafe(id, "get", key, ErrUnsafePath)
	}
	if fi.Size() > store.MaxValueSize {
		return nil, fmt.Errorf("fsblob: get %q: %w: %d bytes on disk", key, store.ErrTooLarge, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("fsblob: get %q: %w", key, err)
	}
	return b, nil
}

// unsafe logs and wraps an unexpected error, which may come from a
// planted link or an escape attempt refused by os.Root.
func (s *Store) unsafe(id tenant.ID, op, key string, err error) error {
	s.log.Warn("fsblob: refused unexpected path", "tenant_id", id, "op", op, "err", err)
	return fmt.Errorf("fsblob: %s %q: %w", op, key, err)
}

// Put writes value under key atomically: the data goes to a temporary
// file in the same directory, is fsynced, and is renamed over the object;
// then the directory is fsynced. A failed or cancelled Put leaves the
// previous object (or none) and no temporary file.
func (s *Store) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.tenantRoot(id, true)
	if err != nil {
		return fmt.Errorf("fsblob: put %q: %w", key, err)
	}
	defer r.Close()
	if err := s.put(ctx, r, objectPath(key), value); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("fsblob: put %q: %w: %w", key, store.ErrStorageFull, err)
		}
		return s.unsafe(id, "put", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, r *os.Root, obj string, value []byte) (err error) {
	dir := parent(obj)
	tmp := path.Join(dir, "tmp-"+randomHex()+tmpSuffix)
	var f *os.File
	var created []string // directories this Put created, deepest last
	// A concurrent Delete may remove an empty directory between creating
	// it and creating the file in it; try again a few times.
	for attempt := 0; ; attempt++ {
		f, err = r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !notExist(err) || dir == "" || attempt == 5 {
			break
		}
		c, merr := mkdirs(r, dir)
		created = append(created, c...)
		if merr != nil && !(notExist(merr) && attempt < 5) {
			return merr
		}
		// A parent removed while mkdirs ran: create the path again.
	}
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			r.Remove(tmp)
		}
	}()
	if _, err = f.Write(value); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if s.beforeRename != nil {
		if err = s.beforeRename(); err != nil {
			return err
		}
	}
	if err = r.Rename(tmp, obj); err != nil {
		return err
	}
	// Make the rename durable, and the entries of any new directories.
	syncs := []string{dir}
	if len(created) > 0 {
		for d := parent(dir); ; d = parent(d) {
			syncs = append(syncs, d)
			if d == "" {
				break
			}
		}
	}
	for _, d := range syncs {
		if err := syncDir(r, d); err != nil {
			return fmt.Errorf("sync directory: %w", err)
		}
	}
	return nil
}

// mkdirs creates dir and its missing parents inside r, returning those it
// created. Existing components must be real directories.
func mkdirs(r *os.Root, dir string) ([]string, error) {
	var created []string
	p := ""
	for part := range strings.SplitSeq(dir, "/") {
		p = path.Join(p, part)
		err := r.Mkdir(p, 0o700)
		switch {
		case err == nil:
			created = append(created, p)
		case errors.Is(err, fs.ErrExist):
			fi, err := r.Lstat(p)
			if err != nil {
				return created, err
			}
			if !fi.IsDir() {
				return created, ErrUnsafePath
			}
		default:
			return created, err
		}
	}
	return created, nil
}

func syncDir(r *os.Root, dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := r.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func randomHex() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Delete removes key, or returns store.ErrNotFound. Directories left
// empty are removed too.
func (s *Store) Delete(ctx context.Context, id tenant.ID, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.tenantRoot(id, false)
	if notExist(err) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("fsblob: delete %q: %w", key, err)
	}
	defer r.Close()
	obj := objectPath(key)
	fi, err := r.Lstat(obj)
	if notExist(err) {
		return store.ErrNotFound
	}
	if err != nil {
		return s.unsafe(id, "delete", key, err)
	}
	if !fi.Mode().IsRegular() {
		return s.unsafe(id, "delete", key, ErrUnsafePath)
	}
	if err := r.Remove(obj); err != nil {
		if notExist(err) {
			return store.ErrNotFound // a concurrent Delete won
		}
		return s.unsafe(id, "delete", key, err)
	}
	// Prune empty directories; a non-empty one stops the walk.
	for d := parent(obj); d != ""; d = parent(d) {
		if r.Remove(d) != nil {
			break
		}
	}
	if err := syncDir(r, parent(obj)); err != nil && !notExist(err) {
		return fmt.Errorf("fsblob: delete %q: sync directory: %w", key, err)
	}
	return nil
}

// List returns the tenant's keys that start with prefix, sorted. It walks
// only the tenant's directory, from the deepest directory the prefix
// names, and never follows symbolic links.
func (s *Store) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := []string{}
	r, err := s.tenantRoot(id, false)
	if notExist(err) {
		return keys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fsblob: list %q: %w", prefix, err)
	}
	defer r.Close()
	segs := strings.Split(prefix, "/")
	segs = segs[:len(segs)-1] // complete segments only
	w := walker{ctx: ctx, r: r, prefix: prefix, s: s, id: id}
	if err := w.walk(dirPath(segs), segs, ""); err != nil {
		return nil, fmt.Errorf("fsblob: list %q: %w", prefix, err)
	}
	slices.Sort(w.keys)
	if w.keys == nil {
		return keys, nil
	}
	return w.keys, nil
}

type walker struct {
	ctx    context.Context
	r      *os.Root
	prefix string
	keys   []string
	s      *Store
	id     tenant.ID
}

// walk lists dir, whose complete key segments are segs and whose pending
// (chunked) segment text so far is pending.
func (w *walker) walk(dir string, segs []string, pending string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	name := dir
	if name == "" {
		name = "."
	}
	if dir != "" {
		// Only real directories: the prefix's start directory could be a
		// planted link (entries met during the walk are checked below).
		fi, err := w.r.Lstat(name)
		if notExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			w.s.log.Warn("fsblob: ignoring non-directory in tenant directory", "tenant_id", w.id, "path", dir)
			return nil
		}
	}
	d, err := w.r.Open(name)
	if err != nil {
		return err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		child := path.Join(dir, n)
		stem := n[:max(len(n)-2, 0)]
		t := e.Type()
		switch {
		case t.IsDir() && strings.HasSuffix(n, chunkSuffix):
			if err := w.walk(child, segs, pending+stem); err != nil {
				return err
			}
		case t.IsDir() && strings.HasSuffix(n, dirSuffix):
			seg, ok := unescape(pending + stem)
			if !ok {
				continue
			}
			if err := w.walk(child, append(segs[:len(segs):len(segs)], seg), ""); err != nil {
				return err
			}
		case t.IsRegular() && strings.HasSuffix(n, objSuffix):
			seg, ok := unescape(pending + stem)
			if !ok {
				continue
			}
			key := strings.Join(append(segs[:len(segs):len(segs)], seg), "/")
			// Only keys that Get would find at this very path.
			if !strings.HasPrefix(key, w.prefix) || store.ValidateKey(key) != nil || objectPath(key) != child {
				continue
			}
			w.keys = append(w.keys, key)
		case t&fs.ModeSymlink != 0:
			w.s.log.Warn("fsblob: ignoring symbolic link in tenant directory", "tenant_id", w.id, "path", child)
		}
	}
	return nil
}
