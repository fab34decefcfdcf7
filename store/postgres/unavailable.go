package postgres

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Reasons Unavailable gives: the metric and audit labels of the refusals.
const (
	ReasonBusy        = "database_busy"
	ReasonUnavailable = "database_unavailable"
)

// Unavailable classifies err for a server (server.Options.Unavailable):
// whether it means the database cannot serve right now rather than a
// fault, so the client should retry shortly. Two cases:
//
//   - ReasonBusy: ErrPoolTimeout, no connection of the pool became free
//     within the acquire timeout (nothing was sent to the database);
//   - ReasonUnavailable: PostgreSQL dropping or refusing connections, as
//     while it restarts or an administrator terminates backends —
//     SQLSTATE class 08 (connection exception) or 57P (admin or crash
//     shutdown, cannot connect now), a connection that could not be
//     opened, or one that dropped mid-use with no SQLSTATE at all (the
//     socket reset or cut short: a crash, "pg_ctl restart -m immediate",
//     a network cut), or one found closed before anything was sent on
//     it (pgconn's SafeToRetry: its socket failed while it waited in the
//     pool). The pool replaces lost connections by itself.
//
// message is safe to show a client: it names no tenant, table or query.
func Unavailable(err error) (reason, message string, ok bool) {
	if errors.Is(err, ErrPoolTimeout) {
		return ReasonBusy, "the database is busy right now; retry shortly", true
	}
	if connectionLost(err) {
		return ReasonUnavailable, "the database is unavailable right now; retry shortly", true
	}
	return "", "", false
}

// closedBeforeUse reports whether err says a connection could not be
// used and nothing was sent on it (pgconn's SafeToRetry), other than
// because the caller's context had ended (which is the caller's doing,
// not the database's).
func closedBeforeUse(err error) bool {
	return pgconn.SafeToRetry(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr) || closedBeforeUse(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
