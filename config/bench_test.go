package config

import "testing"

// BenchmarkParseTemplate loads a full commented starter file (every key).
func BenchmarkParseTemplate(b *testing.B) {
	data, err := InitTemplate(InitOptions{Provider: ProviderAuth0, MultiTenant: true, Domain: "acme.auth0.com"})
	if err != nil {
		b.Fatal(err)
	}
	env := []string{"TENANTMCP_LOG_LEVEL=debug", "PATH=/usr/bin"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseErrors loads a file with ten problems, each located by line.
func BenchmarkParseErrors(b *testing.B) {
	data := []byte(`[server]
listen = "8080"
max_body_bytes = "1MB"
[auth]
provider = "okta"
domian = "x"
algorithms = ["HS256", "none"]
[auth.multi_tenant]
isolation = "rls"
[logging]
level = 1
[log]
level = "loud"
`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, nil); err == nil {
			b.Fatal("no error")
		}
	}
}
