package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantmcp/tenantmcp/config"
)

// Backoff between start-up attempts to reach PostgreSQL: doubling from
// the first to the last.
const (
	startupFirstRetry = 250 * time.Millisecond
	startupMaxRetry   = 5 * time.Second
)

// OpenWaiting is Open for a server that is starting: while PostgreSQL
// (database.dsn) cannot be reached — connection refused or timed out, its
// host not found, the server still starting up — it tries again with
// backoff for up to database.startup_wait, logging a warning per failed
// attempt. Other errors (a role that may not log in, missing tables, a bad
// configuration) end it at once, as does ctx. Without database.dsn, or
// with database.startup_wait = 0, it is Open.
func OpenWaiting(ctx context.Context, cfg *config.Config, o *Options) (*App, error) {
	wait := cfg.Database.StartupWait
	if !cfg.UsesPostgres() || wait <= 0 {
		return Open(ctx, cfg, o)
	}
	log := slog.New(slog.DiscardHandler)
	if o != nil && o.Logger != nil {
		log = o.Logger
	}
	deadline := time.Now().Add(wait)
	delay := startupFirstRetry
	for attempt := 1; ; attempt++ {
		// An attempt never outlives the wait: a PostgreSQL that drops
		// packets would otherwise hold it for startupTimeout.
		actx, cancel := context.WithDeadline(ctx, deadline)
		a, err := Open(actx, cfg, o)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.InfoContext(ctx, "database reachable", "attempt", attempt)
			}
			return a, nil
		}
		if ctx.Err() != nil || !unreachable(err) {
			return nil, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w: gave up after %d attempts in database.startup_wait (%s); "+
				"check that PostgreSQL runs and that this host can reach the address in database.dsn, or raise database.startup_wait",
				err, attempt, wait)
		}
		d := min(delay, left)
		log.WarnContext(ctx, "database unreachable at start-up; retrying (the listener opens once it answers)",
			"attempt", attempt, "err", err, "retry_in", d.String(), "wait_left", left.Round(time.Millisecond).String(),
			"hint", "check that PostgreSQL runs and that this host can reach database.dsn; database.startup_wait bounds the wait")
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
		delay = min(2*delay, startupMaxRetry)
	}
}

// unreachable reports whether err is PostgreSQL not being reachable (yet),
// which waiting may cure, rather than a refusal that it will not.
func unreachable(err error) bool {
	if errors.Is(err, ErrNotSetUp) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// cannot_connect_now: "the database system is starting up"
		// (or shutting down, or in recovery); too_many_connections.
		return pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, context.DeadlineExceeded)
}
