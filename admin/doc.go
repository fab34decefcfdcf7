// Package admin is cross-tenant administration: the operations a support
// engineer or a sign-up/billing system performs across tenants (list,
// create, update, suspend, resume, delete, impersonate), implemented once
// in Service and offered three ways — MCP admin tools (Tools), a JSON HTTP
// API under /admin/v1/ (Handler, documented in docs/admin-api.yaml) and
// the CLI's tenant commands.
//
// Every operation is audited with the admin's identity in the RFC 8693
// "act" shape, into the chain of the tenant it acts on, so a tenant's own
// trail shows who did what to it and why. An operation runs only once its
// audit event has a place in the queue.
//
// Impersonation gives an admin a short-lived credential for exactly one
// tenant, for a stated reason, with limited scopes (read-only tools by
// default) and never admin scope. The server authenticates it with
// Service.Authenticate on every request, so ending a grant takes effect on
// its next request; every request made with it is audited in the tenant's
// chain with both identities.
package admin
