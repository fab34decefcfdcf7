package config

import (
	"errors"
	"fmt"
	"net/url"
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
	// DatabaseDSN is the PostgreSQL URL the server connects with, as the
	// application role "db setup" creates; "" writes a placeholder when
	// the isolation needs PostgreSQL and leaves the key commented out
	// otherwise.
	DatabaseDSN string
}

const (
	placeholderAudience = "your-app-client-id"
	// placeholderDSN logs in as tenantmcp_app: the application role "db
	// setup" creates for the database tenantmcp (<database>_app).
	placeholderDSN   = "postgres://tenantmcp_app:change-me@localhost:5432/tenantmcp?sslmode=disable"
	placeholderClaim = "tenant_id"
)

// usesPostgres reports whether the file InitTemplate(o) writes keeps its
// registry (and, for RLS or schema isolation, tenant data) in PostgreSQL.
func (o InitOptions) usesPostgres() bool {
	return o.DatabaseDSN != "" || o.Isolation == IsolationRLS || o.Isolation == IsolationSchema
}

// Step is one thing to do after init: a command to run (Command) and
// why, or with Command empty, an instruction (Note).
type Step struct {
	Command string
	Note    string
}

// NextSteps are the steps that take the file InitTemplate(o) writes at
// path into service, in the order they must run: filling in placeholders,
// "db setup" (PostgreSQL only), "tenant create" (multi-tenant only) and
// "serve". command is how the user runs tenantmcp ("tenantmcp").
func NextSteps(o InitOptions, command, path string) []Step {
	var steps []Step
	if _, todo := initKeys(o); len(todo) > 0 {
		steps = append(steps, Step{Note: "Replace the values marked TODO in " + path + "."})
	}
	if o.usesPostgres() {
		steps = append(steps, Step{
			Command: fmt.Sprintf("%s db setup --config %s --admin-dsn %s --app-password \"$APP_PASSWORD\"", command, path, adminPlaceholder(o.DatabaseDSN)),
			Note: "Creates the roles and tables, connected as a PostgreSQL administrator. tenant create and serve then log in as the application role " +
				"with that password: put it in database.dsn or in PGPASSWORD.",
		})
		if o.Isolation == IsolationSchema {
			steps = append(steps, Step{Note: "Set TENANTMCP_DATABASE_ADMIN_DSN (or database.admin_dsn) for tenant create: it creates each tenant's schema as the administrator."})
		}
	}
	if o.MultiTenant {
		steps = append(steps, Step{
			Command: fmt.Sprintf("%s tenant create --config %s --external-id TENANT_ID --name NAME", command, path),
			Note:    fmt.Sprintf("Once per customer organisation; TENANT_ID is the %s its tokens carry.", tenantClaimOf(o)),
		})
	}
	return append(steps, Step{
		Command: fmt.Sprintf("%s serve --config %s", command, path),
		Note:    "GET /healthz answers while the process runs, GET /readyz once it can serve: point your load balancer's probes at them.",
	})
}

// adminPlaceholder is dsn with ADMIN for its user: where db setup must
// connect, as an administrator, to prepare the server's database.
func adminPlaceholder(dsn string) string {
	if dsn == "" {
		dsn = placeholderDSN
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://ADMIN@HOST:5432/DBNAME"
	}
	u.User = url.User("ADMIN")
	return u.String()
}

func tenantClaimOf(o InitOptions) string {
	if p, _ := LookupPreset(o.Provider); p.TenantClaim != "" {
		return p.TenantClaim
	}
	return "tenant claim"
}

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

	set, todo := initKeys(o)
	d := Default()
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
	b.WriteString("#\n# Then, in this order:\n")
	steps := NextSteps(o, "tenantmcp", "deploy.toml")
	if len(todo) > 0 {
		steps = steps[1:] // replacing the TODOs, said above
	}
	for i, step := range steps {
		prefix := fmt.Sprintf("#   %d. ", i+1)
		if step.Command != "" {
			fmt.Fprintf(&b, "%s%s\n", prefix, step.Command)
			prefix = "#      "
		}
		writeIndented(&b, prefix, "#      ", step.Note)
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

// initKeys are the keys the file InitTemplate(o) writes sets: set maps
// each to its TOML literal, todo marks the placeholders among them with
// what to put there.
func initKeys(o InitOptions) (set, todo map[string]string) {
	set = map[string]string{}
	todo = map[string]string{}
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
	case o.usesPostgres():
		set["database.dsn"] = tomlQuote(placeholderDSN)
		todo["database.dsn"] = "TODO: your PostgreSQL URL, as the application role db setup creates, <database>_app (or TENANTMCP_DATABASE_DSN)"
	}
	return set, todo
}

func initCommand(o InitOptions) string {
	parts := []string{"--oauth " + o.Provider}
	if o.MultiTenant {
		parts = append(parts, "--multi-tenant")
	}
	if o.Isolation != "" {
		parts = append(parts, "--isolation "+o.Isolation)
	}
	oneLine := strings.NewReplacer("\n", " ", "\r", " ")
	if o.Domain != "" {
		parts = append(parts, "--domain "+oneLine.Replace(o.Domain))
	}
	if o.DatabaseDSN != "" {
		shown := "(not a URL)"
		if u, err := url.Parse(o.DatabaseDSN); err == nil {
			shown = u.Redacted()
		}
		parts = append(parts, "--database "+oneLine.Replace(shown))
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

// writeIndented writes text wrapped at 80 columns, its first line after
// first and the others after rest.
func writeIndented(b *strings.Builder, first, rest, text string) {
	line, prefix := "", first
	for _, w := range strings.Fields(text) {
		if line != "" && len(prefix)+len(line)+1+len(w) > 80 {
			fmt.Fprintf(b, "%s%s\n", prefix, line)
			line, prefix = "", rest
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	if line != "" {
		fmt.Fprintf(b, "%s%s\n", prefix, line)
	}
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
