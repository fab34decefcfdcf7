// Package notes is a small set of tenant-aware MCP tools: save_note,
// get_note and list_notes. It is the example the README walks through, and
// examples/notes-server serves it from a binary of its own:
//
//	func main() { cli.Main(&cli.Options{Name: "notes-server", Tools: notes.Tools()}) }
//
// The tools never see a tenant id in their arguments and never filter by
// tenant: they read the verified tenant from their context and ask for a
// storage handle that can only see that tenant's notes.
package notes

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Tools returns the notes tools.
func Tools() []server.Tool {
	return []server.Tool{saveNote, getNote, listNotes}
}

// snippet:start save_note
type NoteInput struct {
	Key  string `json:"key" jsonschema:"note key"`
	Text string `json:"text"`
}

var saveNote = server.NewTool("save_note", "Save a note for your organisation.",
	func(ctx context.Context, in NoteInput) (string, error) {
		t, err := tenant.From(ctx) // id, name, user, scopes, flags, config
		if err != nil {
			return "", err
		}
		docs, err := store.Docs(ctx) // bound to t: an SQLite file, RLS rows, a schema or a prefix
		if err != nil {
			return "", err
		}
		return "saved for " + t.Name, docs.Put(ctx, "notes/"+in.Key, []byte(in.Text))
	},
	server.RequireScopes("notes:write"), // 403 insufficient_scope without it
)

// snippet:end

// KeyInput names one note.
type KeyInput struct {
	Key string `json:"key" jsonschema:"note key"`
}

// Note is the result of get_note.
type Note struct {
	Key  string `json:"key"`
	Text string `json:"text"`
}

var getNote = server.NewTool("get_note", "Read one of your organisation's notes.",
	func(ctx context.Context, in KeyInput) (Note, error) {
		docs, err := store.Docs(ctx)
		if err != nil {
			return Note{}, err
		}
		b, err := docs.Get(ctx, "notes/"+in.Key)
		if errors.Is(err, store.ErrNotFound) {
			// Another tenant's note does not exist for this one.
			return Note{}, server.UserErrorf("note %q not found", in.Key)
		}
		if err != nil {
			return Note{}, err
		}
		return Note{Key: in.Key, Text: string(b)}, nil
	},
	server.ReadOnly(),
)

// ListOutput is the result of list_notes.
type ListOutput struct {
	Keys []string `json:"keys"`
}

var listNotes = server.NewTool("list_notes", "List your organisation's note keys.",
	func(ctx context.Context, _ struct{}) (ListOutput, error) {
		docs, err := store.Docs(ctx)
		if err != nil {
			return ListOutput{}, err
		}
		keys, err := docs.List(ctx, "notes/")
		if err != nil {
			return ListOutput{}, err
		}
		out := ListOutput{Keys: []string{}}
		for _, k := range keys {
			out.Keys = append(out.Keys, strings.TrimPrefix(k, "notes/"))
		}
		slices.Sort(out.Keys)
		return out, nil
	},
	server.ReadOnly(),
)
