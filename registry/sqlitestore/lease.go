package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// leaseAttempts bounds AcquireLease's retries when the lease it lost to
// is released before it could read it.
const leaseAttempts = 5

// AcquireLease implements registry.Store. The insert takes the row only
// if it is free or its lease has ended; SQLite runs one write at a time
// across every connection and process, so of two concurrent attempts one
// sees the other's row.
func (s *Store) AcquireLease(ctx context.Context, l registry.Lease) error {
	for range leaseAttempts {
		res, err := s.db.ExecContext(ctx, `INSERT INTO tenant_leases
			(issuer, external_id, tenant_id, operation, holder, via, token, acquired_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (issuer, external_id) DO UPDATE SET
				tenant_id = excluded.tenant_id, operation = excluded.operation, holder = excluded.holder,
				via = excluded.via, token = excluded.token, acquired_at = excluded.acquired_at,
				expires_at = excluded.expires_at
			WHERE tenant_leases.expires_at <= excluded.acquired_at`,
			l.Issuer, l.ExternalID, string(l.Tenant), l.Operation, l.Holder, l.Via, l.Token,
			micros(l.AcquiredAt), micros(l.ExpiresAt))
		if err != nil {
			return fmt.Errorf("sqlitestore: acquire lease: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlitestore: acquire lease: %w", err)
		} else if n == 1 {
			return nil
		}
		var (
			h                 registry.Lease
			id                string
			acquired, expires int64
		)
		err = s.db.QueryRowContext(ctx, `SELECT issuer, external_id, tenant_id, operation, holder, via, token,
			acquired_at, expires_at FROM tenant_leases WHERE issuer = $1 AND external_id = $2`, l.Issuer, l.ExternalID).
			Scan(&h.Issuer, &h.ExternalID, &id, &h.Operation, &h.Holder, &h.Via, &h.Token, &acquired, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: acquire lease: read the holder: %w", err)
		}
		h.Tenant, h.AcquiredAt, h.ExpiresAt = tenant.ID(id), fromMicros(acquired), fromMicros(expires)
		return &registry.LeasedError{Holder: h}
	}
	return fmt.Errorf("sqlitestore: acquire lease: the lease on %q changed hands %d times while being read; retry", l.ExternalID, leaseAttempts)
}

// RenewLease implements registry.Store.
func (s *Store) RenewLease(ctx context.Context, issuer, externalID, token string, expires time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tenant_leases SET expires_at = $4
		WHERE issuer = $1 AND external_id = $2 AND token = $3`, issuer, externalID, token, micros(expires))
	if err != nil {
		return fmt.Errorf("sqlitestore: renew lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlitestore: renew lease: %w", err)
	} else if n == 0 {
		return registry.ErrLeaseLost
	}
	return nil
}

// ReleaseLease implements registry.Store.
func (s *Store) ReleaseLease(ctx context.Context, issuer, externalID, token string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM tenant_leases WHERE issuer = $1 AND external_id = $2 AND token = $3`,
		issuer, externalID, token); err != nil {
		return fmt.Errorf("sqlitestore: release lease: %w", err)
	}
	return nil
}
