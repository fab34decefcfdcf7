package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
)

// This file is the server's side of cross-tenant administration: telling
// admin tokens from tenant tokens, serving the admin MCP tools and the
// admin HTTP API to admins only, and serving requests made with an
// impersonation credential as the impersonated tenant.

// DefaultAdminScope is the admin scope when AdminOptions.Scope is empty.
const DefaultAdminScope = "admin:global"

// AdminAPIPath is where AdminOptions.API is mounted.
const AdminAPIPath = "/admin/v1/"

// ImpersonationPrefix starts every impersonation credential (the admin
// package's CredentialPrefix).
const ImpersonationPrefix = "tmi_"

// AdminOptions enable administration on a Server.
//
// An admin is a verified token from the admin issuer carrying the admin
// scope. When admins sign in at the tenants' identity provider (Verifier
// nil), an admin token must also carry no tenant claim: a tenant's user is
// never an admin, whatever scopes its token lists. A tenant token never
// reaches an admin tool or the admin API (403 insufficient_scope), and
// admin tools never appear in a tenant's tools/list.
type AdminOptions struct {
	// Verifier checks admin tokens from an identity provider of the
	// operator's own ([admin] issuer); tokens whose iss is Issuer go to
	// it, every other token to the tenants' Verifier. Nil means admins
	// sign in at the tenants' identity provider.
	Verifier Verifier
	// Issuer is the admin tokens' iss. Required.
	Issuer string
	// Scope is the admin scope; "" = DefaultAdminScope.
	Scope string
	// Tools are served to admins only, over MCP at the same endpoint.
	Tools []Tool
	// API, if set, is served at AdminAPIPath to admins only. Its handlers
	// find the admin with AdminFrom.
	API http.Handler
	// Impersonation, if set, authenticates impersonation credentials
	// (bearer tokens starting with ImpersonationPrefix).
	Impersonation ImpersonationAuthenticator
}

// ImpersonationAuthenticator checks an impersonation credential at the
// time of a request. Errors other than ones wrapping auth.ErrInvalidToken
// are answered as internal errors.
type ImpersonationAuthenticator interface {
	AuthenticateImpersonation(ctx context.Context, credential string) (*Impersonation, error)
}

// Impersonation is what a valid impersonation credential stands for.
type Impersonation struct {
	// ID identifies the grant (in logs and audit events).
	ID string
	// Tenant is the impersonated tenant's record. Requests are served only
	// if the registry resolves its issuer and external id to this same
	// internal id.
	Tenant *registry.Tenant
	// User is the user id the requests are made as.
	User string
	// Scopes are the scopes the credential grants.
	Scopes []string
	// ReadOnly hides and refuses every tool not marked read-only.
	ReadOnly bool
	// IncludeSuspended serves a suspended tenant.
	IncludeSuspended bool
	// Actor is the admin (the audit events' act).
	Actor audit.Actor
}

// AdminCaller is the admin a request comes from.
type AdminCaller struct {
	Identity  *auth.Identity
	RequestID string
}

type adminKey struct{}

// AdminFrom returns the admin of a request served to an admin (an admin
// tool's or the admin API's), or nil.
func AdminFrom(ctx context.Context) *AdminCaller {
	if a, ok := ctx.Value(adminKey{}).(*AdminCaller); ok {
		return a
	}
	if rq := requestFrom(ctx); rq != nil && rq.admin != nil {
		return rq.admin
	}
	return nil
}

// adminState is the server's admin configuration, built by New.
type adminState struct {
	opts  AdminOptions
	scope string
	tools map[string]*Tool
	mcp   *mcpserver.StreamableHTTPServer
}

// adminTenant stands for the tenant of requests that have none (admins'):
// code that logs rq.tenant.ID logs "".
var adminTenant = &registry.Tenant{}

func (s *Server) newAdmin(opts *AdminOptions) (*adminState, error) {
	if opts == nil {
		return nil, nil
	}
	var errs []error
	if opts.Issuer == "" {
		errs = append(errs, errors.New("server: AdminOptions.Issuer is required"))
	}
	a := &adminState{opts: *opts, scope: cmp.Or(opts.Scope, DefaultAdminScope), tools: map[string]*Tool{}}
	for i := range opts.Tools {
		t := &opts.Tools[i]
		if err := t.validate(); err != nil {
			errs = append(errs, fmt.Errorf("server: admin %w", err))
			continue
		}
		if _, dup := a.tools[t.Name]; dup {
			errs = append(errs, fmt.Errorf("server: admin tool %q registered twice", t.Name))
		}
		a.tools[t.Name] = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ms := mcpserver.NewMCPServer(s.opts.Name, s.opts.Version,
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithRecovery(),
		mcpserver.WithToolFilter(func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
			if AdminFrom(ctx) == nil {
				return nil
			}
			return tools
		}),
		mcpserver.WithCacheHints(0, mcp.CacheScopePrivate),
		mcpserver.WithHooks(auditHooks()),
	)
	for _, t := range a.tools {
		ms.AddTool(mcpTool(t), s.adminToolHandler(t))
	}
	a.mcp = mcpserver.NewStreamableHTTPServer(ms,
		mcpserver.WithEndpointPath(s.mcpPath),
		mcpserver.WithStreamableHTTPLogger(s.log),
		mcpserver.WithStateLess(true))
	return a, nil
}

// verify checks a bearer token with the verifier its issuer calls for and
// reports whether it is an admin's. An impersonation credential becomes
// the impersonated tenant's identity, its grant recorded in tr.
func (s *Server) verify(ctx context.Context, tr *trail, token string) (ident *auth.Identity, admin bool, err error) {
	a := s.admin
	if a == nil {
		ident, err = s.opts.Verifier.Verify(ctx, token)
		return ident, false, err
	}
	if strings.HasPrefix(token, ImpersonationPrefix) && a.opts.Impersonation != nil {
		ident, err = s.impersonate(ctx, tr, token)
		return ident, false, err
	}
	if a.opts.Verifier != nil && unverifiedIssuer(token) == a.opts.Issuer {
		// Chosen by the unverified iss; the admin verifier checks it again.
		ident, err = a.opts.Verifier.Verify(ctx, token)
		if err != nil {
			return nil, false, err
		}
		if !s.scopes.grants(ident.Scopes, a.scope) {
			tr.verified(ident, "")
			return nil, false, &scopeError{missing: []string{a.scope}, what: "administration"}
		}
		return ident, true, nil
	}
	ident, err = s.opts.Verifier.Verify(ctx, token)
	if err != nil {
		return nil, false, err
	}
	admin = a.opts.Verifier == nil && ident.Issuer == a.opts.Issuer && ident.TenantID == "" &&
		s.scopes.grants(ident.Scopes, a.scope)
	return ident, admin, nil
}

// tenantClaim names the claim a token without a tenant lacks, for its
// refusal: the verifier's (see auth.Options.TenantOptional), else
// "tenant".
func (s *Server) tenantClaim() string {
	if v, ok := s.opts.Verifier.(interface{ TenantClaim() string }); ok && v.TenantClaim() != "" {
		return v.TenantClaim()
	}
	return "tenant"
}

// unverifiedIssuer returns the iss claim of a JWT without verifying it, to
// choose the verifier; "" if there is none.
func unverifiedIssuer(token string) string {
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok || len(payload) > 16<<10 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}

// impersonate authenticates an impersonation credential.
func (s *Server) impersonate(ctx context.Context, tr *trail, credential string) (*auth.Identity, error) {
	imp, err := s.admin.opts.Impersonation.AuthenticateImpersonation(ctx, credential)
	if err != nil {
		return nil, err
	}
	if tr != nil {
		tr.imp = imp
	}
	return &auth.Identity{
		Issuer:   imp.Tenant.Issuer,
		TenantID: imp.Tenant.ExternalID,
		UserID:   imp.User,
		Scopes:   imp.Scopes,
	}, nil
}

// errImpersonatedTenant refuses an impersonation whose tenant was deleted
// and registered again: the new tenant is not the one the grant names.
var errImpersonatedTenant = &auth.TokenError{Reason: "impersonation credential is not valid: the tenant it was issued for no longer exists"}

// checkImpersonation applies an impersonation grant to the tenant the
// registry resolved: the same internal id, and a suspended tenant only
// when the grant includes suspended tenants.
func checkImpersonation(imp *Impersonation, rec *registry.Tenant, err error) error {
	if imp == nil {
		return err
	}
	if rec != nil && rec.ID != imp.Tenant.ID {
		return errImpersonatedTenant
	}
	if errors.Is(err, registry.ErrSuspended) && imp.IncludeSuspended && rec != nil {
		return nil
	}
	return err
}

// mayUse reports whether the request may see and call t: the tenant's
// allowed tools and flags, and, under a read-only impersonation, only
// read-only tools.
func (rq *request) mayUse(t *Tool) bool {
	if rq.imp != nil && rq.imp.ReadOnly && !t.ReadOnly {
		return false
	}
	return allowedTool(rq.tenant, t)
}

// serveAdminMCP serves an admin's MCP request: only the admin tools, no
// tenant.
func (s *Server) serveAdminMCP(w http.ResponseWriter, r *http.Request, tr *trail, ident *auth.Identity) {
	ctx := r.Context()
	var body []byte
	if r.Method == http.MethodPost {
		buf := getBuffer()
		defer putBuffer(buf)
		var err error
		body, err = readBody(w, r, buf, s.opts.MaxBodyBytes)
		if err != nil {
			s.refuseID(w, r, tr, nil, err)
			return
		}
		if isBatch(body) {
			s.refuseBody(w, r, tr, nil, errBatch)
			return
		}
		var m rpcPeek
		ok := json.Unmarshal(body, &m) == nil // else the MCP layer answers a parse error
		tr.peek, tr.peeked = m, ok
	}
	r.Header.Del(headerSessionID) // admin requests are stateless
	if !s.adminLimits.admit() {
		s.refuseBody(w, r, tr, body, errAdminBusy)
		return
	}
	defer s.adminLimits.release()
	rq := &tr.rq
	*rq = request{tenant: adminTenant, ident: ident, prefix: s.idPrefix, tr: tr, seq: tr.seq, log: s.toolLog}
	rq.admin = &AdminCaller{Identity: ident, RequestID: rq.requestID()}
	if s.opts.Audit != nil {
		slot, err := s.opts.Audit.Reserve(ctx)
		if err != nil {
			tr.noWait = true
			s.refuseBody(w, r, tr, body, err)
			return
		}
		tr.slot = slot
	}
	ctx = context.WithValue(ctx, requestKey{}, rq)
	s.metrics.admitted.Inc()
	rw := &rq.pw
	rw.w = w
	if acceptsEventStream(r.Header) {
		rw.flusher, _ = w.(http.Flusher)
	}
	r.Header.Set(headerSessionID, rq.statelessSessionID())
	rq.hr = mcpserver.HTTPRequest{Method: r.Method, URL: r.URL, Header: r.Header, Body: body, Context: ctx}
	s.admin.mcp.Handle(rw, &rq.hr)
	tr.status = rw.status
}

func (s *Server) adminToolHandler(t *Tool) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		rq := requestFrom(ctx)
		if rq == nil || rq.admin == nil {
			return nil, mcpserver.ErrToolNotFound // unreachable: the filter hides admin tools from everyone else
		}
		res, err := s.runTool(ctx, rq, t, req.Params.RawArguments)
		if err != nil {
			rq.tr.failed(toolErrorClass(ctx, err))
			return mcp.NewToolResultError(s.toolErrorMessage(ctx, rq, t, err)), nil
		}
		if res == nil {
			return mcp.NewToolResultText(""), nil
		}
		if res.Structured != nil {
			return mcp.NewToolResultStructured(res.Structured, res.Text), nil
		}
		return mcp.NewToolResultText(res.Text), nil
	}
}

// serveAdminAPI authenticates a request to the admin HTTP API and hands
// an admin's to AdminOptions.API. Refusals are audited like MCP
// refusals; the operations audit themselves.
func (s *Server) serveAdminAPI(w http.ResponseWriter, r *http.Request) {
	tr := s.newTrail()
	tr.peek.Method, tr.peeked = "admin "+r.Method+" "+clip(r.URL.Path, maxAuditName), true
	refuse := func(err error) {
		ref := s.refusalHeaders(w, r, tr, err)
		writeAPIError(w, ref.status, ref.apiCode(), ref.message)
		s.record(r, tr)
	}
	if !s.origins.allowed(r.Header.Get("Origin")) {
		refuse(errOrigin)
		return
	}
	if err := checkHeaderValues(r.Header); err != nil {
		refuse(err)
		return
	}
	if s.opts.LocalIdentity != nil {
		refuse(errNoAdminWithoutAuth)
		return
	}
	token, err := auth.BearerToken(r.Header)
	if err != nil {
		refuse(err)
		return
	}
	ident, err := s.adminIdentity(r.Context(), tr, token, "the admin API")
	if err != nil {
		refuse(err)
		return
	}
	r.Header.Del("Authorization")
	if !s.adminLimits.admit() {
		refuse(errAdminBusy)
		return
	}
	defer s.adminLimits.release()
	ac := &AdminCaller{Identity: ident, RequestID: tr.requestID(s.idPrefix)}
	s.admin.opts.API.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, ac)))
}

// adminIdentity verifies token and returns its identity if it is an
// admin's: the checks of the admin API, which AuthenticateAdmin shares.
// what names what needs admin rights, for the refusal.
func (s *Server) adminIdentity(ctx context.Context, tr *trail, token, what string) (*auth.Identity, error) {
	ident, admin, err := s.verify(ctx, tr, token)
	if err != nil {
		return nil, err
	}
	tr.verified(ident, ident.TenantID)
	if tr.imp != nil {
		// Made by an admin as this tenant: its refusal belongs in the
		// tenant's trail with both identities, like its MCP requests.
		tr.resolved(tr.imp.Tenant)
	}
	if !admin || strings.HasPrefix(token, ImpersonationPrefix) {
		return nil, &scopeError{missing: []string{s.admin.scope}, what: what}
	}
	return ident, nil
}

// ErrNotAdmin is the error of AuthenticateAdmin for a valid credential
// that is not an admin's: a tenant user's token, a token without the admin
// scope, or an impersonation credential.
var ErrNotAdmin = errors.New("not an admin")

// ErrNoAdmin is the error of AuthenticateAdmin on a server that serves no
// admins (no AdminOptions, or authentication disabled).
var ErrNoAdmin = errors.New("this server serves no admins")

// AuthenticateAdmin runs the admin API's checks on a bearer token outside
// an HTTP request to the API (the console's sign-in): it returns the admin
// the token stands for, an error wrapping ErrNotAdmin for a valid token
// that is not an admin's (impersonation credentials included), one
// wrapping auth.ErrInvalidToken for a token that fails verification, or
// ErrNoAdmin. The caller's RequestID is a new request id.
func (s *Server) AuthenticateAdmin(ctx context.Context, token string) (*AdminCaller, error) {
	if s.admin == nil {
		return nil, ErrNoAdmin
	}
	if s.opts.LocalIdentity != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoAdmin, errNoAdminWithoutAuth)
	}
	tr := s.newTrail()
	ident, err := s.adminIdentity(ctx, tr, token, "the console")
	if err != nil {
		var se *scopeError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: %w", ErrNotAdmin, err)
		}
		return nil, err
	}
	return &AdminCaller{Identity: ident, RequestID: tr.requestID(s.idPrefix)}, nil
}

var errNoAdminWithoutAuth = errors.New("the admin API needs authentication: this server runs with [auth] enabled = false")

// apiCode is the error code of an admin API refusal body.
func (ref refusal) apiCode() string {
	if ref.code != "" {
		return ref.code
	}
	return ref.reason
}

// APIError is the body of every admin API error response:
// {"error": {"code": "...", "message": "..."}}.
type APIError struct {
	Error APIErrorDetails `json:"error"`
}

// APIErrorDetails are an APIError's fields. Code is stable, for programs;
// Message says what failed and what to do, for people.
type APIErrorDetails struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteAPIError writes an admin API error response.
func WriteAPIError(w http.ResponseWriter, status int, code, message string) {
	writeAPIError(w, status, code, message)
}

func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(APIError{Error: APIErrorDetails{Code: code, Message: message}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
