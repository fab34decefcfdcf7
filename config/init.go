package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInitOptions is returned by InitTemplate for options it cannot turn into
// a valid configuration.
var ErrInitOptions = errors.New("config: invalid init options")

// InitOptions are the choices of `tenantmcp init`.
type InitOptions struct {
	// Provider is the identity provider preset: auth0, cognito, entra or
	// generic. Required.
	Provider string
	// MultiTenant turns on [auth.multi_tenant].
	MultiTenant bool
	// Isolation is the tenant isolation strategy; "" leaves the default
	// (database_per_tenant without a database, row_level_security with one).
	Isolation string
	// Domain is the provider's domain; "" writes a placeholder to replace
	// (Entra multi-tenant: "organizations").
	Domain string
	// Audience is the token audience; "" keeps the default (the resource
	// URL), except for Cognito, where "" writes a placeholder app client id.
	Audience string
	// DatabaseDSN is the PostgreSQL URL; "" writes a placeholder when the
	// isolation needs PostgreSQL and leaves the key commented out otherwise.
	DatabaseDSN string
}

const (
	placeholderAudience = "your-app-client-id"
	placeholderDSN      = "postgres://tenantmcp:change-me@localhost:5432/tenantmcp?sslmode=disable"
	placeholderClaim    = "tenant_id"
)

func placeholderDomain(provider string, multi bool) string {
	switch provider {
	case ProviderCognito:
		return "cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
	case ProviderEntra:
		if multi {
			return "organizations"
		}
		return "00000000-0000-0000-0000-000000000000"
	case ProviderGeneric:
		return "idp.example.com"
	}
	return "your-tenant.auth0.com"
}

// InitTemplate returns a commented starter deploy.toml for o: every section
// and key explained, the keys o decides set, the others commented out at
// their defaults, and a "TODO" beside each placeholder the user must
// replace. The result always loads and validates; options that cannot
// (an unknown provider or isolation, a malformed domain) return an error
// matching ErrInitOptions.
func InitTemplate(o InitOptions) ([]byte, error) {
	if !slices.Contains(Providers, o.Provider) {
		return nil, fmt.Errorf("%w: provider %q is not one of %s", ErrInitOptions, o.Provider, strings.Join(Providers, ", "))
	}
	if o.Isolation != "" && !slices.Contains(Isolations, o.Isolation) {
		return nil, fmt.Errorf("%w: isolation %q is not one of %s", ErrInitOptions, o.Isolation, strings.Join(Isolations, ", "))
	}

	// set maps a key to its literal; todo marks placeholders.
	set := map[string]string{}
	todo := map[string]string{}
	set["auth.enabled"] = "true"
	set["auth.provider"] = tomlQuote(o.Provider)
	if o.Domain != "" {
		set["auth.domain"] = tomlQuote(o.Domain)
	} else {
		set["auth.domain"] = tomlQuote(placeholderDomain(o.Provider, o.MultiTenant))
		if !(o.Provider == ProviderEntra && o.MultiTenant) {
			todo["auth.domain"] = "TODO: your identity provider's domain"
		}
	}
	switch {
	case o.Audience != "":
		set["auth.audience"] = tomlQuote(o.Audience)
	case o.Provider == ProviderCognito:
		set["auth.audience"] = tomlQuote(placeholderAudience)
		todo["auth.audience"] = "TODO: the Cognito app client id"
	}
	set["auth.multi_tenant.enabled"] = fmt.Sprint(o.MultiTenant)
	if p, _ := LookupPreset(o.Provider); p.TenantClaim != "" {
		set["auth.multi_tenant.tenant_claim"] = tomlQuote(p.TenantClaim)
	} else if o.MultiTenant {
		set["auth.multi_tenant.tenant_claim"] = tomlQuote(placeholderClaim)
		todo["auth.multi_tenant.tenant_claim"] = "TODO: the claim that carries the tenant id"
	}
	if o.Isolation != "" {
		set["auth.multi_tenant.isolation"] = tomlQuote(o.Isolation)
	}
	d := Default()
	set["auth.multi_tenant.default_rate_limit"] = keyByPath["auth.multi_tenant.default_rate_limit"].literal(d)
	switch {
	case o.DatabaseDSN != "":
		set["database.dsn"] = tomlQuote(o.DatabaseDSN)
	case o.Isolation == IsolationRLS || o.Isolation == IsolationSchema:
		set["database.dsn"] = tomlQuote(placeholderDSN)
		todo["database.dsn"] = "TODO: your PostgreSQL URL (or TENANTMCP_DATABASE_DSN)"
	}

	var b strings.Builder
	b.WriteString("# tenantmcp deployment configuration (deploy.toml).\n")
	fmt.Fprintf(&b, "# Written by: tenantmcp init %s\n", initCommand(o))
	b.WriteString("#\n")
	b.WriteString("# Keys left commented out show their defaults. Any key can also be set by an\n")
	b.WriteString("# environment variable, TENANTMCP_ + the key path in upper case with \".\" as \"_\"\n")
	b.WriteString("# (TENANTMCP_AUTH_DOMAIN, TENANTMCP_DATABASE_DSN, ...), which wins over this file.\n")
	b.WriteString("# Full reference: docs/configuration.md.\n")
	if len(todo) > 0 {
		b.WriteString("#\n# Replace every value marked TODO before deploying.\n")
	}

	section := ""
	for i := range keyTable {
		k := &keyTable[i]
		if s := k.section(); s != section {
			section = s
			b.WriteString("\n")
			writeComment(&b, sectionDoc(s))
			fmt.Fprintf(&b, "[%s]\n", s)
		}
		b.WriteString("\n")
		writeComment(&b, k.doc)
		if v, ok := set[k.path]; ok {
			fmt.Fprintf(&b, "%s = %s", k.name(), v)
			if t := todo[k.path]; t != "" {
				fmt.Fprintf(&b, "  # %s", t)
			}
			b.WriteString("\n")
		} else {
			fmt.Fprintf(&b, "# %s = %s\n", k.name(), k.literal(d))
		}
	}
	out := []byte(b.String())
	if _, err := Parse(out, nil); err != nil {
		return nil, fmt.Errorf("%w: the result would not validate:\n%w", ErrInitOptions, err)
	}
	return out, nil
}

func initCommand(o InitOptions) string {
	parts := []string{"--oauth " + o.Provider}
	if o.MultiTenant {
		parts = append(parts, "--multi-tenant")
	}
	if o.Isolation != "" {
		parts = append(parts, "--isolation "+o.Isolation)
	}
	if o.Domain != "" {
		parts = append(parts, "--domain "+strings.NewReplacer("\n", " ", "\r", " ").Replace(o.Domain))
	}
	return strings.Join(parts, " ")
}

func sectionDoc(path string) string {
	for _, s := range sectionDocs {
		if s.path == path {
			return s.doc
		}
	}
	return ""
}

// writeComment writes text as "# " lines wrapped at 80 columns, without
// the Markdown backticks of the reference docs.
func writeComment(b *strings.Builder, text string) {
	text = strings.ReplaceAll(text, "`", "")
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && 2+len(line)+1+len(w) > 80 {
			fmt.Fprintf(b, "# %s\n", line)
			line = ""
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	if line != "" {
		fmt.Fprintf(b, "# %s\n", line)
	}
}
