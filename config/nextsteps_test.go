package config

import (
	"strings"
	"testing"
)

// TestNextSteps: the steps after init are in the order they must run, and
// only those the deployment needs; the file's header lists the same.
func TestNextSteps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    InitOptions
		want []string // the start of each step, in order
	}{
		{"sqlite", InitOptions{Provider: ProviderAuth0, MultiTenant: true, Domain: "acme.eu.auth0.com"},
			[]string{"tm tenant create --config d.toml", "tm serve --config d.toml"}},
		{"placeholder domain", InitOptions{Provider: ProviderAuth0, MultiTenant: true},
			[]string{"Replace the values marked TODO in d.toml", "tm tenant create", "tm serve"}},
		{"single tenant", InitOptions{Provider: ProviderAuth0, Domain: "acme.eu.auth0.com"},
			[]string{"tm serve"}},
		{"rls", InitOptions{Provider: ProviderAuth0, MultiTenant: true, Domain: "acme.eu.auth0.com", Isolation: IsolationRLS, DatabaseDSN: "postgres://acme_app@db:5432/acme?sslmode=require"},
			[]string{`tm db setup --config d.toml --admin-dsn postgres://ADMIN@db:5432/acme?sslmode=require --app-password "$APP_PASSWORD"`, "tm tenant create", "tm serve"}},
		{"rls placeholder", InitOptions{Provider: ProviderAuth0, MultiTenant: true, Domain: "acme.eu.auth0.com", Isolation: IsolationRLS},
			[]string{"Replace the values marked TODO", "tm db setup --config d.toml --admin-dsn postgres://ADMIN@localhost:5432/tenantmcp", "tm tenant create", "tm serve"}},
		{"schema", InitOptions{Provider: ProviderEntra, MultiTenant: true, Isolation: IsolationSchema, DatabaseDSN: "postgres://db/acme"},
			[]string{"tm db setup", "Set TENANTMCP_DATABASE_ADMIN_DSN", "tm tenant create", "tm serve"}},
		{"registry in postgres", InitOptions{Provider: ProviderAuth0, MultiTenant: true, Domain: "acme.eu.auth0.com", Isolation: IsolationDatabase, DatabaseDSN: "postgres://db/acme"},
			[]string{"tm db setup", "tm tenant create", "tm serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps := NextSteps(tt.o, "tm", "d.toml")
			if len(steps) != len(tt.want) {
				t.Fatalf("%d steps, want %d: %+v", len(steps), len(tt.want), steps)
			}
			for i, s := range steps {
				text := s.Command
				if text == "" {
					text = s.Note
				}
				if !strings.HasPrefix(text, tt.want[i]) {
					t.Errorf("step %d = %q, want it to start with %q", i+1, text, tt.want[i])
				}
			}
			out, err := InitTemplate(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			header, _, _ := strings.Cut(string(out), "\n[server]")
			if got := strings.Contains(header, "tenantmcp db setup --config deploy.toml"); got != strings.Contains(strings.Join(tt.want, "\n"), "db setup") {
				t.Errorf("header lists db setup = %v:\n%s", got, header)
			}
			if !strings.Contains(header, "tenantmcp serve --config deploy.toml") {
				t.Errorf("header does not end with serve:\n%s", header)
			}
		})
	}
}

// TestEnvConfigures tells variables that configure keys from those that
// do not.
func TestEnvConfigures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  []string
		want bool
	}{
		{nil, false},
		{[]string{"HOME=/root", "PGPASSWORD=x"}, false},
		{[]string{"TENANTMCP_CONFIG=deploy.toml", "TENANTMCP_APP_PASSWORD=x", "TENANTMCP_TEST_POSTGRES=postgres://x"}, false},
		{[]string{"TENANTMCP_AUTH_DOMAIN=acme.auth0.com"}, true},
		{[]string{"TENANTMCP_AUTH_DOMIAN=acme.auth0.com"}, true}, // unknown: Load reports it
	}
	for _, tt := range tests {
		if got := EnvConfigures(tt.env); got != tt.want {
			t.Errorf("EnvConfigures(%q) = %v, want %v", tt.env, got, tt.want)
		}
	}
}
