package s3blob_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/s3blob"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func Example() {
	// An in-process S3 server stands in for MinIO or AWS here.
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	admin := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("key", "secret", "")})
	if _, err := admin.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("blobs")}); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	blobs, err := s3blob.Open(ctx, s3blob.Config{
		Bucket: "blobs", Endpoint: srv.URL, PathStyle: true,
		AccessKey: "key", SecretKey: "secret", Prefix: "prod/",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer blobs.Close()

	acme, globex := tenant.NewID(), tenant.NewID()
	a, _ := store.NewBucket(blobs, acme)
	g, _ := store.NewBucket(blobs, globex)
	a.Put(ctx, "invoices/2026-11.pdf", []byte("acme"))
	g.Put(ctx, "invoices/2026-11.pdf", []byte("globex"))

	v, _ := a.Get(ctx, "invoices/2026-11.pdf")
	keys, _ := g.List(ctx, "")
	fmt.Println(string(v), keys)
	// Output: acme [invoices/2026-11.pdf]
}
