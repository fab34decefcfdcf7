package s3blob_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/store/s3blob"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestPortable(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s := f.open(t, f.bucket(t), "")
		return s, s
	})
}

// Every List, Export and Purge pages, and tenants share a prefix.
func TestPortableSmallPages(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s, err := s3blob.New(f.client, &s3blob.Options{Bucket: f.bucket(t), Prefix: "prod/"})
		if err != nil {
			t.Fatal(err)
		}
		s3blob.SetPageSize(s, 7)
		return s, s
	})
}

func rawPut(t *testing.T, f *fakeS3, bucket, key, body string) {
	t.Helper()
	if _, err := f.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// Purge deletes every object of the tenant's namespace, keys this package
// would refuse included, in pages, and nothing near it.
func TestPurgeNamespace(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	bucket := f.bucket(t)
	s := f.open(t, bucket, "prod/")
	s3blob.SetPageSize(s, 4)
	ctx := context.Background()
	id := tenant.NewID()
	for i := range 11 {
		if err := s.Put(ctx, id, fmt.Sprintf("k/%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	mine := "prod/" + string(id) + "/"
	rawPut(t, f, bucket, mine+"../odd", "written by other means")
	rawPut(t, f, bucket, mine+"a//b", "written by other means")
	near := []string{string(id), "prod/" + string(id), "prod/" + string(id) + "x/k", string(id) + "/k", "staging/" + string(id) + "/k", "prod/other/" + string(id) + "/k"}
	for _, k := range near {
		rawPut(t, f, bucket, k, "foreign")
	}
	before := f.requests.Load()
	if err := s.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	// 13 objects in pages of 4: 4 rounds of list + delete, and a last list.
	if n := f.requests.Load() - before; n != 9 {
		t.Errorf("Purge made %d requests, want 9", n)
	}
	slices.Sort(near)
	if got := f.rawKeys(t, bucket); !slices.Equal(got, near) {
		t.Fatalf("objects after Purge = %q, want %q", got, near)
	}
	if err := s.Purge(ctx, id); err != nil {
		t.Fatalf("second Purge: %v", err)
	}
}

func TestExportRefusesForeignObjects(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	bucket := f.bucket(t)
	s := f.open(t, bucket, "")
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "ok", []byte("fine")); err != nil {
		t.Fatal(err)
	}
	rawPut(t, f, bucket, string(id)+"/a//b", "written by other means")
	err := s.Export(ctx, id, &storetest.MemoryParts{})
	if !errors.Is(err, s3blob.ErrNotPortable) || !strings.Contains(err.Error(), `"a//b"`) {
		t.Fatalf("Export with an invalid key: err = %v, want ErrNotPortable naming it", err)
	}

	big := tenant.NewID()
	if err := s.Put(ctx, big, "big", []byte("123456789")); err != nil {
		t.Fatal(err)
	}
	s3blob.SetMaxGet(s, 8)
	if err := s.Export(ctx, big, &storetest.MemoryParts{}); !errors.Is(err, s3blob.ErrNotPortable) {
		t.Fatalf("Export of an oversized object: err = %v, want ErrNotPortable", err)
	}
	// Import refuses a namespace with any object, even one it cannot
	// read back.
	if err := s.Import(ctx, id, &storetest.MemoryParts{}); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("Import into a namespace with foreign objects: err = %v, want ErrNotEmpty", err)
	}
}

// fsblob and s3blob write the same parts: an export of one restores into
// the other.
func TestPortableAcrossBlobBackends(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := f.open(t, f.bucket(t), "")
	fsb, err := fsblob.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fsb.Close()
	ctx := context.Background()
	data := storetest.PortableData()
	a, b := tenant.NewID(), tenant.NewID()
	for k, v := range data {
		if err := fsb.Put(ctx, a, k, v); err != nil {
			t.Fatal(err)
		}
	}
	fromFS := &storetest.MemoryParts{}
	if err := fsb.Export(ctx, a, fromFS); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, a, fromFS); err != nil {
		t.Fatal(err)
	}
	fromS3 := &storetest.MemoryParts{}
	if err := s.Export(ctx, a, fromS3); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fromFS.Names(), fromS3.Names()) {
		t.Fatalf("parts differ:\nfsblob %.20q\ns3blob %.20q", fromFS.Names(), fromS3.Names())
	}
	if err := fsb.Import(ctx, b, fromS3); err != nil {
		t.Fatal(err)
	}
	if storetest.Digest(t, s, a) != storetest.Digest(t, fsb, a) || storetest.Digest(t, fsb, b) != storetest.Digest(t, fsb, a) {
		t.Fatal("data differ after crossing backends")
	}
}
