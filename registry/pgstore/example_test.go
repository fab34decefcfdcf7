package pgstore_test

import (
	"context"
	"log"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
)

// Open connects and migrates; the registry then caches in front of it.
func Example() {
	ctx := context.Background()
	st, err := pgstore.Open(ctx, "postgres://tenantmcp@db.internal/tenantmcp", &pgstore.Options{Schema: "control"})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	reg := registry.New(st, nil)
	if _, err := reg.Refresh(ctx); err != nil { // warm the cache at start-up
		log.Fatal(err)
	}
}
