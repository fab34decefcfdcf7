package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/auth/devauth"
	"github.com/tenantmcp/tenantmcp/console"
	"github.com/tenantmcp/tenantmcp/server"
)

// consoleEnabled reports whether the server serves the operator console:
// in dev always (signing in at the dev authorization server), in serve
// when console.enabled; never without admins.
func (a *App) consoleEnabled() bool {
	return a.adminEnabled() && (a.opts.Dev != nil || a.Config.Console.Enabled)
}

// consoleOptions are the console's options over svc: the admin identity
// provider and the client registered there (in dev, the dev authorization
// server and its pre-registered console client).
func (a *App) consoleOptions(svc *admin.Service) (console.Options, error) {
	cfg := a.Config
	o := console.Options{
		Service: svc,
		// The server is built after its routes (the console among them):
		// it is there by the time a request arrives.
		Authenticator: console.AuthenticatorFunc(func(ctx context.Context, token string) (*server.AdminCaller, error) {
			srv := a.serving.Load()
			if srv == nil {
				return nil, server.ErrNoAdmin
			}
			return srv.AuthenticateAdmin(ctx, token)
		}),
		Issuer:           cfg.EffectiveAdminIssuer(),
		ClientID:         cfg.Console.ClientID,
		ClientSecret:     cfg.Console.ClientSecret,
		RedirectURL:      cfg.EffectiveConsoleRedirectURL(),
		Resource:         cfg.EffectiveAudience(),
		Scope:            cfg.Admin.Scope,
		SessionTTL:       cfg.Console.SessionTTL,
		DefaultRateLimit: cfg.Auth.MultiTenant.DefaultRateLimit,
		Tools:            toolNames(a.Tools()),
		Logger:           a.log,
	}
	if cfg.SeparateAdminIssuer() {
		o.Resource = cfg.EffectiveAdminAudience()
	}
	if dev := a.opts.Dev; dev != nil {
		u, err := url.Parse(dev.Issuer())
		if err != nil {
			return o, fmt.Errorf("console: dev issuer %q: %w", dev.Issuer(), err)
		}
		// devauth registers ConsoleClientID with the dev issuer's origin
		// + /console/callback.
		o.Issuer, o.ClientID, o.ClientSecret = dev.Issuer(), devauth.ConsoleClientID, ""
		o.RedirectURL = u.Scheme + "://" + u.Host + "/console/callback"
		o.Resource = cfg.ResourceURL()
	}
	if err := a.consoleData(&o); err != nil { // consoledata.go
		return o, err
	}
	return o, nil
}

// mountConsole adds the console to the server's routes. The returned
// function stops its background work (imports in progress finish their
// rows in flight): call it before the audit writer closes.
func (a *App) mountConsole(opts *server.Options, svc *admin.Service) (func(), error) {
	co, err := a.consoleOptions(svc)
	if err != nil {
		return nil, err
	}
	c, err := console.New(co)
	if err != nil {
		return nil, err
	}
	if opts.Routes == nil {
		opts.Routes = map[string]http.Handler{}
	}
	opts.Routes[console.Path] = c
	return func() { c.Close() }, nil
}
