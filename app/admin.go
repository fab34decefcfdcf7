package app

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"slices"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/server"
)

// AdminService returns the admin operations over this deployment's
// registry, recording into aud (nil = no audit trail). The CLI passes the
// auditor of CommandAuditor; the server its own audit writer.
func (a *App) AdminService(ctx context.Context, aud admin.Auditor) (*admin.Service, error) {
	if a.adminStore == nil {
		st, err := a.openAdminStore(ctx)
		if err != nil {
			return nil, fmt.Errorf("admin store: %w", err)
		}
		a.onClose(st.Close)
		a.adminStore = st
	}
	cfg := a.Config
	var lc *lifecycle.Manager
	if a.Stores != nil { // opened with Open: tenants get storage, archives work
		var err error
		if lc, err = a.Lifecycle(ctx, aud); err != nil {
			return nil, err
		}
	}
	return admin.NewService(admin.Options{
		Registry:            a.Registry,
		Store:               a.adminStore,
		Audit:               aud,
		Lifecycle:           lc,
		Issuer:              a.Issuer(),
		ImpersonationTTL:    cfg.Admin.ImpersonationTTL,
		MaxImpersonationTTL: cfg.Admin.MaxImpersonationTTL,
		ReadOnlyScopes:      readOnlyScopes(a.Tools()),
		AdminScopes:         []string{cfg.Admin.Scope},
		Tools:               toolNames(a.Tools()),
		Logger:              a.log,
	})
}

// toolNames are the names of the tools served.
func toolNames(tools []server.Tool) []string {
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	slices.Sort(names)
	return names
}

// readOnlyScopes are the scopes the read-only tools require: what an
// impersonation grants unless the admin asks for others.
func readOnlyScopes(tools []server.Tool) []string {
	var out []string
	for _, t := range tools {
		if !t.ReadOnly {
			continue
		}
		for _, s := range t.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// CommandAuditor returns the auditor a CLI command's admin operations
// record into, and a function that writes what was recorded (call it
// before the command exits; it reports an event it could not write).
// With audit.enabled = false it returns nil and a no-op.
func (a *App) CommandAuditor(ctx context.Context) (admin.Auditor, func() error, error) {
	if a.audit == nil {
		return nil, func() error { return nil }, nil
	}
	key, err := AuditKey(a.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("audit signing key: %w", err)
	}
	w, err := audit.NewWriter(a.audit, key, &audit.WriterOptions{Logger: a.log})
	if err != nil {
		return nil, nil, err
	}
	return w, func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Config.Audit.StoreTimeout)
		defer cancel()
		if err := w.Close(cctx); err != nil {
			return fmt.Errorf("audit: the change was made but its audit event may not be stored: %w", err)
		}
		return nil
	}, nil
}

// CLIPrincipal is the admin a CLI command acts as: the operating-system
// user.
func CLIPrincipal() admin.Principal {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return admin.Principal{Subject: "cli:" + name, Via: admin.ViaCLI}
}

// adminSharesIssuer reports whether admins sign in at the tenants'
// identity provider: then its tokens may lack the tenant claim (an
// admin's), and the tenant verifier must let them through to the server.
func (a *App) adminSharesIssuer() bool {
	cfg := a.Config
	return a.adminEnabled() && cfg.Auth.MultiTenant.Enabled && (a.opts.Dev != nil || !cfg.SeparateAdminIssuer())
}

// adminEnabled reports whether the server serves admins.
func (a *App) adminEnabled() bool {
	cfg := a.Config
	switch {
	case !cfg.Admin.Enabled:
		return false
	case a.opts.Dev != nil:
		return true
	case !cfg.Auth.Enabled:
		return false
	}
	return cfg.AdminWithoutIssuer() == ""
}

// adminOptions enables administration on the server when admin.enabled:
// the admin tools and API over the admin service, impersonation, and the
// admin issuer's verifier when admins have one of their own. It returns a
// cleanup for the verifier.
func (a *App) adminOptions(ctx context.Context, opts *server.Options, aud *audit.Writer) (func(), error) {
	cfg := a.Config
	if !a.adminEnabled() {
		if why := cfg.AdminWithoutIssuer(); why != "" && a.opts.Dev == nil {
			a.log.Warn(why)
		}
		return func() {}, nil
	}
	var auditor admin.Auditor
	if aud != nil {
		auditor = aud
	}
	svc, err := a.AdminService(ctx, auditor)
	if err != nil {
		return nil, err
	}
	ao := &server.AdminOptions{
		Issuer:        a.Issuer(),
		Scope:         cfg.Admin.Scope,
		Tools:         admin.Tools(svc),
		API:           admin.Handler(svc),
		Impersonation: svc,
	}
	cleanup := func() {}
	if cfg.SeparateAdminIssuer() && a.opts.Dev == nil {
		v, err := auth.NewVerifier(ctx, &auth.Options{
			Issuer:     cfg.Admin.Issuer,
			Audience:   cfg.EffectiveAdminAudience(),
			JWKSURL:    cfg.EffectiveAdminJWKSURL(),
			Algorithms: cfg.Auth.Algorithms,
			Claims:     auth.ClaimMap{User: "sub", Scopes: []string{"scope", "scp", "permissions", "roles"}},
			DropClaims: true,
			Logger:     a.log,
		})
		if err != nil {
			return nil, fmt.Errorf("admin token verifier: %w", err)
		}
		ao.Verifier, ao.Issuer, cleanup = v, cfg.Admin.Issuer, v.Close
	}
	if ao.Issuer == "" {
		return nil, errors.New("admin: no admin issuer: set auth.issuer (or admin.issuer)")
	}
	opts.Admin = ao
	if a.consoleEnabled() {
		closeConsole, err := a.mountConsole(opts, svc)
		if err != nil {
			cleanup()
			return nil, err
		}
		closeVerifier := cleanup
		cleanup = func() { closeConsole(); closeVerifier() }
	}
	return cleanup, nil
}
