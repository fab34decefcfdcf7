package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("s3blob: store is closed")

// Options configure New.
type Options struct {
	// Bucket is the bucket holding every tenant's objects. Required: New
	// fails when it is empty.
	Bucket string
	// Prefix is put in front of every object key, so one bucket can hold
	// several deployments (for example "prod/"). Empty means objects
	// start with the tenant id.
	Prefix string
	// Logger receives debug records. Nil discards them.
	Logger *slog.Logger
}

// Config is what Open needs to build its own client. It uses static
// credentials only (no environment, profile, SSO or instance-role
// lookup); callers that want the AWS default credential chain build an
// *s3.Client with the aws config package and call New.
type Config struct {
	Bucket string // required
	// Endpoint is the service URL, e.g. "http://127.0.0.1:9000" for a
	// MinIO. Empty means AWS S3 for Region.
	Endpoint string
	// Region is the signing region. Empty means "us-east-1".
	Region string
	// PathStyle addresses buckets as <endpoint>/<bucket> instead of
	// <bucket>.<endpoint>; most S3-compatible servers need it.
	PathStyle bool
	// AccessKey and SecretKey are static credentials. Both empty means
	// anonymous (unsigned) requests.
	AccessKey, SecretKey string
	// Prefix is Options.Prefix.
	Prefix string
	// Logger is Options.Logger.
	Logger *slog.Logger
}

// Store keeps objects at <Prefix><tenant id>/<key> in one bucket. It
// implements store.Backend and is safe for concurrent use.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
	log    *slog.Logger
	closed atomic.Bool
	owned  *http.Client // built by Open; its idle connections close with the Store

	pageSize int32 // ListObjectsV2 MaxKeys; 0 = server default (1000)
	maxGet   int64 // largest object Get returns
}

var _ store.Backend = (*Store)(nil)

// New returns a Store using client. The caller keeps ownership of client.
func New(client *s3.Client, o *Options) (*Store, error) {
	if o == nil {
		o = &Options{}
	}
	if client == nil {
		return nil, errors.New("s3blob: nil *s3.Client")
	}
	if o.Bucket == "" {
		return nil, errors.New("s3blob: Options.Bucket is empty; name the bucket that holds tenant objects")
	}
	if !utf8.ValidString(o.Prefix) || strings.HasPrefix(o.Prefix, "/") {
		return nil, fmt.Errorf("s3blob: Options.Prefix %q must be UTF-8 and not start with '/'", o.Prefix)
	}
	s := &Store{client: client, bucket: o.Bucket, prefix: o.Prefix, log: o.Logger, maxGet: store.MaxValueSize}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Open builds a client from c, checks that the bucket is reachable
// (HeadBucket) and returns a Store that closes the client's idle
// connections on Close.
//
// Request and response checksums are computed only when an operation
// requires them, which S3-compatible servers that predate the SDK's
// default integrity protections accept.
func Open(ctx context.Context, c Config) (*Store, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3blob: Config.Bucket is empty; name the bucket that holds tenant objects")
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return nil, errors.New("s3blob: set both AccessKey and SecretKey, or neither for anonymous access")
	}
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	opts := s3.Options{
		Region:                     cmpOr(c.Region, "us-east-1"),
		UsePathStyle:               c.PathStyle,
		HTTPClient:                 hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if c.Endpoint != "" {
		opts.BaseEndpoint = aws.String(c.Endpoint)
	}
	if c.AccessKey != "" {
		opts.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")
	}
	s, err := New(s3.New(opts), &Options{Bucket: c.Bucket, Prefix: c.Prefix, Logger: c.Logger})
	if err != nil {
		hc.CloseIdleConnections()
		return nil, err
	}
	s.owned = hc
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.Bucket)}); err != nil {
		hc.CloseIdleConnections()
		return nil, fmt.Errorf("s3blob: bucket %q is not reachable at %s (check endpoint, region, credentials and that the bucket exists): %w",
			c.Bucket, cmpOr(c.Endpoint, "AWS"), err)
	}
	return s, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Client is the S3 client the store uses (to keep other objects, such as
// tenant archives, in the same bucket).
func (s *Store) Client() *s3.Client { return s.client }

// Close marks the Store closed and, if Open built the client, closes its
// idle connections.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.owned != nil {
		s.owned.CloseIdleConnections()
	}
	return nil
}

// base is the tenant's namespace: Prefix + id + "/". Tenant ids have one
// fixed length, so no tenant's namespace is a prefix of another's.
func (s *Store) base(id tenant.ID) string { return s.prefix + string(id) + "/" }

// isNotFound reports a missing object (not a missing bucket).
func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

// Get returns the object under key, or store.ErrNotFound. Objects larger
// than store.MaxValueSize (written by other means) yield store.ErrTooLarge.
func (s *Store) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.base(id) + key)})
	if isNotFound(err) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("s3blob: get %q: %w", key, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > s.maxGet {
		return nil, fmt.Errorf("s3blob: get %q: %w: %d bytes stored", key, store.ErrTooLarge, n)
	}
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	n, err := buf.ReadFrom(io.LimitReader(out.Body, s.maxGet+1))
	if err != nil {
		return nil, fmt.Errorf("s3blob: get %q: read body: %w", key, err)
	}
	if n > s.maxGet {
		return nil, fmt.Errorf("s3blob: get %q: %w", key, store.ErrTooLarge)
	}
	return buf.Bytes(), nil
}

// Put stores value under key. S3 replaces objects atomically: readers see
// the old or the new value, and a failed Put leaves the old one.
func (s *Store) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.base(id) + key),
		Body:          bytes.NewReader(value),
		ContentLength: aws.Int64(int64(len(value))),
	})
	if err != nil {
		return fmt.Errorf("s3blob: put %q: %w", key, err)
	}
	return nil
}

// Delete removes key, or returns store.ErrNotFound. S3's DeleteObject
// succeeds for missing keys, so Delete asks HeadObject first; two
// concurrent Deletes of one key may therefore both succeed, and a Put
// that lands between the check and the delete is deleted.
func (s *Store) Delete(ctx context.Context, id tenant.ID, key string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	k := aws.String(s.base(id) + key)
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: k})
	if isNotFound(err) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("s3blob: delete %q: %w", key, err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: k}); err != nil {
		return fmt.Errorf("s3blob: delete %q: %w", key, err)
	}
	return nil
}

// List returns the tenant's keys that start with prefix, sorted, by
// paging through ListObjectsV2 under the tenant's namespace.
func (s *Store) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	base := s.base(id)
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(base + prefix)}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	keys := []string{}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3blob: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			// The server filtered by prefix already; check again so a
			// misbehaving server cannot hand us another namespace.
			if !strings.HasPrefix(k, base+prefix) {
				continue
			}
			keys = append(keys, k[len(base):])
		}
	}
	slices.Sort(keys)
	return keys, nil
}
