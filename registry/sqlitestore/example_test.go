package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

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
	// registry: tenant already registered: issuer "https://login.example.com/" already has a tenant with external id "org_42"
}

// A server watches the file; the CLI, another handle on it, suspends a
// tenant; the server's Registry refuses the tenant soon after, although
// its cache would have kept the record for the TTL.
func ExampleStore_Watch() {
	dir, err := os.MkdirTemp("", "tenantmcp")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "registry.db")
	ctx := context.Background()

	server, err := sqlitestore.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	reg := registry.New(server, &registry.Options{TTL: time.Hour})
	watchCtx, stop := context.WithCancel(ctx)
	watching := make(chan error)
	go func() { watching <- reg.Watch(watchCtx) }()
	defer func() { stop(); <-watching }()

	rec, err := reg.Add(ctx, registry.Tenant{Issuer: "https://login.example.com/", ExternalID: "org_42"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = reg.Resolve(ctx, "https://login.example.com/", "org_42") // cached for an hour
	fmt.Println(err)

	cli, err := sqlitestore.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	if _, err := registry.New(cli, nil).Update(ctx, rec.ID, func(t *registry.Tenant) error {
		t.Status = registry.StatusSuspended
		return nil
	}); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = reg.Resolve(ctx, "https://login.example.com/", "org_42"); err != nil {
			break
		}
	}
	fmt.Println(err)
	// Output:
	// <nil>
	// tenant is suspended: contact the operator of this server
}
