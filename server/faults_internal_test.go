package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
)

// TestToolErrorClass: the audit class of a tool's error says when the
// storage was full or the call was cut at shutdown.
func TestToolErrorClass(t *testing.T) {
	cut, cancel := context.WithCancelCause(context.Background())
	cancel(ErrCutAtShutdown)
	full := fmt.Errorf("sqlitestore: put %q: %w: database or disk is full (13)", "k", store.ErrStorageFull)
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{context.Background(), UserErrorf("bad key"), "tool_error"},
		{context.Background(), full, "storage_full"},
		{cut, context.Canceled, "cut_at_shutdown"},
		{context.Background(), context.Canceled, "internal"},
	} {
		if got := toolErrorClass(tc.ctx, tc.err); got != tc.want {
			t.Errorf("toolErrorClass(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}

// TestUnavailableHook: Options.Unavailable decides only for errors the
// server does not classify itself; what it claims is 503 with Retry-After
// and its reason and message, the rest stays a 500.
func TestUnavailableHook(t *testing.T) {
	errDown := errors.New("upstream restarting")
	s := &Server{opts: Options{Unavailable: func(err error) (string, string, bool) {
		if errors.Is(err, errDown) || errors.Is(err, errBodyTooLarge) {
			return "upstream_unavailable", "the upstream is restarting; retry shortly", true
		}
		return "", "", false
	}}}
	ref := s.classify(fmt.Errorf("tool: %w", errDown))
	if ref.status != 503 || ref.reason != "upstream_unavailable" || ref.retryAfter != "1" || ref.message != "the upstream is restarting; retry shortly" {
		t.Errorf("claimed error: %+v", ref)
	}
	if ref := s.classify(errors.New("something else")); ref.status != 500 || ref.reason != reasonInternal {
		t.Errorf("unclaimed error: %+v", ref)
	}
	if ref := s.classify(errBodyTooLarge); ref.status != 413 {
		t.Errorf("an error the server classifies itself went to the hook: %+v", ref)
	}
	if ref := (&Server{}).classify(fmt.Errorf("tool: %w", errDown)); ref.status != 500 {
		t.Errorf("without a hook: %+v", ref)
	}
}
