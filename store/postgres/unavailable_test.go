package postgres_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

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
