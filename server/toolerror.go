package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/tenantmcp/tenantmcp/store"
)

// UserError marks err as meant for the caller of a tool: its message is
// returned to the client as the tool's error. Any other error a tool
// returns is an internal error: the client sees only "internal error
// (request id …)" and the full error goes to the server's log, with the
// tenant and the request id, so a database host, a file path or a stack
// never reaches a tenant.
//
// The store package's ErrNotFound, ErrInvalidKey and ErrTooLarge are meant
// for the caller too, whether marked or not.
func UserError(err error) error {
	if err == nil {
		return nil
	}
	return &userError{err: err}
}

// UserErrorf is UserError(fmt.Errorf(format, args...)).
func UserErrorf(format string, args ...any) error {
	return &userError{err: fmt.Errorf(format, args...)}
}

type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// isUserError reports whether err's message may be shown to the caller.
func isUserError(err error) bool {
	var ue *userError
	return errors.As(err, &ue) ||
		errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrInvalidKey) ||
		errors.Is(err, store.ErrTooLarge)
}

// runTool runs a tool's handler; a panic becomes an internal error.
func (s *Server) runTool(ctx context.Context, rq *request, t *Tool, args json.RawMessage) (res *Result, err error) {
	ctx, span := s.startToolSpan(ctx, rq, t) // tracing.go: nil with tracing off
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "tool panicked", "tool", t.Name, "tenant_id", string(rq.tenant.ID),
				"request_id", rq.requestID(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res, err = nil, errToolPanic
		}
		s.endToolSpan(span, err)
	}()
	return t.Handler(ctx, args)
}

var errToolPanic = errors.New("tool panicked")

// ErrCutAtShutdown is the cause (context.Cause) of a request's context
// cancelled because it was still running when Serve's drain time ran out;
// the call is audited with error class "cut_at_shutdown".
var ErrCutAtShutdown = errors.New("server: request cut off at shutdown: still running when the drain time (server.shutdown_timeout) ran out")

// toolErrorClass is the audit error class of a tool's error.
func toolErrorClass(ctx context.Context, err error) string {
	switch {
	case isUserError(err):
		return "tool_error"
	case errors.Is(context.Cause(ctx), ErrCutAtShutdown):
		return "cut_at_shutdown"
	case errors.Is(err, store.ErrStorageFull):
		return "storage_full"
	}
	return "internal"
}

// storageFullMessage is what a tool's caller is told when a write failed
// because the server's storage is full: a fixed text (the backend's error
// names files and paths), true for every tenant on that storage alike.
const storageFullMessage = "the server's storage is full, so nothing was written (any previous value is unchanged); try again later, and tell the operator if it persists"

// toolErrorMessage is what the client is told about a tool's error.
func (s *Server) toolErrorMessage(ctx context.Context, rq *request, t *Tool, err error) string {
	if isUserError(err) {
		return err.Error()
	}
	id := rq.requestID()
	if !errors.Is(err, errToolPanic) {
		s.log.ErrorContext(ctx, "tool failed", "tool", t.Name, "tenant_id", string(rq.tenant.ID),
			"request_id", id, "err", err)
	}
	if errors.Is(err, store.ErrStorageFull) {
		return storageFullMessage + " (request id " + id + ")"
	}
	return "internal error (request id " + id + ")"
}
