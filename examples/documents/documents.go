// Package documents is an example of tenant-aware MCP tools: a small
// document store whose every operation is scoped to the caller's tenant.
//
// The tools never mention tenants: they ask their context for the tenant's
// documents handle (store.Docs) and use it. The same code runs on every
// isolation strategy — an SQLite file per tenant, PostgreSQL row-level
// security, a schema per tenant, or prefixed object/key storage — because
// the handle is bound to the verified tenant by the server.
//
//	srv, err := server.New(server.Options{..., Tools: documents.Tools()})
package documents

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
)

// PutInput is the input of put_document.
type PutInput struct {
	Key     string `json:"key" jsonschema:"document key, e.g. notes/plan.md (relative, '/'-separated, no '..')"`
	Content string `json:"content" jsonschema:"document text"`
}

// PutOutput is the result of put_document.
type PutOutput struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

// KeyInput is the input of get_document and delete_document.
type KeyInput struct {
	Key string `json:"key" jsonschema:"document key"`
}

// Document is the result of get_document.
type Document struct {
	Key     string `json:"key"`
	Content string `json:"content"`
}

// ListInput is the input of list_documents.
type ListInput struct {
	Prefix string `json:"prefix,omitempty" jsonschema:"only keys starting with this prefix"`
}

// ListOutput is the result of list_documents.
type ListOutput struct {
	Keys []string `json:"keys"`
}

// DeleteOutput is the result of delete_document.
type DeleteOutput struct {
	Deleted string `json:"deleted"`
}

// Tools returns put_document, get_document, list_documents and
// delete_document.
func Tools() []server.Tool {
	return []server.Tool{
		server.NewTool("put_document", "Store a document under a key for your organisation, replacing any previous version.", put),
		server.NewTool("get_document", "Read one of your organisation's documents by key.", get, server.ReadOnly()),
		server.NewTool("list_documents", "List your organisation's document keys, optionally only those starting with a prefix.", list, server.ReadOnly()),
		server.NewTool("delete_document", "Delete one of your organisation's documents.", del),
	}
}

func put(ctx context.Context, in PutInput) (PutOutput, error) {
	docs, err := store.Docs(ctx)
	if err != nil {
		return PutOutput{}, err
	}
	if err := docs.Put(ctx, in.Key, []byte(in.Content)); err != nil {
		return PutOutput{}, explain(err, in.Key)
	}
	return PutOutput{Key: in.Key, Bytes: len(in.Content)}, nil
}

func get(ctx context.Context, in KeyInput) (Document, error) {
	docs, err := store.Docs(ctx)
	if err != nil {
		return Document{}, err
	}
	b, err := docs.Get(ctx, in.Key)
	if err != nil {
		return Document{}, explain(err, in.Key)
	}
	return Document{Key: in.Key, Content: string(b)}, nil
}

func list(ctx context.Context, in ListInput) (ListOutput, error) {
	docs, err := store.Docs(ctx)
	if err != nil {
		return ListOutput{}, err
	}
	keys, err := docs.List(ctx, in.Prefix)
	if err != nil {
		return ListOutput{}, explain(err, in.Prefix)
	}
	if keys == nil {
		keys = []string{}
	}
	return ListOutput{Keys: keys}, nil
}

func del(ctx context.Context, in KeyInput) (DeleteOutput, error) {
	docs, err := store.Docs(ctx)
	if err != nil {
		return DeleteOutput{}, err
	}
	if err := docs.Delete(ctx, in.Key); err != nil {
		return DeleteOutput{}, explain(err, in.Key)
	}
	return DeleteOutput{Deleted: in.Key}, nil
}

// explain turns store errors into messages for the model. A key another
// tenant uses is simply "not found" here: it does not exist for this one.
// Anything else is an internal error: the server logs it and tells the
// caller only "internal error (request id …)".
func explain(err error, key string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return server.UserErrorf("document %q not found", key)
	case errors.Is(err, store.ErrInvalidKey), errors.Is(err, store.ErrTooLarge):
		return server.UserError(err)
	}
	return fmt.Errorf("document store: %w", err)
}
