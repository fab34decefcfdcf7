// Package s3archive is the archive store on S3 (and S3-compatible
// services): archive name is the object <Prefix><name> in one bucket.
//
//	client := s3.New(s3.Options{ /* region, endpoint, credentials */ })
//	archives, err := s3archive.New(client, &s3archive.Options{Bucket: "tenantmcp", Prefix: "archives/"})
//	if err != nil { return err }
//	err = archives.Put(ctx, string(id)+"/20261127T100000Z.tar.gz", file)
//
// Put uploads with one PutObject whose body is seekable, so the SDK can
// sign the payload and retry: a body that is an io.ReaderAt and io.Seeker
// (an *os.File, a *bytes.Reader) is sent from where it stands, any other
// reader is first spooled to a temporary file. S3 replaces objects
// atomically, so readers see the old or the new archive. Objects are
// limited to what one PutObject takes (5 GiB on AWS).
package s3archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive/internal/spool"
)

// Options configure New.
type Options struct {
	// Bucket holds the archives. Required.
	Bucket string
	// Prefix is put in front of every archive name, for example
	// "archives/" to share a bucket with the blob store. It must be empty
	// or end with "/", and be a valid archive.ValidatePrefix prefix.
	// Empty means names are object keys as they are.
	Prefix string
	// TempDir is where Put spools a body that is not seekable. Empty
	// means os.TempDir().
	TempDir string
}

// Store is an archive.Store in one S3 bucket. It is safe for concurrent
// use.
type Store struct {
	client  *s3.Client
	bucket  string
	prefix  string
	tempDir string

	pageSize int32 // ListObjectsV2 MaxKeys; 0 = server default
}

var _ archive.Store = (*Store)(nil)

// New returns a Store using client, which the caller keeps. For servers
// that predate the SDK's default integrity protections (many S3-compatible
// ones), build the client with RequestChecksumCalculationWhenRequired and
// ResponseChecksumValidationWhenRequired, as store/s3blob.Open does.
func New(client *s3.Client, o *Options) (*Store, error) {
	if o == nil {
		o = &Options{}
	}
	if client == nil {
		return nil, errors.New("s3archive: nil *s3.Client")
	}
	if o.Bucket == "" {
		return nil, errors.New("s3archive: Options.Bucket is empty; name the bucket that holds archives")
	}
	if o.Prefix != "" && (!strings.HasSuffix(o.Prefix, "/") || archive.ValidatePrefix(o.Prefix) != nil) {
		return nil, fmt.Errorf("s3archive: Options.Prefix %q must end with '/' and use A-Z a-z 0-9 . _ - and '/'", o.Prefix)
	}
	return &Store{client: client, bucket: o.Bucket, prefix: o.Prefix, tempDir: o.TempDir}, nil
}

// isNotFound reports a missing object: GetObject's NoSuchKey, or the
// bare 404 of HeadObject.
func isNotFound(err error) bool {
	var noKey *types.NoSuchKey
	var notFound *types.NotFound
	return errors.As(err, &noKey) || errors.As(err, &notFound)
}

// Put uploads the archive with one PutObject.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) error {
	if err := archive.ValidateName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3archive: put %s: %w", name, err)
	}
	body, size, done, err := s.seekable(ctx, r)
	if err != nil {
		return fmt.Errorf("s3archive: put %s: %w", name, err)
	}
	defer done()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.prefix + name),
		Body:          body,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String("application/gzip"),
	})
	if err != nil {
		return fmt.Errorf("s3archive: put %s: %w", name, err)
	}
	return nil
}

// seekable returns r as a body the SDK can rewind, with its length, and
// a func that releases what it made.
func (s *Store) seekable(ctx context.Context, r io.Reader) (io.ReadSeeker, int64, func(), error) {
	type readerAtSeeker interface {
		io.ReaderAt
		io.Seeker
	}
	if rs, ok := r.(readerAtSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil { // an *os.File that is a pipe: spool it
			return s.spool(ctx, r)
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, 0, nil, err
		}
		if _, err := rs.Seek(start, io.SeekStart); err != nil {
			return nil, 0, nil, err
		}
		return io.NewSectionReader(rs, start, end-start), end - start, func() {}, nil
	}
	return s.spool(ctx, r)
}

// spool copies r into a temporary file.
func (s *Store) spool(ctx context.Context, r io.Reader) (io.ReadSeeker, int64, func(), error) {
	f, err := spool.Create(s.tempDir)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("spool: %w", err)
	}
	n, err := io.Copy(f, readerFunc(func(b []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(b)
	}))
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return io.NewSectionReader(f, 0, n), n, func() { f.Close() }, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// Open returns the object's body, or archive.ErrNotFound.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := archive.ValidateName(name); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + name)})
	if isNotFound(err) {
		return nil, fmt.Errorf("s3archive: open %s: %w", name, archive.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("s3archive: open %s: %w", name, err)
	}
	return out.Body, nil
}

// Delete removes the object, or returns archive.ErrNotFound. S3's
// DeleteObject succeeds for missing keys, so Delete asks HeadObject
// first.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := archive.ValidateName(name); err != nil {
		return err
	}
	key := aws.String(s.prefix + name)
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: key})
	if isNotFound(err) {
		return fmt.Errorf("s3archive: delete %s: %w", name, archive.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("s3archive: delete %s: %w", name, err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: key}); err != nil {
		return fmt.Errorf("s3archive: delete %s: %w", name, err)
	}
	return nil
}

// List pages through ListObjectsV2 under Prefix + prefix and returns the
// names, sorted. Objects whose names ValidateName refuses (written by
// other means) are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	names := []string{}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3archive: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if ok && strings.HasPrefix(name, prefix) && archive.ValidateName(name) == nil {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}
