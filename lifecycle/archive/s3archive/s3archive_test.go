package s3archive_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive/archivetest"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive/s3archive"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeS3 is an in-process S3 server over real HTTP, recording the
// PutObject requests it gets.
type fakeS3 struct {
	client *s3.Client

	mu   sync.Mutex
	puts []putRequest
}

type putRequest struct {
	key           string
	contentLength int64
	payloadHash   string // x-amz-content-sha256: a signed payload, or not
}

var bucketSeq atomic.Int64

func newFakeS3(t testing.TB) *fakeS3 {
	t.Helper()
	f := &fakeS3{}
	h := gofakes3.New(s3mem.New()).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Get("x-id") == "PutObject" {
			f.mu.Lock()
			f.puts = append(f.puts, putRequest{r.URL.Path, r.ContentLength, r.Header.Get("X-Amz-Content-Sha256")})
			f.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		srv.CloseClientConnections()
		srv.Close()
	})
	f.client = s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(srv.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient:                 hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return f
}

func (f *fakeS3) store(t *testing.T, prefix string) (*s3archive.Store, string) {
	t.Helper()
	bucket := fmt.Sprintf("archives-%d", bucketSeq.Add(1))
	if _, err := f.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	s, err := s3archive.New(f.client, &s3archive.Options{Bucket: bucket, Prefix: prefix, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s, bucket
}

func (f *fakeS3) keys(t *testing.T, bucket string) []string {
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
	archivetest.RunStore(t, func(t *testing.T) archive.Store { s, _ := f.store(t, ""); return s })
}

func TestContractWithPrefixAndPaging(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	archivetest.RunStore(t, func(t *testing.T) archive.Store {
		s, _ := f.store(t, "prod/archives/")
		s3archive.SetPageSize(s, 2) // every List pages
		return s
	})
}

// Archives live at <Prefix><name>; objects outside the prefix, or with
// names the store does not write, are not listed.
func TestLayout(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s, bucket := f.store(t, "archives/")
	archivetest.Put(t, s, "t1/a.tar.gz", []byte("a"))
	ctx := context.Background()
	for _, key := range []string{"blobs/t1/x", "archives/t1/.tmp", "archives/bad name"} {
		if _, err := f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if keys := f.keys(t, bucket); !slices.Contains(keys, "archives/t1/a.tar.gz") {
		t.Fatalf("bucket holds %q, want archives/t1/a.tar.gz", keys)
	}
	names, err := s.List(ctx, "")
	if err != nil || !slices.Equal(names, []string{"t1/a.tar.gz"}) {
		t.Fatalf("List = %q %v", names, err)
	}
}

// Put sends one PutObject with the length up front and a signed payload,
// whether the body is a file (sent from where it stands) or a plain
// reader (spooled first, and the spool removed).
func TestPutBodies(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	spool := t.TempDir()
	bucket := "bodies"
	if _, err := f.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	s, err := s3archive.New(f.client, &s3archive.Options{Bucket: bucket, TempDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("archive bytes\x00"), 200_000) // 2.8 MB
	file, err := os.CreateTemp(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	file.Write([]byte("header to skip"))
	file.Write(data)
	file.Seek(int64(len("header to skip")), io.SeekStart)
	ctx := context.Background()
	if err := s.Put(ctx, "from-file", file); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "from-reader", io.MultiReader(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	// An *os.File that cannot seek (a pipe) is spooled like a plain reader.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { pw.Write(data); pw.Close() }()
	err = s.Put(ctx, "from-pipe", pr)
	pr.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"from-file", "from-reader", "from-pipe"} {
		if got := archivetest.Get(t, s, name); !bytes.Equal(got, data) {
			t.Errorf("%s: got %d bytes, want %d", name, len(got), len(data))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) != 3 {
		t.Fatalf("PutObject requests: %+v, want 3", f.puts)
	}
	for _, p := range f.puts {
		if p.contentLength != int64(len(data)) || len(p.payloadHash) != 64 {
			t.Errorf("PutObject %s: length %d, payload hash %q; want %d and a SHA-256", p.key, p.contentLength, p.payloadHash, len(data))
		}
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Errorf("the spool directory holds %d files", len(ents))
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	for _, o := range []*s3archive.Options{nil, {}, {Bucket: "b", Prefix: "no-slash"}, {Bucket: "b", Prefix: "/abs/"}, {Bucket: "b", Prefix: "a b/"}} {
		if _, err := s3archive.New(f.client, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if _, err := s3archive.New(nil, &s3archive.Options{Bucket: "b"}); err == nil {
		t.Error("New(nil client) succeeded")
	}
}
