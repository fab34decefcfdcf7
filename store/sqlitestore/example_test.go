package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func Example() {
	dir, err := os.MkdirTemp("", "tenants")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := sqlitestore.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	acme := tenant.NewID() // assigned by the registry
	docs, err := store.NewBucket(s, acme)
	if err != nil {
		log.Fatal(err)
	}
	if err := docs.Put(ctx, "notes/q3.md", []byte("plan")); err != nil {
		log.Fatal(err)
	}
	keys, err := docs.List(ctx, "notes/")
	fmt.Println(keys, err)

	// The same file answers SQL, with $N placeholders.
	db, err := store.NewDB(s, acme)
	if err != nil {
		log.Fatal(err)
	}
	err = db.Tx(ctx, func(tx store.Tx) error {
		var n int
		err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM documents WHERE key >= $1`, "notes/").Scan(&n)
		fmt.Println("documents:", n)
		return err
	})
	fmt.Println(err, s.Exists(acme))
	// Output:
	// [notes/q3.md] <nil>
	// documents: 1
	// <nil> true
}
