package s3archive_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive/s3archive"
)

func Example() {
	// An in-process S3 server stands in for MinIO or AWS here.
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider("key", "secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("tenantmcp")}); err != nil {
		log.Fatal(err)
	}

	archives, err := s3archive.New(client, &s3archive.Options{Bucket: "tenantmcp", Prefix: "archives/"})
	if err != nil {
		log.Fatal(err)
	}
	name := "abcdefghijklmnopqrstuvwxyz/20261127T100000Z.tar.gz"
	if err := archives.Put(ctx, name, strings.NewReader("archive bytes")); err != nil {
		log.Fatal(err)
	}
	names, _ := archives.List(ctx, "abcdefghijklmnopqrstuvwxyz/")
	rc, _ := archives.Open(ctx, name)
	b, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Println(names, string(b))
	// Output: [abcdefghijklmnopqrstuvwxyz/20261127T100000Z.tar.gz] archive bytes
}
