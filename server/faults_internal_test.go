package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
)

// TestDroppedDatabaseConnectionIs503: a connection that dropped mid-use
// without any SQLSTATE (reset, cut short, broken pipe: a crash or an
// immediate restart) is answered like a lost connection, 503 with
// Retry-After, not 500; other errors stay internal.
func TestDroppedDatabaseConnectionIs503(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"unexpected EOF", fmt.Errorf("document store: postgres: get document: %w", io.ErrUnexpectedEOF), 503},
		{"connection reset", fmt.Errorf("postgres: begin tenant transaction: %w", reset), 503},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), 503},
		{"other", errors.New("postgres: get document: something else"), 500},
	} {
		ref := classify(tc.err)
		if ref.status != tc.want || (tc.want == 503 && (ref.reason != "database_unavailable" || ref.retryAfter == "")) {
			t.Errorf("%s: %d %q Retry-After %q; want %d", tc.name, ref.status, ref.reason, ref.retryAfter, tc.want)
		}
	}
}

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
