// Package tenant is the shared vocabulary of tenantmcp: the tenant context a
// tool handler reads, the registry-assigned internal tenant id, and the
// accessors that carry them through a context.Context.
//
// It is a leaf package: it imports nothing outside the standard library, so
// every other package can depend on it without cycles.
//
// A tool reads its tenant like this:
//
//	func handle(ctx context.Context, ...) error {
//		t, err := tenant.From(ctx)
//		if err != nil {
//			return err // no verified tenant: never guess one
//		}
//		log.Printf("tenant %s (%s), user %s", t.ID, t.Name, t.UserID)
//		...
//	}
//
// The tenant in a context comes only from a verified token (the server's
// middleware puts it there); it is never taken from tool arguments or
// request headers.
package tenant

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
)

// ErrNoTenant is returned by From when the context carries no tenant. A tool
// that receives it must refuse to run: it means the request did not pass
// through tenant-aware middleware.
var ErrNoTenant = errors.New("tenant: no tenant in context (request did not pass tenant middleware)")

// ErrInvalidID is returned by ParseID for a string that is not a
// registry-assigned internal tenant id.
var ErrInvalidID = errors.New("tenant: invalid internal tenant id")

// Context is what a tool knows about the tenant and user it serves. It is
// built by the server from a verified token and the tenant's registry
// record, once per request. Treat it as read-only: it may be shared.
type Context struct {
	// ID is the registry-assigned internal id. Storage names (schemas,
	// files, key prefixes) derive from it, never from claim text.
	ID ID
	// ExternalID is the tenant identifier the identity provider put in the
	// token (Auth0 org_id, Entra tid, Cognito custom:tenant_id, ...).
	ExternalID string
	// Issuer is the identity provider the token came from.
	Issuer string
	// Name is the tenant's display name (from the registry, else the token).
	Name string
	// UserID identifies the user inside the tenant (sub, or oid for Entra).
	UserID string
	// Scopes are the permissions the token grants (scope, permissions,
	// roles, depending on the provider).
	Scopes []string
	// Flags are the tenant's feature flags from the registry.
	Flags map[string]bool
	// Config is the tenant's free-form configuration from the registry.
	Config map[string]string
}

// HasScope reports whether the token granted scope s exactly.
func (c *Context) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

// Flag reports whether feature flag name is on for the tenant. Unknown
// flags are off.
func (c *Context) Flag(name string) bool { return c.Flags[name] }

// ContextKey is the context key under which With stores a tenant's
// *Context and From looks for it. It is exported for a server that keeps
// several request values in one context layer of its own, whose
// Value(ContextKey{}) returns the *Context: one layer, and no allocation,
// instead of one per value. Everyone else uses With and From.
type ContextKey struct{}

// With returns a copy of ctx that carries t. Only tenant-aware middleware
// (or tests) should call it.
func With(ctx context.Context, t *Context) context.Context {
	return context.WithValue(ctx, ContextKey{}, t)
}

// From returns the tenant carried by ctx, or ErrNoTenant.
func From(ctx context.Context) (*Context, error) {
	t, ok := ctx.Value(ContextKey{}).(*Context)
	if !ok || t == nil || t.ID == "" {
		return nil, ErrNoTenant
	}
	return t, nil
}

// ID is a registry-assigned internal tenant id: "t" followed by 20 characters
// of lowercase base32 (100 random bits), e.g. "t2ah3htpjvblvvvgzhpov".
// Its alphabet is safe as a PostgreSQL identifier, a file name and a key
// prefix, and no id is a prefix of another (they all have the same length).
type ID string

// IDLen is the length of every ID.
const IDLen = 21

const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// NewID returns a fresh random ID.
func NewID() ID {
	var b [IDLen - 1]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	out := make([]byte, IDLen)
	out[0] = 't'
	for i, c := range b {
		out[i+1] = idAlphabet[c&31]
	}
	return ID(out)
}

// ParseID checks that s is a well-formed ID.
func ParseID(s string) (ID, error) {
	if len(s) != IDLen || s[0] != 't' {
		return "", ErrInvalidID
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", ErrInvalidID
		}
	}
	return ID(s), nil
}

// Valid reports whether id is well formed.
func (id ID) Valid() bool {
	_, err := ParseID(string(id))
	return err == nil
}

func (id ID) String() string { return string(id) }
