package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// leaseAttempts bounds AcquireLease's retries when the lease it lost to
// is released before it could read it.
const leaseAttempts = 5

// AcquireLease implements registry.Store. INSERT … ON CONFLICT DO UPDATE
// … WHERE takes the row only if it is free or its lease has ended; of two
// concurrent attempts the second waits for the first to commit and then
// finds its row in force.
func (s *Store) AcquireLease(ctx context.Context, l registry.Lease) error {
	for range leaseAttempts {
		tag, err := s.pool.Exec(ctx, `INSERT INTO `+s.leases+`
			(issuer, external_id, tenant_id, operation, holder, via, token, acquired_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (issuer, external_id) DO UPDATE SET
				tenant_id = EXCLUDED.tenant_id, operation = EXCLUDED.operation, holder = EXCLUDED.holder,
				via = EXCLUDED.via, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at,
				expires_at = EXCLUDED.expires_at
			WHERE `+s.leases+`.expires_at <= EXCLUDED.acquired_at`,
			l.Issuer, l.ExternalID, string(l.Tenant), l.Operation, l.Holder, l.Via, l.Token, l.AcquiredAt, l.ExpiresAt)
		if err != nil {
			return s.leaseError("acquire lease", err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var (
			h  registry.Lease
			id string
		)
		err = s.pool.QueryRow(ctx, `SELECT issuer, external_id, tenant_id, operation, holder, via, token, acquired_at, expires_at
			FROM `+s.leases+` WHERE issuer = $1 AND external_id = $2`, l.Issuer, l.ExternalID).
			Scan(&h.Issuer, &h.ExternalID, &id, &h.Operation, &h.Holder, &h.Via, &h.Token, &h.AcquiredAt, &h.ExpiresAt)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return s.leaseError("acquire lease: read the holder", err)
		}
		h.Tenant, h.AcquiredAt, h.ExpiresAt = tenant.ID(id), h.AcquiredAt.UTC(), h.ExpiresAt.UTC()
		return &registry.LeasedError{Holder: h}
	}
	return fmt.Errorf("pgstore: acquire lease: the lease on %q changed hands %d times while being read; retry", l.ExternalID, leaseAttempts)
}

// RenewLease implements registry.Store.
func (s *Store) RenewLease(ctx context.Context, issuer, externalID, token string, expires time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.leases+` SET expires_at = $4
		WHERE issuer = $1 AND external_id = $2 AND token = $3`, issuer, externalID, token, expires)
	if err != nil {
		return s.leaseError("renew lease", err)
	}
	if tag.RowsAffected() == 0 {
		return registry.ErrLeaseLost
	}
	return nil
}

// ReleaseLease implements registry.Store.
func (s *Store) ReleaseLease(ctx context.Context, issuer, externalID, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.leases+` WHERE issuer = $1 AND external_id = $2 AND token = $3`,
		issuer, externalID, token); err != nil {
		return s.leaseError("release lease", err)
	}
	return nil
}

// leaseError wraps a failed statement on the leases table, saying what
// to do when the table is missing: a registry migrated by an older
// version, with a server that never migrates.
func (s *Store) leaseError(op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("pgstore: %s: the table %s does not exist: the registry in schema %q is older than this program; migrate it (Migrate, as tenantmcp db migrate does): %w", op, s.leases, s.schema, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}
