package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"unsafe"

	"github.com/mark3labs/mcp-go/mcp"
)

// Tool is a tenant-aware MCP tool. Its handler reads the tenant with
// tenant.From(ctx) and its data through the store accessors, and logs
// through Logger(ctx); the server has already verified the token, resolved
// the tenant, applied its limits and checked that the tenant may use the
// tool.
type Tool struct {
	// Name is the tool's MCP name: 1–128 of [A-Za-z0-9_.-].
	Name string
	// Description is shown to the model.
	Description string
	// InputSchema is the JSON Schema of the arguments object. Nil means an
	// object with no declared properties.
	InputSchema json.RawMessage
	// OutputSchema is the JSON Schema of the structured result, if any.
	OutputSchema json.RawMessage
	// Scopes the token must grant (directly or through the scope
	// hierarchy). A call without them is refused with HTTP 403 and
	// WWW-Authenticate: Bearer error="insufficient_scope".
	Scopes []string
	// Flag, if set, gates the tool on the tenant's feature flag of that
	// name: without it the tool is hidden and refused like an unknown tool.
	Flag string
	// ReadOnly marks the tool as not modifying anything (an MCP hint).
	ReadOnly bool
	// Handler runs the tool.
	Handler Handler
}

// Handler runs a tool call. args is the raw JSON arguments object. An error
// is reported to the client as a tool error (isError): with its message if
// it is meant for the caller (UserError, or the store's not-found and
// invalid-key errors), as "internal error (request id …)" otherwise.
type Handler func(ctx context.Context, args json.RawMessage) (*Result, error)

// Result is what a tool returns: a text for the model and, optionally, a
// structured value (marshalled as JSON).
type Result struct {
	Text       string
	Structured any
}

// ToolOption configures a Tool built by NewTool.
type ToolOption func(*Tool)

// RequireScopes makes the tool require all of the given scopes.
func RequireScopes(scopes ...string) ToolOption {
	return func(t *Tool) { t.Scopes = append(t.Scopes, scopes...) }
}

// RequireFlag hides the tool from tenants whose feature flag is off.
func RequireFlag(flag string) ToolOption { return func(t *Tool) { t.Flag = flag } }

// ReadOnly marks the tool as read-only.
func ReadOnly() ToolOption { return func(t *Tool) { t.ReadOnly = true } }

// NewTool builds a Tool from a typed function. The input schema is derived
// from In (use `json` and `jsonschema:"..."` struct tags); arguments that
// In does not declare are refused. The output is returned both as
// structured content and as its JSON text (a string output is returned as
// plain text).
func NewTool[In, Out any](name, description string, fn func(ctx context.Context, in In) (Out, error), opts ...ToolOption) Tool {
	spec := mcp.NewTool(name, mcp.WithInputSchema[In](), mcp.WithOutputSchema[Out]())
	t := Tool{
		Name:         name,
		Description:  description,
		InputSchema:  spec.RawInputSchema,
		OutputSchema: spec.RawOutputSchema,
		Handler: func(ctx context.Context, args json.RawMessage) (*Result, error) {
			var in In
			if trimmed := bytes.TrimSpace(args); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
				if err := decodeArguments(args, &in); err != nil {
					return nil, UserErrorf("invalid arguments: %w", err)
				}
			}
			out, err := fn(ctx, in)
			if err != nil {
				return nil, err
			}
			if s, ok := any(out).(string); ok {
				return &Result{Text: s}, nil
			}
			text, err := json.Marshal(out)
			if err != nil {
				return nil, fmt.Errorf("encode result: %w", err)
			}
			// text is never written again (Structured shares it read-only),
			// so the string can use its bytes instead of a copy.
			res := &Result{Text: unsafe.String(unsafe.SliceData(text), len(text))}
			if len(text) > 0 && text[0] == '{' {
				// MCP structured content is a JSON object; pass the bytes
				// already encoded rather than encode out a second time.
				res.Structured = json.RawMessage(text)
			}
			return res, nil
		},
	}
	for _, o := range opts {
		o(&t)
	}
	return t
}

// decodeArguments decodes a NewTool's arguments into v as a new
// json.Decoder with DisallowUnknownFields would: the first JSON value in
// args, with fields v does not declare refused. That runs on every call,
// so the decoders are pooled: a new one, its buffer and its reader are
// three allocations (and most of a kilobyte) each time.
func decodeArguments(args []byte, v any) error {
	d := argDecoders.Get().(*argDecoder)
	d.r.Reset(args)
	start := d.dec.InputOffset()
	err := d.dec.Decode(v)
	// Back to the pool only when the decoder is as a new one for the
	// next arguments: it decoded these without error and read them to
	// their end, so nothing of them is buffered (a syntax error would
	// stay with it, and trailing text would be read first next time).
	// Rare large arguments are left to the garbage collector, with the
	// buffer they grew.
	if err == nil && d.r.Len() == 0 && d.dec.InputOffset()-start == int64(len(args)) && len(args) <= 64<<10 {
		d.r.Reset(nil)
		argDecoders.Put(d)
	}
	return err
}

// argDecoder is a pooled decoder of tool arguments and the reader it
// reads them from.
type argDecoder struct {
	r   bytes.Reader
	dec *json.Decoder
}

var argDecoders = sync.Pool{New: func() any {
	d := new(argDecoder)
	d.dec = json.NewDecoder(&d.r)
	d.dec.DisallowUnknownFields()
	return d
}}

var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func (t *Tool) validate() error {
	var errs []error
	if !toolNameRE.MatchString(t.Name) {
		errs = append(errs, fmt.Errorf("tool name %q: want 1-128 of [A-Za-z0-9_.-]", t.Name))
	}
	if t.Handler == nil {
		errs = append(errs, fmt.Errorf("tool %q: no handler", t.Name))
	}
	if len(t.InputSchema) > 0 && !json.Valid(t.InputSchema) {
		errs = append(errs, fmt.Errorf("tool %q: input schema is not valid JSON", t.Name))
	}
	return errors.Join(errs...)
}
