// Package config loads, validates and documents a tenantmcp deployment
// configuration: a TOML file (the chapter's deploy.toml keys plus ours)
// with TENANTMCP_* environment overrides.
//
// Every problem is reported at once, each naming its key and where the value
// came from (file line or environment variable):
//
//	cfg, err := config.Load("deploy.toml", os.Environ())
//	if err != nil {
//		// auth.multi_tenant.isolation: "rls" is not one of row_level_security, ... (deploy.toml line 9)
//		// server.max_body_bytes: "1MB" is not an integer (from TENANTMCP_SERVER_MAX_BODY_BYTES)
//		return err
//	}
//	fmt.Println(cfg.ResourceURL(), cfg.EffectiveIsolation())
//
// One table of keys drives the file keys, the environment variable names,
// the unknown-key check, Keys (and so docs/configuration.md) and the
// starter file written by InitTemplate, so they cannot drift apart.
//
// The package reads only the file it is given; it never reads environment
// variables itself — callers pass os.Environ() (or a test's own list).
package config
