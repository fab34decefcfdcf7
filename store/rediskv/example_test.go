package rediskv_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/rediskv"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Needs a running Redis, so it is compiled but not run.
func Example() {
	kv, err := rediskv.Open("redis://127.0.0.1:6379/0", &rediskv.Options{Namespace: "prod:"})
	if err != nil {
		log.Fatal(err)
	}
	defer kv.Close()

	ctx := context.Background()
	b, err := store.NewBucket(kv, tenant.NewID())
	if err != nil {
		log.Fatal(err)
	}
	b.Put(ctx, "session/abc", []byte("state")) // Redis key prod:<id>/session/abc
	keys, err := b.List(ctx, "session/")
	fmt.Println(keys, err)
}
