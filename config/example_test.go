package config_test

import (
	"errors"
	"fmt"

	"github.com/tenantmcp/tenantmcp/config"
)

func ExampleParse() {
	file := []byte(`
[auth]
provider = "auth0"
domain = "acme.eu.auth0.com"

[auth.multi_tenant]
isolation = "row_level_security"
`)
	// The environment wins over the file; the CLI passes os.Environ().
	env := []string{"TENANTMCP_DATABASE_DSN=postgres://app@db:5432/app"}
	cfg, err := config.Parse(file, env)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.ResourceURL())
	fmt.Println(cfg.EffectiveIssuer())
	fmt.Println(cfg.EffectiveTenantClaim(), cfg.EffectiveIsolation(), cfg.Auth.MultiTenant.DefaultRateLimit)
	// Output:
	// http://127.0.0.1:8080/mcp
	// https://acme.eu.auth0.com/
	// org_id row_level_security 100
}

func ExampleParse_errors() {
	file := []byte(`[server]
listen = "0.0.0.0:8080"
public_url = "https://mcp.example.com"

[auth]
provider = "auth0"
domian = "acme.eu.auth0.com"

[auth.multi_tenant]
isolation = "rls"
`)
	_, err := config.Parse(file, []string{"TENANTMCP_LOG_LEVEL=verbose"})
	fmt.Println(err)
	var problems config.Errors
	fmt.Println(errors.As(err, &problems), len(problems), errors.Is(err, config.ErrInvalid))
	// Output:
	// auth.domian: unknown key; did you mean auth.domain? (line 7)
	// auth.domain: required when auth.enabled = true: set auth.domain (or auth.issuer) to your identity provider, such as "your-tenant.auth0.com"
	// auth.multi_tenant.isolation: "rls" is not one of row_level_security, schema_per_tenant, database_per_tenant, prefix (line 10)
	// log.level: "verbose" is not one of debug, info, warn, error (from TENANTMCP_LOG_LEVEL)
	// true 4 true
}

func ExampleInitTemplate() {
	out, err := config.InitTemplate(config.InitOptions{
		Provider:    config.ProviderEntra,
		MultiTenant: true,
		Isolation:   config.IsolationDatabase,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := config.Parse(out, nil) // the starter file always loads
	fmt.Println(err, cfg.Auth.Domain, cfg.EffectiveTenantClaim(), cfg.EffectiveIssuer())
	// Output:
	// <nil> organizations tid https://login.microsoftonline.com/{tenantid}/v2.0
}
