package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store/postgres"
)

// TestUnavailable: the pool exhausted is "busy"; a connection PostgreSQL
// dropped or refused (SQLSTATE 08/57P, a failed connect, or a socket cut
// with no SQLSTATE: reset, cut short, broken pipe) is "unavailable"; any
// other error, including other SQLSTATEs, is not classified.
func TestUnavailable(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, tc := range []struct {
		name string
		err  error
		want string // "" = not classified
	}{
		{"pool timeout", fmt.Errorf("documents: %w (waited 1s)", postgres.ErrPoolTimeout), postgres.ReasonBusy},
		{"admin shutdown", fmt.Errorf("get: %w", &pgconn.PgError{Code: "57P01"}), postgres.ReasonUnavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, postgres.ReasonUnavailable},
		{"unexpected EOF", fmt.Errorf("document store: postgres: get document: %w", io.ErrUnexpectedEOF), postgres.ReasonUnavailable},
		{"connection reset", fmt.Errorf("postgres: begin tenant transaction: %w", reset), postgres.ReasonUnavailable},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), postgres.ReasonUnavailable},
		{"unique violation", &pgconn.PgError{Code: "23505"}, ""},
		{"other", errors.New("postgres: get document: something else"), ""},
	} {
		reason, msg, ok := postgres.Unavailable(tc.err)
		if ok != (tc.want != "") || reason != tc.want || ok && msg == "" {
			t.Errorf("%s: Unavailable = %q, %q, %v; want %q", tc.name, reason, msg, ok, tc.want)
		}
	}
}

// TestUnavailableClosedConnection: a connection found closed before
// anything is sent on it (its socket failed while it waited in the pool)
// is "unavailable"; a statement refused because the caller's context had
// ended already is not classified (the client left; the database is
// fine).
func TestUnavailableClosedConnection(t *testing.T) {
	ctx := context.Background()
	pc, err := pgconn.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = pc.Exec(done, "SELECT 1").ReadAll()
	if err == nil {
		t.Fatal("a statement with an ended context ran")
	}
	if reason, _, ok := postgres.Unavailable(err); ok {
		t.Errorf("ended context (%v): classified %q, want not classified", err, reason)
	}
	pc.Close(ctx)
	_, err = pc.Exec(ctx, "SELECT 1").ReadAll()
	if err == nil {
		t.Fatal("a statement on a closed connection ran")
	}
	if reason, _, ok := postgres.Unavailable(fmt.Errorf("postgres: begin tenant transaction: %w", err)); reason != postgres.ReasonUnavailable || !ok {
		t.Errorf("closed connection (%v): classified %q, %v; want %q", err, reason, ok, postgres.ReasonUnavailable)
	}
}
