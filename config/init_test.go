package config

import (
	"errors"
	"strings"
	"testing"
)

var realDomains = map[string]string{
	ProviderAuth0:   "acme.eu.auth0.com",
	ProviderCognito: "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
	ProviderEntra:   "72f988bf-86f1-41af-91ab-2d7cd011db47",
	ProviderGeneric: "login.acme.example",
}

func TestInitTemplateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, provider := range Providers {
		for _, isolation := range append([]string{""}, Isolations...) {
			for _, multi := range []bool{true, false} {
				for _, withDomain := range []bool{true, false} {
					o := InitOptions{Provider: provider, MultiTenant: multi, Isolation: isolation}
					if withDomain {
						o.Domain = realDomains[provider]
					}
					name := strings.Join([]string{provider, isolation, map[bool]string{true: "multi", false: "single"}[multi],
						map[bool]string{true: "domain", false: "placeholder"}[withDomain]}, "/")
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						checkTemplate(t, o)
					})
				}
			}
		}
	}
}

func checkTemplate(t *testing.T, o InitOptions) {
	t.Helper()
	out, err := InitTemplate(o)
	if err != nil {
		t.Fatalf("InitTemplate(%+v): %v", o, err)
	}
	cfg, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("template does not load: %v\n%s", err, out)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("loaded template does not validate: %v", err)
	}
	a := cfg.Auth
	if !a.Enabled || a.Provider != o.Provider || a.MultiTenant.Enabled != o.MultiTenant {
		t.Errorf("auth = %+v, want provider %s multi %v", a, o.Provider, o.MultiTenant)
	}
	if o.Domain != "" && a.Domain != o.Domain {
		t.Errorf("domain = %q, want %q", a.Domain, o.Domain)
	}
	if o.Isolation != "" && cfg.EffectiveIsolation() != o.Isolation {
		t.Errorf("isolation = %q, want %q", cfg.EffectiveIsolation(), o.Isolation)
	}
	if o.Isolation == "" && cfg.EffectiveIsolation() != IsolationDatabase {
		t.Errorf("default isolation = %q", cfg.EffectiveIsolation())
	}
	if p, _ := LookupPreset(o.Provider); p.TenantClaim != "" && cfg.EffectiveTenantClaim() != p.TenantClaim {
		t.Errorf("tenant claim = %q, want the preset's %q", cfg.EffectiveTenantClaim(), p.TenantClaim)
	}
	text := string(out)
	// Every section has a header and an explanation; every key appears,
	// set or commented out, after its own comment.
	for _, s := range sectionDocs {
		if !strings.Contains(text, "\n["+s.path+"]\n") {
			t.Errorf("section [%s] missing", s.path)
		}
	}
	lines := strings.Split(text, "\n")
	section := ""
	found := map[string]bool{}
	for i, l := range lines {
		if strings.HasPrefix(l, "[") {
			section = strings.Trim(l, "[]")
		}
		name, _, ok := strings.Cut(strings.TrimPrefix(l, "# "), " = ")
		if ok && i > 0 && strings.HasPrefix(lines[i-1], "# ") && keyByPath[section+"."+name] != nil {
			found[section+"."+name] = true
		}
	}
	for _, k := range keyTable {
		if !found[k.path] {
			t.Errorf("key %s missing or without its comment", k.path)
		}
	}
	// Placeholders are marked; real values are not.
	wantTODO := o.Domain == "" && !(o.Provider == ProviderEntra && o.MultiTenant)
	if got := strings.Contains(text, "domain = ") && strings.Contains(lineOf(text, "domain = "), "TODO"); got != wantTODO {
		t.Errorf("domain TODO marker = %v, want %v:\n%s", got, wantTODO, lineOf(text, "domain = "))
	}
	if o.Provider == ProviderCognito && !strings.Contains(lineOf(text, "audience = "), "TODO") {
		t.Errorf("cognito audience placeholder not marked")
	}
	if (o.Isolation == IsolationRLS || o.Isolation == IsolationSchema) && !strings.Contains(lineOf(text, "dsn = "), "TODO") {
		t.Errorf("dsn placeholder not marked")
	}
	if o.Provider == ProviderGeneric && o.MultiTenant && !strings.Contains(lineOf(text, "tenant_claim = "), "TODO") {
		t.Errorf("generic tenant_claim placeholder not marked")
	}
	if strings.Contains(text, "TODO") != strings.Contains(text, "Replace every value marked TODO") {
		t.Errorf("TODO header and markers disagree")
	}
}

// lineOf returns the first uncommented line starting with prefix.
func lineOf(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestInitTemplateOptions(t *testing.T) {
	t.Parallel()
	out, err := InitTemplate(InitOptions{Provider: ProviderCognito, MultiTenant: true, Isolation: IsolationSchema,
		Domain: realDomains[ProviderCognito], Audience: "3n4b5urk1ft4fl3mg5e62d9ado", DatabaseDSN: "postgres://app@db/app"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "TODO") {
		t.Errorf("no placeholders expected:\n%s", out)
	}
	cfg, err := Parse(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Audience != "3n4b5urk1ft4fl3mg5e62d9ado" || cfg.Database.DSN != "postgres://app@db/app" {
		t.Errorf("options not written: %+v %+v", cfg.Auth, cfg.Database)
	}
	// A domain with characters TOML must escape round-trips or is refused,
	// never producing a broken file.
	if _, err := InitTemplate(InitOptions{Provider: ProviderGeneric, MultiTenant: false, Domain: "idp.example.com\"\n[x]"}); !errors.Is(err, ErrInitOptions) {
		t.Errorf("hostile domain: %v", err)
	}
}

func TestInitTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o    InitOptions
		want string
	}{
		{InitOptions{}, `provider "" is not one of auth0, cognito, entra, generic`},
		{InitOptions{Provider: "okta"}, `provider "okta" is not one of`},
		{InitOptions{Provider: ProviderAuth0, Isolation: "rls"}, `isolation "rls" is not one of`},
		{InitOptions{Provider: ProviderAuth0, Domain: "http://acme.auth0.com"}, `auth.domain: domain "http://acme.auth0.com": only https identity providers are supported`},
		{InitOptions{Provider: ProviderEntra, Domain: "organizations"}, `auth.domain: "organizations" accepts tokens from any Entra directory`},
		{InitOptions{Provider: ProviderAuth0, Isolation: IsolationRLS, DatabaseDSN: "mysql://db"}, `database.dsn: must be a postgres://`},
	}
	for _, tt := range tests {
		_, err := InitTemplate(tt.o)
		if !errors.Is(err, ErrInitOptions) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("InitTemplate(%+v) = %v, want ErrInitOptions containing %q", tt.o, err, tt.want)
		}
	}
}
