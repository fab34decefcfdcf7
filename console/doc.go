// Package console is the operator console: server-rendered HTML pages
// under /console/, embedded in the binary (templates/*.html, assets/*), with
// no script and no build step.
//
// Operators sign in at the admin identity provider with OpenID Connect
// authorization code + PKCE (S256); the access token received is checked
// by the server's own admin authentication (server.Server.AuthenticateAdmin),
// so the console admits exactly who the admin API admits. A valid sign-in
// without admin rights gets the "no admin access" page and nothing else.
// Sessions live in memory on the replica that signed the operator in
// (a multi-replica deployment needs sticky sessions, or operators sign in
// on each replica); the cookie carries only a random id. Every change is
// a POST with the session's CSRF token and a same-origin Origin or
// Sec-Fetch-Site header, goes through admin.Service and is audited with
// the operator's identity (admin.ViaConsole).
//
// # Mounting
//
//	c, err := console.New(console.Options{
//		Service:       svc,            // *admin.Service
//		Authenticator: lateServer,     // the *server.Server, once built
//		Issuer:        "https://login.example.com",
//		ClientID:      "tenantmcp-console",
//		RedirectURL:   "https://mcp.example.com/console/callback",
//		Resource:      "https://mcp.example.com/mcp",
//	})
//	routes[console.Path] = c // server.Options.Routes
//
// # Adding a page
//
//  1. Write the handler in a file of its own as a pageFunc,
//     func(w http.ResponseWriter, r *http.Request, s *session), and mount
//     it from that file's routes method (see auditRoutes in audit.go),
//     called from Console.routes: mux.Handle("GET /console/x", c.admin(h)).
//     c.admin sends visitors without a session to the sign-in, sessions
//     without admin rights to the "no admin access" page, and checks CSRF
//     on every method but GET and HEAD (after which r.PostForm is parsed).
//  2. Write templates/x.html defining "title" and "content"; render it with
//     c.render(w, r, s, http.StatusOK, "x", "Nav entry", data). The page
//     gets view: .Data is data, .CSRF the token every form must send
//     ({{template "csrf" .CSRF}}), .Flash a message set by the previous
//     change. Partials shared by pages are templates/_*.html
//     ("problems", "csrf", "status", "tenantname").
//  3. Every form that changes something is method="post", includes the
//     csrf field, and ends with c.redirect (POST-redirect-GET) or, for
//     validation problems, re-renders the form with status 422.
//  4. Every operation goes through Options.Service with s.principal(), so
//     it is audited as the operator. Errors meant for the operator
//     (admin.CallerError) are shown; others go to c.internalError, which
//     logs them and shows only an error id.
//  5. A navigation entry is a line in navEntries (render.go).
//  6. Template functions of a page's own go in its file's FuncMap (see
//     chartFuncs); funcs merges them.
//  7. Test it in a _test.go of its own with setup(t) from console_test.go:
//     no session, a tenant user's session, CSRF, and what another tenant
//     sees.
//
// Headers on every response: Content-Security-Policy (default-src 'self',
// no inline script or style, frame-ancestors 'none'), X-Frame-Options DENY,
// Referrer-Policy no-referrer, nosniff; pages are Cache-Control no-store.
package console
