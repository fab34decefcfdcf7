package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
)

func Example() {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	reg := registry.New(registry.NewMemoryStore(), &registry.Options{Now: func() time.Time { return now }})

	// An operator registers the organisations the IdP knows.
	acme, err := reg.Add(ctx, registry.Tenant{
		Issuer: "https://acme.eu.auth0.com/", ExternalID: "org_8Fz2", Name: "Acme",
		AllowedTools: []string{"documents.list"},
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = reg.Add(ctx, registry.Tenant{
		Issuer: "https://acme.eu.auth0.com/", ExternalID: "org_trial", Name: "Trialist",
		Status: registry.StatusTrial, TrialEndsAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		log.Fatal(err)
	}

	// Per request: the verified token's issuer and org_id.
	rec, err := reg.Resolve(ctx, "https://acme.eu.auth0.com/", "org_8Fz2")
	fmt.Println(rec.ID == acme.ID, rec.Name, rec.AllowedTools, err)

	_, err = reg.Resolve(ctx, "https://acme.eu.auth0.com/", "org_trial")
	fmt.Println(errors.Is(err, registry.ErrTrialExpired), err)

	_, err = reg.Resolve(ctx, "https://acme.eu.auth0.com/", "org_nobody")
	fmt.Println(err)
	// Output:
	// true Acme [documents.list] <nil>
	// true tenant's trial ended on 2026-10-01: ask the operator of this server to extend the trial or activate the tenant
	// tenant is not registered with this server
}

func ExampleRegistry_Update() {
	ctx := context.Background()
	reg := registry.New(registry.NewMemoryStore(), nil)
	rec, _ := reg.Add(ctx, registry.Tenant{Issuer: "https://login.example.com/", ExternalID: "tid-42"})

	_, err := reg.Update(ctx, rec.ID, func(t *registry.Tenant) error {
		t.Status = registry.StatusSuspended
		return nil
	})
	fmt.Println(err)

	_, err = reg.Resolve(ctx, "https://login.example.com/", "tid-42")
	fmt.Println(err)
	// Output:
	// <nil>
	// tenant is suspended: contact the operator of this server
}
