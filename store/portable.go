package store

import (
	"context"
	"errors"
	"io"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Portable is a backend that can hand over all of one tenant's data and
// take it back, and remove every trace of a tenant: what archives,
// exports, restores and purges are made of (the lifecycle package). Every
// backend of this package implements it; storetest.RunPortable is the
// contract.
//
// Like the rest of a Backend it trusts the tenant id it is given (the
// lifecycle package validates it), and it must touch nothing of any other
// tenant — the contract checks every other tenant's data byte for byte.
type Portable interface {
	// Export writes every piece of the tenant's data into w as named
	// parts, from one consistent view where the backend has one (a
	// transaction, a database snapshot). A tenant with no data writes no
	// part, or empty ones. Part names are the backend's own, stable
	// across versions: Import reads them back.
	Export(ctx context.Context, id tenant.ID, w PartWriter) error
	// Import restores into tenant id the parts an Export wrote (under the
	// same or another tenant id). The tenant must hold no data in this
	// backend (else ErrNotEmpty, and nothing is changed); on any error
	// nothing of the import remains. Parts it does not know are an error.
	Import(ctx context.Context, id tenant.ID, r PartReader) error
	// Purge removes every trace of the tenant from the backend: data,
	// files, schemas, roles, key prefixes. It is idempotent: purging a
	// tenant that has nothing left succeeds, so a purge that failed
	// halfway can simply run again.
	Purge(ctx context.Context, id tenant.ID) error
}

// PartWriter receives the parts of an export.
type PartWriter interface {
	// Create starts part name ("kv.jsonl", "blobs/notes/q3.md", ...). The
	// previous part must be closed first; names are unique within an
	// export. Names are slash-separated, without "." or ".." elements.
	Create(name string) (io.WriteCloser, error)
}

// PartReader gives back the parts of an export.
type PartReader interface {
	// Names lists the parts, in the order they were written.
	Names() []string
	// Open returns the content of part name; the caller closes it.
	Open(name string) (io.ReadCloser, error)
}

// ErrNotEmpty: an import into a tenant that already holds data.
var ErrNotEmpty = errors.New("store: the tenant already holds data here: restore only into an empty tenant")
