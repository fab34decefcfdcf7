package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
)

func Example() {
	dir, err := os.MkdirTemp("", "tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := sqlitestore.Open(filepath.Join(dir, "registry.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	ctx := context.Background()
	reg := registry.New(st, nil)
	added, err := reg.Add(ctx, registry.Tenant{Issuer: "https://login.example.com/", ExternalID: "org_42", Name: "Example Org"})
	if err != nil {
		log.Fatal(err)
	}
	rec, err := reg.Resolve(ctx, "https://login.example.com/", "org_42")
	fmt.Println(rec.ID == added.ID, rec.Name, rec.Status, err)

	_, err = reg.Add(ctx, registry.Tenant{Issuer: "https://login.example.com/", ExternalID: "org_42"})
	fmt.Println(err)
	// Output:
	// true Example Org active <nil>
	// registry: tenant already registered: issuer "https://login.example.com/" already has a tenant with external id "org_42" (see `tenant list`)
}
