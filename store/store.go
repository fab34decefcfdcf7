// Package store gives tools tenant-scoped data handles.
//
// A tool never writes tenant filters, key prefixes or schema names: it asks
// its context for a handle bound to the verified tenant and uses it.
//
//	docs, err := store.Docs(ctx)          // key/value documents
//	if err != nil { return err }
//	err = docs.Put(ctx, "notes/q3.md", []byte("..."))
//	keys, err := docs.List(ctx, "notes/")  // only this tenant's keys
//
//	db, err := store.SQL(ctx)             // SQL strategies only
//	err = db.Tx(ctx, func(tx store.Tx) error {
//		_, err := tx.Exec(ctx, "INSERT INTO notes(body) VALUES ($1)", body)
//		return err
//	})
//
// The server puts the deployment's backends into the request context
// (WithSet); the accessors bind them to the tenant from tenant.From(ctx).
// Backends are low-level and trust the tenant id and key they are given;
// all validation happens here, in one place, above every backend.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Errors returned by handles and backends.
var (
	// ErrNotFound: the tenant has no object under that key.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalidKey: the key is not acceptable (see ValidateKey).
	ErrInvalidKey = errors.New("store: invalid key")
	// ErrNotConfigured: the server has no backend of the requested kind.
	ErrNotConfigured = errors.New("store: not configured on this server")
	// ErrTooLarge: the value exceeds MaxValueSize.
	ErrTooLarge = errors.New("store: value too large")
	// ErrStorageFull: the disk or filesystem holding the data is full, so
	// the write was not made (nothing of it was kept: the previous value,
	// if any, is intact). Writes succeed again once there is room; nothing
	// needs restarting.
	ErrStorageFull = errors.New("store: storage full")
)

// Limits on keys and values.
const (
	MaxKeyLen    = 512      // bytes
	MaxValueSize = 16 << 20 // bytes
)

// Backend is a low-level object store keyed by tenant and key. An
// implementation must keep tenants apart by construction (a separate file,
// schema, policy-filtered row set or key prefix per tenant); it may assume
// that id is a valid tenant.ID and key has passed ValidateKey, because
// only Bucket calls it.
type Backend interface {
	// Get returns the value stored under key, or ErrNotFound.
	Get(ctx context.Context, id tenant.ID, key string) ([]byte, error)
	// Put stores value under key, replacing any previous value. On error
	// nothing is changed.
	Put(ctx context.Context, id tenant.ID, key string, value []byte) error
	// Delete removes key, or returns ErrNotFound.
	Delete(ctx context.Context, id tenant.ID, key string) error
	// List returns the tenant's keys that start with prefix, sorted, with
	// no tenant prefix in them. prefix is "" or passed ValidatePrefix.
	List(ctx context.Context, id tenant.ID, prefix string) ([]string, error)
	// Close releases the backend's resources.
	Close() error
}

// SQLBackend runs SQL for one tenant at a time.
type SQLBackend interface {
	// InTx runs fn in one transaction, on one connection, that can only
	// see tenant id's data. If fn returns an error the transaction is
	// rolled back and nothing of it remains (including tenant settings).
	InTx(ctx context.Context, id tenant.ID, fn func(Tx) error) error
}

// Tx is a tenant-bound transaction. Placeholders are $1, $2, ... on every
// SQL backend.
type Tx interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is the result of Tx.Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is the result of Tx.QueryRow; Scan returns ErrNotFound for no row.
type Row interface {
	Scan(dest ...any) error
}

// Bucket is a Backend bound to one tenant. All its methods validate keys
// before the backend sees them.
type Bucket struct {
	b  Backend
	id tenant.ID
}

// NewBucket binds b to tenant id. It fails for a malformed id, so a
// backend never sees a tenant id that did not come from the registry.
func NewBucket(b Backend, id tenant.ID) (*Bucket, error) {
	if b == nil {
		return nil, ErrNotConfigured
	}
	if !id.Valid() {
		return nil, fmt.Errorf("store: %w: %q", tenant.ErrInvalidID, id)
	}
	return &Bucket{b: b, id: id}, nil
}

// Tenant returns the tenant the bucket is bound to.
func (k *Bucket) Tenant() tenant.ID { return k.id }

// Get returns the value under key, or ErrNotFound.
func (k *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return k.b.Get(ctx, k.id, key)
}

// Put stores value under key.
func (k *Bucket) Put(ctx context.Context, key string, value []byte) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(value), MaxValueSize)
	}
	return k.b.Put(ctx, k.id, key, value)
}

// Delete removes key, or returns ErrNotFound.
func (k *Bucket) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	return k.b.Delete(ctx, k.id, key)
}

// List returns this tenant's keys starting with prefix ("" for all).
func (k *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	return k.b.List(ctx, k.id, prefix)
}

// DB is an SQLBackend bound to one tenant.
type DB struct {
	b  SQLBackend
	id tenant.ID
}

// NewDB binds b to tenant id.
func NewDB(b SQLBackend, id tenant.ID) (*DB, error) {
	if b == nil {
		return nil, ErrNotConfigured
	}
	if !id.Valid() {
		return nil, fmt.Errorf("store: %w: %q", tenant.ErrInvalidID, id)
	}
	return &DB{b: b, id: id}, nil
}

// Tx runs fn in a transaction that sees only this tenant's data.
func (d *DB) Tx(ctx context.Context, fn func(Tx) error) error {
	return d.b.InTx(ctx, d.id, fn)
}

// ValidateKey reports whether key is acceptable on every backend: 1 to
// MaxKeyLen bytes of UTF-8; segments separated by "/" that are not empty,
// "." or ".."; no leading or trailing "/"; no backslash; no control or
// invisible formatting characters; no characters that look like a slash.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w: %s ends with '/'", ErrInvalidKey, quote(key))
	}
	return validate(key)
}

// ValidatePrefix is ValidateKey for list prefixes: "" is allowed and so is
// a trailing "/".
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validate(strings.TrimSuffix(prefix, "/"))
}

func validate(key string) error {
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	if key == "" || !utf8.ValidString(key) {
		return fmt.Errorf("%w: not valid UTF-8 text", ErrInvalidKey)
	}
	if key[0] == '/' {
		return fmt.Errorf("%w: %s starts with '/' (keys are relative)", ErrInvalidKey, quote(key))
	}
	for _, r := range key {
		switch {
		case r == '\\':
			return fmt.Errorf("%w: %s contains a backslash", ErrInvalidKey, quote(key))
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("%w: %s contains control character %U", ErrInvalidKey, quote(key), r)
		case isSlashLike(r):
			return fmt.Errorf("%w: %s contains %U, which looks like a slash", ErrInvalidKey, quote(key), r)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %s has an empty path segment", ErrInvalidKey, quote(key))
		case ".", "..":
			return fmt.Errorf("%w: %s has a %q segment", ErrInvalidKey, quote(key), seg)
		}
	}
	return nil
}

func isSlashLike(r rune) bool {
	switch r {
	case '\u2215', '\u2044', '\u29F8', '\u29F9', '\uFF0F', '\uFF3C', '\u2216', '\uFE68', '\u244A':
		return true
	}
	return false
}

// quote shortens and quotes a key for error messages.
func quote(key string) string {
	if len(key) > 64 {
		key = key[:64] + "..."
	}
	return fmt.Sprintf("%q", key)
}

// Set is the deployment's storage. The server builds it once and attaches
// it to every request context with WithSet. Nil fields are backends the
// deployment does not have.
type Set struct {
	Docs  Backend    // documents: the tenant's own database, schema, RLS rows or prefix
	Blobs Backend    // prefix-isolated objects (filesystem or S3)
	KV    Backend    // prefix-isolated keys (Redis)
	SQL   SQLBackend // tenant-bound SQL (SQLite file, RLS or schema)
}

// SetKey is the context key under which WithSet stores the *Set. It is
// exported for a server that keeps several request values in one context
// layer of its own, whose Value(SetKey{}) returns the *Set (see
// tenant.ContextKey). Everyone else uses WithSet.
type SetKey struct{}

// WithSet returns ctx carrying s. Only the server (or tests) should call it.
func WithSet(ctx context.Context, s *Set) context.Context {
	return context.WithValue(ctx, SetKey{}, s)
}

func setFrom(ctx context.Context) (*Set, tenant.ID, error) {
	t, err := tenant.From(ctx)
	if err != nil {
		return nil, "", err
	}
	s, _ := ctx.Value(SetKey{}).(*Set)
	if s == nil {
		return nil, "", ErrNotConfigured
	}
	return s, t.ID, nil
}

func bucket(ctx context.Context, pick func(*Set) Backend) (*Bucket, error) {
	s, id, err := setFrom(ctx)
	if err != nil {
		return nil, err
	}
	return NewBucket(pick(s), id)
}

// Docs returns the documents handle of the tenant in ctx.
func Docs(ctx context.Context) (*Bucket, error) {
	return bucket(ctx, func(s *Set) Backend { return s.Docs })
}

// Blobs returns the object-store handle of the tenant in ctx.
func Blobs(ctx context.Context) (*Bucket, error) {
	return bucket(ctx, func(s *Set) Backend { return s.Blobs })
}

// KV returns the key-value handle of the tenant in ctx.
func KV(ctx context.Context) (*Bucket, error) {
	return bucket(ctx, func(s *Set) Backend { return s.KV })
}

// SQL returns the SQL handle of the tenant in ctx.
func SQL(ctx context.Context) (*DB, error) {
	s, id, err := setFrom(ctx)
	if err != nil {
		return nil, err
	}
	return NewDB(s.SQL, id)
}
