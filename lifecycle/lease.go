package lifecycle

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// DefaultLeaseTTL is how long a lease on a tenant lasts unless its holder
// renews it, which a live holder does every third of it: a holder that
// crashed keeps the tenant from other operations for at most this long.
const DefaultLeaseTTL = 30 * time.Second

// minLeaseTTL is the shortest Options.LeaseTTL: a lease renewed every
// third of it must leave time for a store round trip.
const minLeaseTTL = 30 * time.Millisecond

var (
	// ErrBusy: another operation holds the tenant. The error is a
	// *BusyError saying which, since when and by whom; retry once it
	// ends.
	ErrBusy = errors.New("lifecycle: another operation on the tenant is under way")
	// ErrLeaseLost: the operation stopped because it lost its lease on
	// the tenant (it could not renew it in time, so another operation may
	// have taken the tenant over). It stopped between two steps or inside
	// one, which is safe; running it again finishes it.
	ErrLeaseLost = errors.New("lifecycle: the operation lost its lease on the tenant and stopped; run it again to finish it")
)

// BusyError refuses an operation on a tenant while another holds it. It
// matches ErrBusy under errors.Is. A refused create also matches
// registry.ErrExists (the tenant is being registered or is registered);
// any other refusal unwraps to a *registry.ValidationError too, so that a
// caller that does not know ErrBusy refuses the request with this message
// as it refuses the other "in progress" conflicts.
type BusyError struct {
	// ExternalID and Tenant name the tenant; Tenant is empty when the
	// holder is creating it and did not know its id yet.
	ExternalID string
	Tenant     tenant.ID
	// Operation, Holder, Via and Since describe the operation under way:
	// what it is, who started it, through what, and when.
	Operation, Holder, Via string
	Since                  time.Time

	refused string // the operation refused
}

func (e *BusyError) Error() string {
	name := fmt.Sprintf("%q", e.ExternalID)
	if e.Tenant != "" {
		name += " (" + string(e.Tenant) + ")"
	}
	who := e.Holder
	if e.Via != "" {
		who += " via " + e.Via
	}
	return fmt.Sprintf("tenant %s: %s %s started at %s by %s is under way; retry when it ends",
		name, article(e.Operation), e.Operation, e.Since.UTC().Format(time.RFC3339), who)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Unwrap returns the class a caller unaware of ErrBusy sees: ErrExists
// for a refused create, else a validation error with this message.
func (e *BusyError) Unwrap() error {
	if e.refused == OpProvision {
		return registry.ErrExists
	}
	return &registry.ValidationError{Problems: []string{e.Error()}}
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// locked runs fn while holding the lease on the tenant (issuer,
// externalID), with id its internal id if known, for operation op by p.
// It fails at once with a *BusyError if another operation holds it. fn's
// context ends when the lease is lost (its holder could not renew it in
// time), and then fn's error wraps ErrLeaseLost. The lease is released
// when fn returns.
func (m *Manager) locked(ctx context.Context, p Principal, issuer, externalID string, id tenant.ID, op string, fn func(ctx context.Context) error) error {
	st := m.o.Registry.Store()
	now := m.now()
	l := registry.Lease{
		Issuer: issuer, ExternalID: externalID, Tenant: id,
		Operation: op, Holder: p.Subject, Via: p.Via, Token: newToken(),
		AcquiredAt: now, ExpiresAt: now.Add(m.o.LeaseTTL),
	}
	var le *registry.LeasedError
	if err := st.AcquireLease(ctx, l); errors.As(err, &le) {
		h := le.Holder
		return &BusyError{ExternalID: externalID, Tenant: cmp.Or(id, h.Tenant), Operation: h.Operation,
			Holder: h.Holder, Via: h.Via, Since: h.AcquiredAt, refused: op}
	} else if err != nil {
		return fmt.Errorf("lifecycle: %s: take the lease on tenant %q: %w", op, externalID, err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		m.renew(lctx, l, stop, cancel)
	}()
	err := func() error {
		// Also on a panic in fn: the renewal ends (the lease then ends
		// by itself at its expiry).
		defer func() { close(stop); <-stopped }()
		return fn(lctx)
	}()
	if cause := context.Cause(lctx); err != nil && errors.Is(cause, ErrLeaseLost) {
		err = fmt.Errorf("%w (%w)", cause, err)
	}
	cancel(nil)
	// Released even if ctx has ended; if that fails, the lease ends by
	// itself at its expiry.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	if rerr := st.ReleaseLease(rctx, issuer, externalID, l.Token); rerr != nil {
		m.log.Warn("lifecycle: could not release the lease on a tenant; it ends by itself", "tenant_id", id,
			"operation", op, "expires_at", l.ExpiresAt, "error", rerr)
	}
	return err
}

// lockedRecord is locked for an fn that returns the tenant's record.
func (m *Manager) lockedRecord(ctx context.Context, p Principal, issuer, externalID string, id tenant.ID, op string, fn func(ctx context.Context) (*registry.Tenant, error)) (*registry.Tenant, error) {
	var out *registry.Tenant
	err := m.locked(ctx, p, issuer, externalID, id, op, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	})
	return out, err
}

// renew renews l every third of the lease until stop closes or ctx
// ends. When the lease cannot be renewed before it ends, or was taken
// over, it cancels ctx with ErrLeaseLost: the operation must stop, since
// another may now run on the tenant.
func (m *Manager) renew(ctx context.Context, l registry.Lease, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	t := time.NewTicker(m.o.LeaseTTL / 3)
	defer t.Stop()
	expires := l.ExpiresAt
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := m.now()
		if !now.Before(expires) {
			m.log.Error("lifecycle: the lease on a tenant ended before it was renewed; stopping the operation",
				"tenant_id", l.Tenant, "operation", l.Operation, "expired_at", expires)
			cancel(fmt.Errorf("%w (its lease ended at %s without being renewed)", ErrLeaseLost, expires.Format(time.RFC3339Nano)))
			return
		}
		next := now.Add(m.o.LeaseTTL)
		err := m.o.Registry.Store().RenewLease(ctx, l.Issuer, l.ExternalID, l.Token, next)
		switch {
		case errors.Is(err, registry.ErrLeaseLost):
			m.log.Error("lifecycle: the lease on a tenant was taken over; stopping the operation",
				"tenant_id", l.Tenant, "operation", l.Operation)
			cancel(fmt.Errorf("%w (another operation took the tenant over)", ErrLeaseLost))
			return
		case err != nil && ctx.Err() == nil:
			// Tried again at the next tick; the lease is lost only if
			// that is too late.
			m.log.Warn("lifecycle: could not renew the lease on a tenant", "tenant_id", l.Tenant,
				"operation", l.Operation, "expires_at", expires, "error", err)
		case err == nil:
			expires = next
		}
	}
}

// newToken returns a random lease token.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// Exclusive runs fn while holding tenant t's lease, as every operation of
// the Manager does, so that fn and those operations never run at once on
// t, in this process or any other sharing the registry. op names what fn
// does ("suspend", "update", …) in the refusals of others. If another
// operation holds t it fails at once with a *BusyError; if the lease is
// lost while fn runs, fn's context ends and the error wraps ErrLeaseLost.
func (m *Manager) Exclusive(ctx context.Context, p Principal, t *registry.Tenant, op string, fn func(ctx context.Context) error) error {
	return m.locked(ctx, p, t.Issuer, t.ExternalID, t.ID, op, fn)
}
