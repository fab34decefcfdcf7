package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// PartPrefix starts the name of every part an Export writes: one part
// per object, "blobs/<key>", holding the object's bytes.
const PartPrefix = "blobs/"

var _ store.Portable = (*Store)(nil)

// stagingMark separates the tenant id from the random part in the name of
// an Import's staging directory, <root>/<id>.import-<random>.t.
const stagingMark = ".import-"

// Export writes each of tenant id's objects as part "blobs/<key>", in key
// order, streaming it from its file, so memory use does not grow with
// the tenant. The objects are those List shows. Export is not a snapshot:
// an object written while it runs may be in it with its old or new value
// (each object is whole), so suspend the tenant first for a consistent
// export.
func (s *Store) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.tenantRoot(id, false)
	if notExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsblob: export tenant %s: %w", id, err)
	}
	defer r.Close()
	wk := walker{ctx: ctx, r: r, s: s, id: id}
	if err := wk.walk("", nil, ""); err != nil {
		return fmt.Errorf("fsblob: export tenant %s: %w", id, err)
	}
	slices.Sort(wk.keys)
	for _, key := range wk.keys {
		if err := s.exportObject(ctx, r, id, key, w); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) exportObject(ctx context.Context, r *os.Root, id tenant.ID, key string, w store.PartWriter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := r.Open(objectPath(key))
	if notExist(err) {
		return nil // deleted since the walk
	}
	if err != nil {
		return s.unsafe(id, "export", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fsblob: export %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return s.unsafe(id, "export", key, ErrUnsafePath)
	}
	if fi.Size() > store.MaxValueSize {
		return fmt.Errorf("fsblob: export %q: %w: %d bytes on disk", key, store.ErrTooLarge, fi.Size())
	}
	pw, err := w.Create(PartPrefix + key)
	if err != nil {
		return fmt.Errorf("fsblob: export %q: create part: %w", key, err)
	}
	if _, err := io.Copy(pw, f); err != nil {
		pw.Close()
		return fmt.Errorf("fsblob: export %q: %w", key, err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("fsblob: export %q: close part: %w", key, err)
	}
	return nil
}

// Import writes the parts of an Export as tenant id's objects. They go
// into a staging directory beside the tenant directories, are fsynced,
// and the staging directory is then renamed to the tenant's, so the
// tenant gets every object or none. The tenant must have no object
// (List is empty), else store.ErrNotEmpty. Part names must be
// "blobs/<key>" with a valid key, and each part at most
// store.MaxValueSize bytes. Writes to the same tenant must not run
// meanwhile: a Put racing the final rename may be lost.
func (s *Store) Import(ctx context.Context, id tenant.ID, pr store.PartReader) (err error) {
	names := pr.Names()
	keys := make([]string, len(names))
	for i, n := range names {
		key, ok := strings.CutPrefix(n, PartPrefix)
		if !ok || store.ValidateKey(key) != nil {
			return fmt.Errorf("fsblob: import tenant %s: unknown part %q (parts are %s<key>)", id, n, PartPrefix)
		}
		keys[i] = key
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.top == nil {
		return ErrClosed
	}
	if err := s.checkEmpty(ctx, id); err != nil || len(keys) == 0 {
		return err
	}
	stage := string(id) + stagingMark + randomHex() + tmpSuffix
	if err := s.top.Mkdir(stage, 0o700); err != nil {
		return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			if rerr := s.top.RemoveAll(stage); rerr != nil {
				err = errors.Join(err, fmt.Errorf("fsblob: import tenant %s: remove staging directory: %w", id, rerr))
			}
		}
	}()
	r, err := s.top.OpenRoot(stage)
	if err != nil {
		return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
	}
	defer r.Close()
	dirs := map[string]bool{"": true}
	for i, key := range keys {
		obj := objectPath(key)
		if err := importObject(ctx, r, obj, names[i], pr); err != nil {
			return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
		}
		for d := parent(obj); d != "" && !dirs[d]; d = parent(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := syncDir(r, d); err != nil {
			return fmt.Errorf("fsblob: import tenant %s: sync directory: %w", id, err)
		}
	}
	if err := s.replace(ctx, id, stage); err != nil {
		return err
	}
	if err := syncDir(s.top, ""); err != nil {
		return fmt.Errorf("fsblob: import tenant %s: sync root: %w", id, err)
	}
	return nil
}

// importObject writes part name into a new file obj under r.
func importObject(ctx context.Context, r *os.Root, obj, name string, pr store.PartReader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d := parent(obj); d != "" {
		if err := r.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	src, err := pr.Open(name)
	if err != nil {
		return fmt.Errorf("open part %q: %w", name, err)
	}
	defer src.Close()
	f, err := r.OpenFile(obj, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("part %q: %w", name, err)
	}
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(src, store.MaxValueSize+1))
	if err != nil {
		return fmt.Errorf("read part %q: %w", name, err)
	}
	if n > store.MaxValueSize {
		return fmt.Errorf("part %q: %w: more than %d bytes", name, store.ErrTooLarge, store.MaxValueSize)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("part %q: %w", name, err)
	}
	return f.Close()
}

// checkEmpty returns store.ErrNotEmpty if tenant id has an object. The
// caller holds s.mu for reading.
func (s *Store) checkEmpty(ctx context.Context, id tenant.ID) error {
	r, err := s.tenantRoot(id, false)
	if notExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
	}
	defer r.Close()
	wk := walker{ctx: ctx, r: r, s: s, id: id}
	if err := wk.walk("", nil, ""); err != nil {
		return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
	}
	if len(wk.keys) > 0 {
		return fmt.Errorf("%w (tenant %s has %d objects)", store.ErrNotEmpty, id, len(wk.keys))
	}
	return nil
}

// replace renames the staging directory to tenant id's. A tenant
// directory without objects (left by Deletes, or holding only files this
// package ignores) is removed first.
func (s *Store) replace(ctx context.Context, id tenant.ID, stage string) error {
	err := s.top.Rename(stage, string(id))
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
	}
	if err := s.checkEmpty(ctx, id); err != nil {
		return err
	}
	if err := s.top.RemoveAll(string(id)); err != nil {
		return fmt.Errorf("fsblob: import tenant %s: remove the empty tenant directory: %w", id, err)
	}
	if err := s.top.Rename(stage, string(id)); err != nil {
		return fmt.Errorf("fsblob: import tenant %s: %w", id, err)
	}
	return nil
}

// Purge removes tenant id's directory with everything in it (objects,
// temporary files, files this package ignores; links are removed, not
// followed) and any staging directory an interrupted Import left.
func (s *Store) Purge(ctx context.Context, id tenant.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.top == nil {
		return ErrClosed
	}
	if err := s.top.RemoveAll(string(id)); err != nil {
		return fmt.Errorf("fsblob: purge tenant %s: %w", id, err)
	}
	d, err := s.top.Open(".")
	if err != nil {
		return fmt.Errorf("fsblob: purge tenant %s: %w", id, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("fsblob: purge tenant %s: %w", id, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, string(id)+stagingMark) && path.Ext(n) == tmpSuffix {
			if err := s.top.RemoveAll(n); err != nil {
				return fmt.Errorf("fsblob: purge tenant %s: remove staging directory: %w", id, err)
			}
		}
	}
	if err := syncDir(s.top, ""); err != nil {
		return fmt.Errorf("fsblob: purge tenant %s: sync root: %w", id, err)
	}
	return nil
}
