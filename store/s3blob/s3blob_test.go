package s3blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/s3blob"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeS3 is an in-process S3 server over real HTTP.
type fakeS3 struct {
	url      string
	client   *s3.Client // raw client, for inspecting the bucket
	requests atomic.Int64
}

var bucketSeq atomic.Int64

func newFakeS3(t testing.TB) *fakeS3 {
	t.Helper()
	f := &fakeS3{}
	h := gofakes3.New(s3mem.New()).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		srv.CloseClientConnections()
		srv.Close()
	})
	f.url = srv.URL
	f.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient:   hc,
	})
	return f
}

// bucket creates a fresh bucket.
func (f *fakeS3) bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", bucketSeq.Add(1))
	if _, err := f.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// open returns a Store built by Open (its own client, static credentials).
func (f *fakeS3) open(t testing.TB, bucket, prefix string) *s3blob.Store {
	t.Helper()
	s, err := s3blob.Open(context.Background(), s3blob.Config{
		Bucket: bucket, Endpoint: f.url, Region: "us-east-1", PathStyle: true,
		AccessKey: "AKIDTEST", SecretKey: "secret", Prefix: prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (f *fakeS3) rawKeys(t *testing.T, bucket string) []string {
	t.Helper()
	out, err := f.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func TestContract(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	storetest.Run(t, func(t *testing.T) store.Backend { return f.open(t, f.bucket(t), "") })
}

func TestContractWithPrefixAndNew(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		s, err := s3blob.New(f.client, &s3blob.Options{Bucket: f.bucket(t), Prefix: "prod/"})
		if err != nil {
			t.Fatal(err)
		}
		s3blob.SetPageSize(s, 2) // every List pages
		return s
	})
}

func TestLayout(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	bucket := f.bucket(t)
	s := f.open(t, bucket, "prod/")
	ctx := context.Background()
	id := tenant.NewID()
	for _, k := range []string{"docs/Plan Q3.md", "dir", "dir/a"} {
		if err := s.Put(ctx, id, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"prod/" + string(id) + "/dir", "prod/" + string(id) + "/dir/a", "prod/" + string(id) + "/docs/Plan Q3.md"}
	if got := f.rawKeys(t, bucket); !slices.Equal(got, want) {
		t.Fatalf("object keys = %q, want %q", got, want)
	}
}

func TestPrefixesSeparateDeployments(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	bucket := f.bucket(t)
	prod, staging, bare := f.open(t, bucket, "prod/"), f.open(t, bucket, "staging/"), f.open(t, bucket, "")
	ctx := context.Background()
	id := tenant.NewID() // the same tenant id in each deployment
	for name, s := range map[string]*s3blob.Store{"prod": prod, "staging": staging, "bare": bare} {
		if err := s.Put(ctx, id, "k", []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*s3blob.Store{"prod": prod, "staging": staging, "bare": bare} {
		if v, err := s.Get(ctx, id, "k"); err != nil || string(v) != name {
			t.Fatalf("%s Get = %q %v", name, v, err)
		}
		if keys, err := s.List(ctx, id, ""); err != nil || !slices.Equal(keys, []string{"k"}) {
			t.Fatalf("%s List = %q %v", name, keys, err)
		}
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := f.open(t, f.bucket(t), "")
	s3blob.SetPageSize(s, 10)
	ctx := context.Background()
	a, b := tenant.NewID(), tenant.NewID()
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("p/%02d", i)
		want = append(want, k)
		if err := s.Put(ctx, a, k, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, b, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := f.requests.Load()
	got, err := s.List(ctx, a, "p/")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List = %q %v", got, err)
	}
	if n := f.requests.Load() - before; n != 3 {
		t.Fatalf("List made %d requests, want 3 pages", n)
	}
}

func TestForeignObjectsInvisible(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	bucket := f.bucket(t)
	s := f.open(t, bucket, "prod/")
	ctx := context.Background()
	id := tenant.NewID()
	// Objects near, but outside, the tenant's namespace.
	for _, k := range []string{string(id), "prod/" + string(id), "prod/" + string(id) + "x/k", string(id) + "/k", "prod/other/" + string(id) + "/k"} {
		if _, err := f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k), Body: bytes.NewReader([]byte("foreign"))}); err != nil {
			t.Fatal(err)
		}
	}
	if keys, err := s.List(ctx, id, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List = %q %v, want none", keys, err)
	}
	if _, err := s.Get(ctx, id, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
}

func TestDeleteMissing(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := f.open(t, f.bucket(t), "")
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Delete(ctx, id, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete missing: %v", err)
	}
	if err := s.Put(ctx, id, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, id, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, id, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestTooLargeObject(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	bucket := f.bucket(t)
	s := f.open(t, bucket, "")
	s3blob.SetMaxGet(s, 8)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "ok", []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, id, "big", []byte("123456789")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, id, "ok"); err != nil || string(v) != "12345678" {
		t.Fatalf("Get ok = %q %v", v, err)
	}
	if _, err := s.Get(ctx, id, "big"); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Get big: %v, want ErrTooLarge", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	ctx := context.Background()
	for name, c := range map[string]s3blob.Config{
		"no bucket":      {Endpoint: f.url, PathStyle: true},
		"missing bucket": {Bucket: "does-not-exist", Endpoint: f.url, PathStyle: true, AccessKey: "a", SecretKey: "b"},
		"half creds":     {Bucket: "b", Endpoint: f.url, PathStyle: true, AccessKey: "a"},
		"bad endpoint":   {Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true},
	} {
		if s, err := s3blob.Open(ctx, c); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
	if _, err := s3blob.New(nil, &s3blob.Options{Bucket: "b"}); err == nil {
		t.Error("New(nil client) succeeded")
	}
	if _, err := s3blob.New(f.client, nil); err == nil {
		t.Error("New without bucket succeeded")
	}
	if _, err := s3blob.New(f.client, &s3blob.Options{Bucket: "b", Prefix: "/abs"}); err == nil {
		t.Error("New with a leading-slash prefix succeeded")
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := f.open(t, f.bucket(t), "")
	s.Close()
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "k", nil); !errors.Is(err, s3blob.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.List(ctx, id, ""); !errors.Is(err, s3blob.ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
}
