package admin

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Store keeps what the admin operations need besides the tenant records:
// impersonation grants and the idempotency keys of creates. It lives next
// to the registry (the same SQLite file or PostgreSQL schema).
// Implementations: MemoryStore, sqliteadmin and pgadmin; admintest.Run is
// their contract suite.
//
// Every method is safe for concurrent use. Records passed in are not
// retained; records returned are fresh copies with times in UTC and empty
// lists returned as nil.
type Store interface {
	// CreateImpersonation stores a new grant. It returns an error wrapping
	// ErrExists if its ID or TokenHash is taken; on any error nothing is
	// written.
	CreateImpersonation(ctx context.Context, g *Impersonation) error
	// ImpersonationByToken returns the grant whose TokenHash is h, or
	// ErrNotFound. It returns ended and expired grants too: the caller
	// decides.
	ImpersonationByToken(ctx context.Context, h TokenHash) (*Impersonation, error)
	// Impersonation returns the grant with id, or ErrNotFound.
	Impersonation(ctx context.Context, id string) (*Impersonation, error)
	// ListImpersonations returns grants matching f, newest first (by
	// CreatedAt, then ID descending), at most f.Limit (<= 0 means
	// DefaultPageSize), starting after the grant with id f.Before (""
	// starts at the newest; an id not stored is ErrNotFound).
	ListImpersonations(ctx context.Context, f ImpersonationFilter) ([]*Impersonation, error)
	// EndImpersonation marks the grant id ended at `at` by `by`, unless it
	// has already ended (then it is left unchanged). It returns the
	// grant as stored afterwards, or ErrNotFound; a zero `at` is
	// ErrZeroEndTime.
	EndImpersonation(ctx context.Context, id, by string, at time.Time) (*Impersonation, error)

	// ClaimIdempotencyKey records that a create with key and request hash
	// h is starting, unless key is already recorded (and not older than
	// IdempotencyTTL at now): then it returns the existing record and
	// claimed = false. A claimed key has an empty Tenant until
	// CompleteIdempotencyKey.
	ClaimIdempotencyKey(ctx context.Context, key string, h RequestHash, now time.Time) (rec *IdempotencyRecord, claimed bool, err error)
	// CompleteIdempotencyKey sets the tenant a claimed key created.
	// ErrNotFound if the key is not recorded; an empty id is
	// ErrEmptyTenant.
	CompleteIdempotencyKey(ctx context.Context, key string, id tenant.ID) error
	// ReleaseIdempotencyKey removes a claimed key whose create failed, so
	// a retry can run again. It removes only a key with no tenant yet;
	// nothing happens otherwise.
	ReleaseIdempotencyKey(ctx context.Context, key string) error

	// Close releases the store's resources.
	Close() error
}

// DefaultPageSize is the page size of the list operations when no limit
// is given; MaxPageSize the largest page they return.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// IdempotencyTTL is how long an idempotency key is remembered: a retry
// later than that is a new request.
const IdempotencyTTL = 24 * time.Hour

// Store errors. Classify with errors.Is.
var (
	// ErrNotFound: no such impersonation grant or idempotency key.
	ErrNotFound = errors.New("admin: not found")
	// ErrExists: the grant's id or token hash is already stored.
	ErrExists = errors.New("admin: already exists")
)

// TokenHash is the SHA-256 of an impersonation credential: the store
// keeps only the hash, never the credential.
type TokenHash [sha256.Size]byte

// RequestHash is the SHA-256 of a create request's canonical body, so a
// key reused with a different request is recognised.
type RequestHash [sha256.Size]byte

// Impersonation is one grant: an admin acting as one tenant, for a
// reason, for a bounded time, with limited scopes.
type Impersonation struct {
	// ID identifies the grant ("imp_" + random), e.g. to end it.
	ID string `json:"id"`
	// TokenHash is the SHA-256 of the credential handed to the admin.
	TokenHash TokenHash `json:"-"`
	// Tenant is the impersonated tenant's internal id.
	Tenant tenant.ID `json:"tenant"`
	// Admin and AdminIssuer identify the admin who asked (sub, iss).
	Admin       string `json:"admin"`
	AdminIssuer string `json:"admin_issuer,omitempty"`
	// User is the user id requests are made as inside the tenant.
	User string `json:"user"`
	// Reason (required) and Ticket (optional) say why.
	Reason string `json:"reason"`
	Ticket string `json:"ticket,omitempty"`
	// Scopes are the scopes the credential grants (never admin scope).
	Scopes []string `json:"scopes,omitempty"`
	// ReadOnly limits the credential to tools marked read-only.
	ReadOnly bool `json:"read_only"`
	// IncludeSuspended allows acting on a suspended tenant.
	IncludeSuspended bool `json:"include_suspended,omitempty"`
	// CreatedAt and ExpiresAt bound the grant.
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// EndedAt is when it was ended early (zero while not ended), and
	// EndedBy who ended it.
	EndedAt time.Time `json:"ended_at,omitzero"`
	EndedBy string    `json:"ended_by,omitempty"`
}

// ActiveAt reports whether the grant may be used at time now: not ended
// and not expired.
func (g *Impersonation) ActiveAt(now time.Time) bool {
	return g.EndedAt.IsZero() && now.Before(g.ExpiresAt)
}

// ImpersonationFilter selects grants for ListImpersonations. Zero fields
// select everything.
type ImpersonationFilter struct {
	// Tenant, if set, selects one tenant's grants.
	Tenant tenant.ID
	// Admin, if set, selects the grants of one admin (sub).
	Admin string
	// ActiveAt, if set, selects grants active at that time (not ended,
	// not expired).
	ActiveAt time.Time
	// Before is the id of the last grant of the previous page.
	Before string
	// Limit bounds the page; <= 0 means DefaultPageSize.
	Limit int
}

// IdempotencyRecord is a remembered create.
type IdempotencyRecord struct {
	Key       string
	Request   RequestHash
	Tenant    tenant.ID // empty while the create is in progress
	CreatedAt time.Time
}
