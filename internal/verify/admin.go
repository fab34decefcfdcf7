package verify

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/server"
)

// adminToolNames are the admin tools of this build, which no tenant token
// may reach (a server's own list, from an admin's tools/list, is used
// when there is an admin token).
func adminToolNames() []string {
	var names []string
	for _, t := range admin.Tools(nil) {
		names = append(names, t.Name)
	}
	return names
}

// callableAdminTools are the admin tools tenants try to call: the ones
// that read, and impersonation (which would hand B a credential); none
// that would change a tenant if a broken server let it through.
var callableAdminTools = []string{"list_all_tenants", "get_tenant", "list_impersonations", "impersonate_tenant"}

// checkAdmin: the admin API and the admin MCP tools refuse tenant tokens;
// with an admin token, they serve it.
func (v *run) checkAdmin(ctx context.Context) {
	v.checkAdminAPI(ctx)
	v.checkAdminTools(ctx)
}

func (v *run) checkAdminAPI(ctx context.Context) {
	const id, attack = "admin-api", "tenant tokens on the admin API (" + server.AdminAPIPath + "tenants, impersonations)"
	ctx = withCheck(ctx, id)
	var leaks, errs, seen []string
	notServed := true
	for _, path := range []string{server.AdminAPIPath + "tenants", server.AdminAPIPath + "impersonations"} {
		u := v.originURL(path)
		for _, who := range []struct{ name, token string }{{"A", v.tokA}, {"B", v.tokB}, {"no token", ""}} {
			r, err := v.send(ctx, v.httpB, http.MethodGet, u, who.token, nil, nil)
			if err != nil {
				errs = append(errs, fmt.Sprintf("GET %s as %s: %v", path, who.name, err))
				continue
			}
			seen = append(seen, fmt.Sprintf("%s as %s: %d", path, who.name, r.status))
			notServed = notServed && r.status == http.StatusNotFound
			switch r.status {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			default:
				if r.status < 500 {
					leaks = append(leaks, fmt.Sprintf("GET %s with %s's token: %s", path, who.name, r.describe()))
				}
			}
		}
	}
	extra := ""
	if v.opts.AdminToken != "" {
		u := v.originURL(server.AdminAPIPath + "tenants")
		r, err := v.send(ctx, v.httpA, http.MethodGet, u, v.opts.AdminToken, nil, nil)
		switch {
		case err != nil:
			v.add(id, attack, StatusError, "the admin token on GET %s: %v", u, err)
			return
		case r.status != http.StatusOK:
			v.add(id, attack, StatusError, "the admin token is refused by GET %s (%s), so the refusals of tenant tokens prove nothing; is it an admin token of this deployment?", u, r.describe())
			return
		}
		extra = "; the admin token is served (200)"
	}
	pass := "refused: " + strings.Join(seen, ", ") + extra
	if notServed && v.opts.AdminToken == "" {
		pass = "the admin API is not served here (404 for every path and token)"
	}
	v.verdict(id, attack, leaks, errs, pass)
}

func (v *run) checkAdminTools(ctx context.Context) {
	const id, attack = "admin-tools", "tenant tokens call the admin MCP tools (list_all_tenants, impersonate_tenant, ...)"
	if !v.connected {
		return
	}
	ctx = withCheck(ctx, id)
	names := adminToolNames()
	extra := ""
	if v.opts.AdminToken != "" {
		adm, err := dial(ctx, v.url, v.opts.AdminToken, v.httpA, "", v.opts.Timeout)
		if err != nil {
			v.add(id, attack, StatusError, "cannot connect to %s over MCP with the admin token: %v", v.url, err)
			return
		}
		defer adm.close()
		tools, err := adm.tools(ctx)
		if err != nil {
			v.add(id, attack, StatusError, "tools/list with the admin token: %v", err)
			return
		}
		if len(tools) > 0 {
			names = nil
			for _, t := range tools {
				names = append(names, t.Name)
			}
		}
		if slices.Contains(names, "list_all_tenants") {
			res, err := adm.call(ctx, "list_all_tenants", map[string]any{}, nil)
			if err != nil || !res.ran() {
				why := "unreachable"
				if err == nil {
					why = res.describe()
				}
				v.add(id, attack, StatusError, "list_all_tenants with the admin token: %s, so the refusals of tenant tokens prove nothing", why)
				return
			}
			extra = "; the admin token is served list_all_tenants"
		}
	}
	var leaks, errs []string
	for _, who := range []struct {
		name  string
		tools []toolInfo
		c     *mcpClient
	}{{"A", v.toolsA, v.a}, {"B", v.toolsB, v.b}} {
		for _, t := range who.tools {
			if slices.Contains(names, t.Name) {
				leaks = append(leaks, fmt.Sprintf("%s's tools/list shows admin tool %s", who.name, t.Name))
			}
		}
		for _, name := range callableAdminTools {
			args := map[string]any{}
			if len(v.tenantValues) > 0 {
				args = map[string]any{"id": v.tenantValues[0], "tenant": v.tenantValues[0], "reason": "tenantmcp verify: must be refused"}
			}
			res, err := who.c.call(ctx, name, args, nil)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s's call of %s failed: %v", who.name, name, err))
				continue
			}
			if res.refused == nil {
				leaks = append(leaks, fmt.Sprintf("%s's call of admin tool %s ran (%s)", who.name, name, res.describe()))
			}
		}
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("no admin tool in A's or B's tools/list (%d admin tools); A's and B's calls of %s were refused%s",
		len(names), strings.Join(callableAdminTools, ", "), extra))
}

// publicPaths are paths that must not be served on the public URL, and
// how to tell their content.
var publicPaths = []struct {
	path, what string
	looks      func(string) bool
}{
	{"/metrics", "Prometheus metrics", func(b string) bool { return strings.Contains(b, "# TYPE ") || strings.Contains(b, "# HELP ") }},
	{"/debug/pprof/", "pprof profiles", func(b string) bool { return strings.Contains(b, "goroutine") && strings.Contains(b, "heap") }},
	{"/debug/vars", "expvar variables", func(b string) bool { return strings.Contains(b, "memstats") || strings.Contains(b, "cmdline") }},
}

// checkPublicEndpoints: metrics (every tenant's activity) and debug
// endpoints are not served on the public URL.
func (v *run) checkPublicEndpoints(ctx context.Context) {
	const id, attack = "metrics", "metrics and debug endpoints on the public URL (/metrics, /debug/pprof/, /debug/vars)"
	var leaks, errs, seen []string
	for _, p := range publicPaths {
		for _, path := range dedupe([]string{p.path, strings.TrimSuffix(v.mcpPath, "/") + p.path}) {
			for _, tok := range []string{"", v.tokA} {
				r, err := v.send(ctx, v.httpA, http.MethodGet, v.originURL(path), tok, http.Header{"Accept": {"*/*"}}, nil)
				if err != nil {
					errs = append(errs, fmt.Sprintf("GET %s: %v", path, err))
					continue
				}
				if tok == "" {
					seen = append(seen, fmt.Sprintf("%s: %d", path, r.status))
				}
				if r.status == http.StatusOK && p.looks(string(r.body)) {
					who := "without a token"
					if tok != "" {
						who = "with A's token"
					}
					leaks = append(leaks, fmt.Sprintf("GET %s %s serves %s", path, who, p.what))
				}
			}
		}
	}
	v.verdict(id, attack, leaks, errs, "not served: "+strings.Join(seen, ", ")+" (also with A's token)")
}
