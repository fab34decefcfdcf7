package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// PartPrefix starts the name of every part an Export writes: one part
// per object, "blobs/<key>", holding the object's bytes (the layout of
// fsblob's exports, so an export of one restores into the other).
const PartPrefix = "blobs/"

// ErrNotPortable is returned by Export for an object under the tenant's
// namespace that Import could not restore: its name is not a valid key
// or it is larger than store.MaxValueSize. Such objects were written by
// other means than this package; rename or remove them.
var ErrNotPortable = errors.New("s3blob: object cannot be exported")

var _ store.Portable = (*Store)(nil)

// maxDelete is the most keys one DeleteObjects request takes.
const maxDelete = 1000

// Export writes each object under the tenant's namespace as part
// "blobs/<key>", in key order, streaming it from GetObject page by page,
// so memory use does not grow with the tenant. S3 has no snapshot: an
// object written while Export runs may be in it with its old or new value
// (each object is whole), so suspend the tenant first for a consistent
// export.
func (s *Store) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.eachPage(ctx, id, func(objs []types.Object) error {
		for _, o := range objs {
			key := aws.ToString(o.Key)[len(s.base(id)):]
			if err := s.exportObject(ctx, id, key, aws.ToInt64(o.Size), w); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) exportObject(ctx context.Context, id tenant.ID, key string, size int64, w store.PartWriter) error {
	if err := store.ValidateKey(key); err != nil {
		return fmt.Errorf("%w: %q in the namespace of tenant %s: %w", ErrNotPortable, key, id, err)
	}
	if size > s.maxGet {
		return fmt.Errorf("%w: %q of tenant %s: %d bytes, at most %d", ErrNotPortable, key, id, size, s.maxGet)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.base(id) + key)})
	if isNotFound(err) {
		return nil // deleted since the listing
	}
	if err != nil {
		return fmt.Errorf("s3blob: export %q: %w", key, err)
	}
	defer out.Body.Close()
	pw, err := w.Create(PartPrefix + key)
	if err != nil {
		return fmt.Errorf("s3blob: export %q: create part: %w", key, err)
	}
	n, err := io.Copy(pw, io.LimitReader(out.Body, s.maxGet+1))
	if err == nil && n > s.maxGet {
		err = fmt.Errorf("%w: %q grew beyond %d bytes", ErrNotPortable, key, s.maxGet)
	}
	if err != nil {
		pw.Close()
		return fmt.Errorf("s3blob: export %q: %w", key, err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("s3blob: export %q: close part: %w", key, err)
	}
	return nil
}

// Import writes the parts of an Export as tenant id's objects, one
// PutObject each (a part is read into memory, at most
// store.MaxValueSize bytes). The tenant's namespace must hold no object,
// else store.ErrNotEmpty. S3 has no transaction: if any part fails,
// Import purges the namespace again before it returns, which is right
// because it was empty. Part names must be "blobs/<key>" with a valid
// key. Writes to the same tenant must not run meanwhile.
func (s *Store) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	if s.closed.Load() {
		return ErrClosed
	}
	names := r.Names()
	for _, n := range names {
		if key, ok := strings.CutPrefix(n, PartPrefix); !ok || store.ValidateKey(key) != nil {
			return fmt.Errorf("s3blob: import tenant %s: unknown part %q (parts are %s<key>)", id, n, PartPrefix)
		}
	}
	out, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.base(id)), MaxKeys: aws.Int32(1)})
	if err != nil {
		return fmt.Errorf("s3blob: import tenant %s: %w", id, err)
	}
	if len(out.Contents) > 0 {
		return fmt.Errorf("%w (tenant %s has objects)", store.ErrNotEmpty, id)
	}
	var buf bytes.Buffer
	for _, n := range names {
		if err := s.importObject(ctx, id, n, r, &buf); err != nil {
			if perr := s.Purge(context.WithoutCancel(ctx), id); perr != nil {
				err = errors.Join(err, fmt.Errorf("s3blob: import tenant %s: remove the partial import: %w", id, perr))
			}
			return err
		}
	}
	return nil
}

func (s *Store) importObject(ctx context.Context, id tenant.ID, name string, r store.PartReader, buf *bytes.Buffer) error {
	rc, err := r.Open(name)
	if err != nil {
		return fmt.Errorf("s3blob: import tenant %s: open part %q: %w", id, name, err)
	}
	defer rc.Close()
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(rc, store.MaxValueSize+1))
	if err != nil {
		return fmt.Errorf("s3blob: import tenant %s: read part %q: %w", id, name, err)
	}
	if n > store.MaxValueSize {
		return fmt.Errorf("s3blob: import tenant %s: part %q: %w: more than %d bytes", id, name, store.ErrTooLarge, store.MaxValueSize)
	}
	return s.Put(ctx, id, strings.TrimPrefix(name, PartPrefix), buf.Bytes())
}

// Purge deletes every object under the tenant's namespace, whatever its
// name, with one DeleteObjects request per listed page (at most 1000
// keys). Each round lists from the start again, so a purge that failed
// halfway simply runs again.
func (s *Store) Purge(ctx context.Context, id tenant.ID) error {
	if s.closed.Load() {
		return ErrClosed
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.base(id)), MaxKeys: aws.Int32(maxDelete)}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(min(s.pageSize, maxDelete))
	}
	var last string
	for {
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return fmt.Errorf("s3blob: purge tenant %s: list: %w", id, err)
		}
		var del []types.ObjectIdentifier
		for _, o := range page.Contents {
			if strings.HasPrefix(aws.ToString(o.Key), s.base(id)) {
				del = append(del, types.ObjectIdentifier{Key: o.Key})
			}
		}
		if len(del) == 0 {
			return nil
		}
		first := aws.ToString(del[0].Key)
		if first == last {
			return fmt.Errorf("s3blob: purge tenant %s: %q is still listed after it was deleted", id, first)
		}
		last = first
		res, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: del, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("s3blob: purge tenant %s: delete %d objects: %w", id, len(del), err)
		}
		if len(res.Errors) > 0 {
			e := res.Errors[0]
			return fmt.Errorf("s3blob: purge tenant %s: %d objects not deleted, first %q: %s %s",
				id, len(res.Errors), aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
}

// eachPage calls fn with each page of the tenant's objects, in key order,
// checking every key against the namespace as List does.
func (s *Store) eachPage(ctx context.Context, id tenant.ID, fn func([]types.Object) error) error {
	base := s.base(id)
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(base)}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3blob: list tenant %s: %w", id, err)
		}
		objs := page.Contents[:0:0]
		for _, o := range page.Contents {
			if strings.HasPrefix(aws.ToString(o.Key), base) {
				objs = append(objs, o)
			}
		}
		if err := fn(objs); err != nil {
			return err
		}
	}
	return nil
}
