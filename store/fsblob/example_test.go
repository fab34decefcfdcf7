package fsblob_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func Example() {
	root, err := os.MkdirTemp("", "blobs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	blobs, err := fsblob.Open(root, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer blobs.Close()

	ctx := context.Background()
	b, err := store.NewBucket(blobs, tenant.NewID())
	if err != nil {
		log.Fatal(err)
	}
	b.Put(ctx, "reports/Q3.pdf", []byte("%PDF-1.7"))
	b.Put(ctx, "reports", []byte("a key and a prefix at once"))
	keys, err := b.List(ctx, "")
	fmt.Println(keys, err)
	_, err = b.Get(ctx, "../other-tenant/secret")
	fmt.Println(err)
	// Output:
	// [reports reports/Q3.pdf] <nil>
	// store: invalid key: "../other-tenant/secret" has a ".." segment
}
