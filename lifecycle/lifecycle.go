// Package lifecycle runs a tenant's life from sign-up to purge:
//
//	provisioning → active | trial → suspended → archived → purged
//
// Provisioning creates the registry record first (status provisioning),
// then each backend's storage (a schema and its migrations, a SQLite
// file, ...), then makes the tenant active or trial. Archiving writes all
// of the tenant's data — every backend's, and its audit trail — into one
// archive (lifecycle/archive) in the archive store; purging removes the
// data from every backend once the retention period has passed; restoring
// brings it back from the archive, verifying every checksum first.
//
// Every operation persists the step it is about to run in the tenant's
// record (registry.Lifecycle) before running it, and every step is
// idempotent, so an operation interrupted at any point — a crash, a
// killed process, a failing backend — is finished by running it again
// (or by Manager.Reconcile, which the server runs in the background). No
// storage exists without a registry record naming it, so nothing is ever
// orphaned. Every step is recorded in the tenant's audit chain.
//
// Operations on one tenant are mutually exclusive, in one process and
// across processes and replicas sharing the registry: each holds a lease
// on the tenant in the registry's store while it runs (see
// registry.Lease), and an operation started meanwhile is refused at once
// with a *BusyError naming the one under way. Operations on different
// tenants run in parallel.
package lifecycle

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Auditor takes a place in the audit queue for an event (audit.Writer
// implements it). A step runs only once its event has a place.
type Auditor interface {
	Reserve(ctx context.Context) (*audit.Slot, error)
}

// Principal is who performs an operation.
type Principal struct {
	// Subject and Issuer identify the admin (a token's sub and iss; for
	// the CLI "cli:" + the operating-system user and no issuer; for the
	// server's own jobs "system:lifecycle").
	Subject string
	Issuer  string
	// Via is how the operation arrived: "mcp", "http", "cli" or "job".
	Via string
	// RequestID is the server's request id, if any.
	RequestID string
}

// System is the principal of the server's background jobs.
var System = Principal{Subject: "system:lifecycle", Via: "job"}

// Backend is one place tenant data lives.
type Backend struct {
	// Name names the backend's step and its archive section ("sql",
	// "docs", "blobs", "kv"). Required, unique.
	Name string
	// Provision creates what a new tenant needs in the backend; it must
	// be idempotent. Nil: nothing to create.
	Provision func(ctx context.Context, id tenant.ID) error
	// Data moves the tenant's data in and out and purges it. Nil: the
	// backend holds no data of its own (it shares another's).
	Data store.Portable
}

// Options configure a Manager. Registry is required.
type Options struct {
	Registry *registry.Registry
	// Backends, in provisioning order.
	Backends []Backend
	// Archives is where archives go. Nil: archive, purge and restore are
	// unavailable (ErrNoArchiveStore); provisioning works.
	Archives archive.Store
	// Audit records every step; nil means no audit trail.
	Audit Auditor
	// AuditStore, if set, is the audit trail put into archives (the
	// tenant's chain, as an export that verifies offline).
	AuditStore audit.Store
	// Strategy is the isolation strategy, recorded in archives; a restore
	// refuses an archive of another strategy.
	Strategy string
	// Retention is how long an archived tenant's data is kept before it
	// is purged; 0 = DefaultRetention.
	Retention time.Duration
	// TempDir spools archive parts; "" = os.TempDir().
	TempDir string
	// ServerVersion is written into archives.
	ServerVersion string
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// LeaseTTL is how long an operation's lease on its tenant lasts
	// without renewal (it is renewed every third of it while the
	// operation runs); 0 = DefaultLeaseTTL. It bounds how long a crashed
	// operation keeps others off its tenant. The clocks of the processes
	// sharing the registry must agree to well within it.
	LeaseTTL time.Duration
	// BeforeStep, if set, runs after a step is persisted and before it
	// runs; an error stops the operation there, as a crash would. For
	// fault-injection tests.
	BeforeStep func(op, step string, id tenant.ID) error
}

// DefaultRetention is how long archived data is kept by default.
const DefaultRetention = 30 * 24 * time.Hour

// Operations and the steps of registry.Lifecycle.
const (
	OpProvision = "provision"
	OpArchive   = "archive"
	OpPurge     = "purge"
	OpRestore   = "restore"

	// Operations that are never persisted in registry.Lifecycle, only
	// named in the tenant's lease: a delete runs an archive and a purge,
	// and an export changes nothing.
	opDelete = "delete"
	opExport = "export"

	stepRecord   = "record"
	stepActivate = "activate"
	stepSuspend  = "suspend"
	stepWrite    = "write"
	stepRemove   = "remove_record"
)

// Errors. Classify with errors.Is; the registry's ErrNotFound, ErrExists
// and ErrInvalid are returned as they are.
var (
	ErrNoArchiveStore = errors.New("lifecycle: no archive store is configured (lifecycle.archives, lifecycle.archive_dir)")
	ErrArchiveMissing = errors.New("lifecycle: the tenant's archive is missing from the archive store: refusing to purge data that exists nowhere else")
)

// Manager runs lifecycle operations. It is safe for concurrent use. Two
// operations on one tenant never run at once, whichever Managers (in this
// process or others) start them: the second is refused with a *BusyError
// (ErrBusy) while the first holds the tenant's lease.
type Manager struct {
	o   Options
	log *slog.Logger
}

// New validates o and returns a Manager.
func New(o Options) (*Manager, error) {
	var errs []error
	if o.Registry == nil {
		errs = append(errs, errors.New("lifecycle: Registry is required"))
	}
	seen := map[string]bool{}
	for _, b := range o.Backends {
		if b.Name == "" || seen[b.Name] || b.Name == "audit" {
			errs = append(errs, fmt.Errorf("lifecycle: backend name %q is empty, repeated or reserved", b.Name))
		}
		seen[b.Name] = true
	}
	if o.Retention < 0 {
		errs = append(errs, fmt.Errorf("lifecycle: Retention %s is negative", o.Retention))
	}
	if o.LeaseTTL < 0 || o.LeaseTTL > 0 && o.LeaseTTL < minLeaseTTL {
		errs = append(errs, fmt.Errorf("lifecycle: LeaseTTL %s is negative or shorter than %s, too short to be renewed in time", o.LeaseTTL, minLeaseTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.Retention = cmp.Or(o.Retention, DefaultRetention)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, DefaultLeaseTTL)
	o.Strategy = cmp.Or(o.Strategy, "unknown")
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{o: o, log: log}, nil
}

// Retention is how long archived data is kept.
func (m *Manager) Retention() time.Duration { return m.o.Retention }

// now is the clock in UTC to the microsecond, as the registry keeps it.
func (m *Manager) now() time.Time { return m.o.Now().UTC().Truncate(time.Microsecond) }

// record writes a lifecycle event into the tenant's chain, reserving its
// place first: with no room the step is not run.
func (m *Manager) record(ctx context.Context, p Principal, t *registry.Tenant, op, step string, detail map[string]string) (func(error), error) {
	var slot *audit.Slot
	if m.o.Audit != nil {
		var err error
		if slot, err = m.o.Audit.Reserve(ctx); err != nil {
			return nil, fmt.Errorf("lifecycle: cannot record %s/%s in the audit trail, so it was not done: %w", op, step, err)
		}
	}
	start := m.o.Now()
	return func(err error) {
		d := map[string]string{"step": step, "via": p.Via, "status": string(t.Status)}
		for k, v := range detail {
			d[k] = v
		}
		e := &audit.Event{
			Time: start, RequestID: p.RequestID, Tenant: string(t.ID), ExternalID: t.ExternalID, Issuer: t.Issuer,
			Actor: &audit.Actor{Sub: p.Subject, Issuer: p.Issuer}, Kind: audit.KindLifecycle,
			Method: "lifecycle/" + op, Outcome: audit.OutcomeOK, Detail: d,
			LatencyMicros: max(m.o.Now().Sub(start).Microseconds(), 1),
		}
		if err != nil {
			e.Outcome, e.ErrorClass = audit.OutcomeError, "step_failed"
			m.log.Warn("lifecycle step failed", "tenant_id", t.ID, "operation", op, "step", step, "error", err)
		} else {
			m.log.Info("lifecycle step", "tenant_id", t.ID, "operation", op, "step", step)
		}
		slot.Commit(e)
	}, nil
}

// step persists (op, step) in the tenant's record, runs the test hook,
// then run, recording the step in the audit trail.
func (m *Manager) step(ctx context.Context, p Principal, t *registry.Tenant, op, step string, detail map[string]string, run func() error) (*registry.Tenant, error) {
	t, err := m.o.Registry.Update(ctx, t.ID, func(r *registry.Tenant) error {
		r.Lifecycle.Operation, r.Lifecycle.Step = op, step
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lifecycle: %s: persist step %s: %w", op, step, err)
	}
	done, err := m.record(ctx, p, t, op, step, detail)
	if err != nil {
		return t, err
	}
	if m.o.BeforeStep != nil {
		if err := m.o.BeforeStep(op, step, t.ID); err != nil {
			done(err)
			return t, err
		}
	}
	err = run()
	done(err)
	if err != nil {
		return t, fmt.Errorf("lifecycle: %s: %s: %w", op, step, err)
	}
	return t, nil
}

// Provision registers rec and creates its storage, ending in rec.Status
// (active, the default, or trial). If (issuer, external id) is already
// registered and still provisioning — an earlier attempt was interrupted
// — it finishes that tenant instead; any other existing tenant is
// registry.ErrExists. While another operation holds the tenant — another
// create of it among them — it is refused with a *BusyError that also
// matches registry.ErrExists.
func (m *Manager) Provision(ctx context.Context, p Principal, rec registry.Tenant) (*registry.Tenant, error) {
	target := cmp.Or(rec.Status, registry.StatusActive)
	if target != registry.StatusActive && target != registry.StatusTrial {
		return nil, &registry.ValidationError{Problems: []string{fmt.Sprintf("status: a new tenant is active or trial, not %q", target)}}
	}
	return m.lockedRecord(ctx, p, rec.Issuer, rec.ExternalID, "", OpProvision, func(ctx context.Context) (*registry.Tenant, error) {
		return m.provisionNew(ctx, p, rec, target)
	})
}

// provisionNew is Provision, holding the tenant's lease.
func (m *Manager) provisionNew(ctx context.Context, p Principal, rec registry.Tenant, target registry.Status) (*registry.Tenant, error) {
	prev, err := m.o.Registry.Lookup(ctx, rec.Issuer, rec.ExternalID)
	switch {
	case err == nil && prev.Status == registry.StatusProvisioning:
		return m.provision(ctx, p, prev)
	case err == nil:
		return nil, registry.ExistsError(rec.Issuer, rec.ExternalID)
	case !errors.Is(err, registry.ErrNotFound):
		return nil, err
	}
	rec.Status = registry.StatusProvisioning
	rec.Lifecycle = registry.Lifecycle{Operation: OpProvision, Step: stepRecord, Target: target}
	t, err := m.o.Registry.Add(ctx, rec)
	if err != nil {
		return nil, err
	}
	done, err := m.record(ctx, p, t, OpProvision, stepRecord, nil)
	if err != nil {
		return nil, err
	}
	done(nil)
	return m.provision(ctx, p, t)
}

// provision runs every backend's Provision (all idempotent, so resuming
// simply runs them again from the persisted step) and activates t.
func (m *Manager) provision(ctx context.Context, p Principal, t *registry.Tenant) (*registry.Tenant, error) {
	start := 0
	for i, b := range m.o.Backends {
		if b.Name == t.Lifecycle.Step {
			start = i
		}
	}
	var err error
	for _, b := range m.o.Backends[start:] {
		if b.Provision == nil {
			continue
		}
		if t, err = m.step(ctx, p, t, OpProvision, b.Name, nil, func() error { return b.Provision(ctx, t.ID) }); err != nil {
			return t, err
		}
	}
	target := cmp.Or(t.Lifecycle.Target, registry.StatusActive)
	var out *registry.Tenant
	_, err = m.step(ctx, p, t, OpProvision, stepActivate, map[string]string{"to": string(target)}, func() error {
		var uerr error
		out, uerr = m.o.Registry.Update(ctx, t.ID, func(r *registry.Tenant) error {
			if err := registry.Transition(r.Status, target); err != nil {
				return err
			}
			r.Status, r.Lifecycle = target, registry.Lifecycle{}
			return nil
		})
		return uerr
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// get returns the tenant with id, or registry.ErrNotFound.
func (m *Manager) get(ctx context.Context, id tenant.ID) (*registry.Tenant, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("%w: %q is not a tenant id", registry.ErrNotFound, id)
	}
	return m.o.Registry.Get(ctx, id)
}

func invalid(format string, args ...any) error {
	return &registry.ValidationError{Problems: []string{fmt.Sprintf(format, args...)}}
}

// Archive suspends the tenant (its requests are refused at once), writes
// all of its data into an archive in the archive store, and marks it
// archived, to be purged after the retention period. Its data stays in
// the backends until then. Archiving an archived tenant changes nothing.
func (m *Manager) Archive(ctx context.Context, p Principal, id tenant.ID) (*registry.Tenant, error) {
	return m.lockedID(ctx, p, id, OpArchive, func(ctx context.Context) (*registry.Tenant, error) {
		return m.archive(ctx, p, id, false)
	})
}

// lockedID runs fn holding the lease of the tenant with id for op (see
// locked); a tenant that is not registered is registry.ErrNotFound.
func (m *Manager) lockedID(ctx context.Context, p Principal, id tenant.ID, op string, fn func(ctx context.Context) (*registry.Tenant, error)) (*registry.Tenant, error) {
	t, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.lockedRecord(ctx, p, t.Issuer, t.ExternalID, t.ID, op, fn)
}

// Delete archives the tenant and marks it deleted: once its data is
// purged (after the retention period, or at once with purgeNow) its
// registration is removed too, so its external id can be registered
// again — as a new tenant with a new internal id, which never sees the
// old data unless an operator restores the archive. A purged tenant has
// nothing left to archive or purge: its registration is removed at once.
func (m *Manager) Delete(ctx context.Context, p Principal, id tenant.ID, purgeNow bool) (*registry.Tenant, error) {
	return m.lockedID(ctx, p, id, opDelete, func(ctx context.Context) (*registry.Tenant, error) {
		return m.delete(ctx, p, id, purgeNow)
	})
}

func (m *Manager) delete(ctx context.Context, p Principal, id tenant.ID, purgeNow bool) (*registry.Tenant, error) {
	t, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Status == registry.StatusPurged && t.Lifecycle.Operation == "" {
		if t, err = m.o.Registry.Update(ctx, id, func(r *registry.Tenant) error { r.Lifecycle.Deleted = true; return nil }); err != nil {
			return nil, err
		}
		return m.remove(ctx, p, t)
	}
	t, err = m.archive(ctx, p, id, true)
	if err != nil || !purgeNow {
		return t, err
	}
	return m.purge(ctx, p, id)
}

func (m *Manager) archive(ctx context.Context, p Principal, id tenant.ID, deleted bool) (*registry.Tenant, error) {
	if m.o.Archives == nil {
		return nil, ErrNoArchiveStore
	}
	t, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case t.Status == registry.StatusArchived && t.Lifecycle.Operation == "":
		if deleted && !t.Lifecycle.Deleted {
			return m.o.Registry.Update(ctx, id, func(r *registry.Tenant) error { r.Lifecycle.Deleted = true; return nil })
		}
		return t, nil
	case t.Lifecycle.Operation == OpArchive: // resume
	case t.Lifecycle.Operation != "":
		return nil, invalid("tenant: a %s is in progress (step %s); finish it first", t.Lifecycle.Operation, t.Lifecycle.Step)
	case t.Status != registry.StatusActive && t.Status != registry.StatusTrial && t.Status != registry.StatusSuspended:
		return nil, invalid("tenant: a %s tenant cannot be archived", t.Status)
	}
	// Suspend, unless an interrupted archive got past it. Resumed at the
	// suspend step, it may or may not have run: Target is set once it has
	// (a tenant outside an operation has none), and then the status
	// before archiving and the archive's name are kept. Until then
	// Archive may still name the tenant's previous archive, which must
	// not be overwritten.
	if t.Lifecycle.Operation != OpArchive || t.Lifecycle.Step == stepSuspend {
		name := fmt.Sprintf("%s/%s.tar.gz", t.ID, m.now().Format("20060102T150405.000000Z"))
		if _, err = m.step(ctx, p, t, OpArchive, stepSuspend, map[string]string{"archive": name}, func() error {
			_, uerr := m.o.Registry.Update(ctx, id, func(r *registry.Tenant) error {
				if r.Lifecycle.Target == "" {
					r.Lifecycle.Target, r.Lifecycle.Archive = r.Status, name
				}
				r.Status = registry.StatusSuspended
				r.Lifecycle.Deleted = r.Lifecycle.Deleted || deleted
				return nil
			})
			return uerr
		}); err != nil {
			return nil, err
		}
		if t, err = m.get(ctx, id); err != nil {
			return nil, err
		}
	}
	name := t.Lifecycle.Archive
	if t, err = m.step(ctx, p, t, OpArchive, stepWrite, map[string]string{"archive": name}, func() error {
		return m.store(ctx, t, name)
	}); err != nil {
		return t, err
	}
	return m.o.Registry.Update(ctx, id, func(r *registry.Tenant) error {
		if err := registry.Transition(r.Status, registry.StatusArchived); err != nil {
			return err
		}
		now := m.now()
		r.Status = registry.StatusArchived
		r.Lifecycle.Operation, r.Lifecycle.Step = "", ""
		r.Lifecycle.ArchivedAt, r.Lifecycle.PurgeAfter = now, now.Add(m.o.Retention)
		return nil
	})
}

// SumSuffix names the object beside an archive in the archive store that
// holds its SHA-256 (hex): a restore from the store checks the whole
// file against it, so not even the manifest can be changed unnoticed.
const SumSuffix = ".sha256"

// store writes t's archive into the archive store under name, and its
// SHA-256 beside it.
func (m *Manager) store(ctx context.Context, t *registry.Tenant, name string) error {
	pr, pw := io.Pipe()
	type result struct {
		sum string
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := m.write(ctx, t, pw)
		pw.CloseWithError(err)
		done <- result{sum, err}
	}()
	perr := m.o.Archives.Put(ctx, name, pr)
	pr.CloseWithError(errors.New("archive store stopped reading"))
	res := <-done
	if res.err != nil {
		return res.err
	}
	if perr != nil {
		return perr
	}
	return m.o.Archives.Put(ctx, name+SumSuffix, strings.NewReader(res.sum+"\n"))
}

// Export writes the tenant's archive to w without changing anything: a
// customer's data-export request. The tenant keeps being served.
//
// It holds the tenant's lease like the operations that change it, so an
// export never reads data that a purge or restore is changing. p is who
// asks, named in the refusals of others meanwhile.
func (m *Manager) Export(ctx context.Context, p Principal, id tenant.ID, w io.Writer) error {
	_, err := m.lockedID(ctx, p, id, opExport, func(ctx context.Context) (*registry.Tenant, error) {
		t, err := m.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if t.Status == registry.StatusPurged || t.Status == registry.StatusProvisioning {
			return nil, invalid("tenant: a %s tenant has no data to export", t.Status)
		}
		_, err = m.write(ctx, t, w)
		return nil, err
	})
	return err
}

// RestoreArchive restores from the archive named name in the archive
// store, checking it against the SHA-256 stored beside it.
func (m *Manager) RestoreArchive(ctx context.Context, p Principal, name string) (*registry.Tenant, error) {
	if m.o.Archives == nil {
		return nil, ErrNoArchiveStore
	}
	if strings.HasSuffix(name, SumSuffix) {
		return nil, invalid("archive: %q is an archive's checksum, not an archive", name)
	}
	sum, err := m.archiveSum(ctx, name)
	if err != nil {
		return nil, err
	}
	rc, err := m.o.Archives.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("archive %q: %w", name, err)
	}
	defer rc.Close()
	return m.Restore(ctx, p, rc, sum)
}

// archiveSum reads the SHA-256 stored beside an archive.
func (m *Manager) archiveSum(ctx context.Context, name string) (string, error) {
	rc, err := m.o.Archives.Open(ctx, name+SumSuffix)
	if err != nil {
		return "", fmt.Errorf("archive %q: its checksum %s: %w", name, name+SumSuffix, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 128))
	if err != nil {
		return "", fmt.Errorf("archive %q: its checksum: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// AuditSection is the archive section of the tenant's audit trail.
const AuditSection = "audit"

// write writes t's archive: every backend's data in its own section,
// the audit trail in AuditSection, the record in the manifest. It
// returns the archive's SHA-256; on error the output is left unfinished
// (an archive Open refuses), never a valid archive of part of the data.
func (m *Manager) write(ctx context.Context, t *registry.Tenant, w io.Writer) (string, error) {
	rec, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	aw := archive.NewWriter(w, archive.Meta{Tenant: rec, Strategy: m.o.Strategy, ServerVersion: m.o.ServerVersion, CreatedAt: m.o.Now()},
		&archive.WriterOptions{TempDir: m.o.TempDir})
	if err := m.writeSections(ctx, t, aw); err != nil {
		aw.Abort()
		return "", err
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	_, sum := aw.Sum()
	return sum, nil
}

func (m *Manager) writeSections(ctx context.Context, t *registry.Tenant, aw *archive.Writer) error {
	for _, b := range m.o.Backends {
		if b.Data == nil {
			continue
		}
		if err := b.Data.Export(ctx, t.ID, aw.Section(b.Name)); err != nil {
			return fmt.Errorf("export %s: %w", b.Name, err)
		}
	}
	if m.o.AuditStore == nil {
		return nil
	}
	pw, err := aw.Section(AuditSection).Create("trail.jsonl")
	if err != nil {
		return err
	}
	if err := audit.Export(ctx, m.o.AuditStore, string(t.ID), time.Time{}, time.Time{}, pw); err != nil {
		pw.Close()
		return fmt.Errorf("export audit trail: %w", err)
	}
	return pw.Close()
}

// Purge removes the archived tenant's data from every backend (its audit
// trail stays until its own retention ends) and marks it purged; a
// deleted tenant's registration is removed too. The archive must be in
// the archive store. A purge interrupted halfway finishes when run again.
func (m *Manager) Purge(ctx context.Context, p Principal, id tenant.ID) (*registry.Tenant, error) {
	if m.o.Archives == nil {
		return nil, ErrNoArchiveStore
	}
	return m.lockedID(ctx, p, id, OpPurge, func(ctx context.Context) (*registry.Tenant, error) {
		return m.purge(ctx, p, id)
	})
}

func (m *Manager) purge(ctx context.Context, p Principal, id tenant.ID) (*registry.Tenant, error) {
	if m.o.Archives == nil {
		return nil, ErrNoArchiveStore
	}
	t, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case t.Status == registry.StatusPurged && t.Lifecycle.Operation == "":
		return t, nil
	case t.Lifecycle.Operation == OpPurge: // resume
	case t.Status != registry.StatusArchived || t.Lifecycle.Operation != "":
		return nil, invalid("tenant: only an archived tenant is purged (this one is %s); archive it first", t.Status)
	}
	rc, err := m.o.Archives.Open(ctx, t.Lifecycle.Archive)
	if err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", ErrArchiveMissing, t.Lifecycle.Archive, err)
	}
	rc.Close()
	for _, b := range m.o.Backends {
		if b.Data == nil {
			continue
		}
		if t, err = m.step(ctx, p, t, OpPurge, b.Name, nil, func() error { return b.Data.Purge(ctx, id) }); err != nil {
			return t, err
		}
	}
	if t.Lifecycle.Deleted {
		return m.remove(ctx, p, t)
	}
	return m.o.Registry.Update(ctx, id, func(r *registry.Tenant) error {
		r.Status = registry.StatusPurged
		r.Lifecycle.Operation, r.Lifecycle.Step, r.Lifecycle.PurgedAt = "", "", m.now()
		return nil
	})
}

// remove removes the registration of t, deleted and purged, and returns
// its last record.
func (m *Manager) remove(ctx context.Context, p Principal, t *registry.Tenant) (*registry.Tenant, error) {
	_, err := m.step(ctx, p, t, OpPurge, stepRemove, map[string]string{"archive": t.Lifecycle.Archive}, func() error {
		return m.o.Registry.Delete(ctx, t.ID)
	})
	if err != nil {
		return nil, err
	}
	if t.Status != registry.StatusPurged { // purged just now
		t.Lifecycle.PurgedAt = m.now()
	}
	t.Status, t.Lifecycle.Operation, t.Lifecycle.Step = registry.StatusPurged, "", ""
	return t, nil
}

// PurgeDue purges every archived tenant whose retention has passed. It
// returns how many it purged; a tenant that fails does not stop the
// others (their errors are joined). A tenant that another operation holds
// is left for a later run: that operation may be restoring it.
func (m *Manager) PurgeDue(ctx context.Context, p Principal) (int, error) {
	now := m.o.Now()
	var errs []error
	n := 0
	err := m.each(ctx, func(t *registry.Tenant) {
		if !purgeDue(t, now) {
			return
		}
		purged := false
		err := m.locked(ctx, p, t.Issuer, t.ExternalID, t.ID, OpPurge, func(ctx context.Context) error {
			// Read again under the lease: the holder before may have
			// restored it.
			t, err := m.get(ctx, t.ID)
			if errors.Is(err, registry.ErrNotFound) || err == nil && !purgeDue(t, now) {
				return nil
			}
			if err != nil {
				return err
			}
			_, err = m.purge(ctx, p, t.ID)
			purged = err == nil
			return err
		})
		var busy *BusyError
		switch {
		case errors.As(err, &busy):
			m.log.Info("lifecycle: a tenant due to be purged is busy; it is purged later", "tenant_id", t.ID, "error", err)
		case err != nil:
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.ID, err))
		case purged:
			n++
		}
	})
	return n, errors.Join(append(errs, err)...)
}

// purgeDue reports whether t is to be purged at now: archived past its
// retention, or with a purge interrupted.
func purgeDue(t *registry.Tenant, now time.Time) bool {
	due := t.Status == registry.StatusArchived && !t.Lifecycle.PurgeAfter.IsZero() && !now.Before(t.Lifecycle.PurgeAfter)
	return due || t.Lifecycle.Operation == OpPurge
}

// each calls fn for every tenant, in pages.
func (m *Manager) each(ctx context.Context, fn func(*registry.Tenant)) error {
	var after tenant.ID
	for {
		page, err := m.o.Registry.Store().List(ctx, after, registry.DefaultPageSize)
		if err != nil {
			return err
		}
		for _, t := range page {
			fn(t)
			after = t.ID
		}
		if len(page) < registry.DefaultPageSize {
			return nil
		}
	}
}

// Restore brings a tenant back from an archive (read from r), verifying
// every part's checksum before anything is changed: a corrupt archive is
// refused naming the failing part. The tenant must be purged, deleted
// (no longer registered) or archived; an archived tenant whose data is
// still in place is simply returned to its status before archiving. The
// tenant comes back under its own internal id, with the status it had
// before it was archived. A restore interrupted halfway finishes when run
// again with the same archive.
func (m *Manager) Restore(ctx context.Context, p Principal, r io.Reader, sha256 string) (*registry.Tenant, error) {
	a, err := archive.Open(r, m.o.TempDir, &archive.OpenOptions{SHA256: sha256})
	if err != nil {
		return nil, err
	}
	defer a.Close()
	man := a.Manifest()
	if man.Strategy != m.o.Strategy {
		return nil, invalid("archive: made with isolation strategy %q, this deployment uses %q", man.Strategy, m.o.Strategy)
	}
	var rec registry.Tenant
	if err := json.Unmarshal(man.Tenant, &rec); err != nil || !rec.ID.Valid() {
		return nil, invalid("archive: its tenant record is not valid: %v", err)
	}
	return m.lockedRecord(ctx, p, rec.Issuer, rec.ExternalID, rec.ID, OpRestore, func(ctx context.Context) (*registry.Tenant, error) {
		return m.restore(ctx, p, a, rec)
	})
}

// restore is Restore from the verified archive a of the tenant rec,
// holding the tenant's lease.
func (m *Manager) restore(ctx context.Context, p Principal, a *archive.Archive, rec registry.Tenant) (*registry.Tenant, error) {
	t, err := m.o.Registry.Get(ctx, rec.ID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		back := rec
		back.Status = registry.StatusPurged
		// An archive's record is suspended, with the status before in
		// Target; an export's is the tenant as it was.
		back.Lifecycle = registry.Lifecycle{Operation: OpRestore, Step: stepRecord, Target: cmp.Or(rec.Lifecycle.Target, rec.Status), Archive: rec.Lifecycle.Archive}
		if t, err = m.o.Registry.Reinstate(ctx, back); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case t.Status == registry.StatusArchived && (t.Lifecycle.Operation == "" || t.Lifecycle.Operation == OpRestore):
		// The data never left: serve it again as it was (also when an
		// earlier restore stopped before doing so).
		return m.finishRestore(ctx, p, t)
	case t.Status == registry.StatusPurged && (t.Lifecycle.Operation == "" || t.Lifecycle.Operation == OpRestore):
	default:
		return nil, invalid("tenant %s is %s: only a purged, deleted or archived tenant is restored", t.ID, t.Status)
	}
	for _, b := range m.o.Backends {
		if b.Data == nil {
			continue
		}
		// Purge first: a restore that stopped halfway left part of this
		// backend's data behind.
		if t, err = m.step(ctx, p, t, OpRestore, b.Name, nil, func() error {
			if err := b.Data.Purge(ctx, t.ID); err != nil {
				return err
			}
			return b.Data.Import(ctx, t.ID, a.Section(b.Name))
		}); err != nil {
			return t, err
		}
	}
	return m.finishRestore(ctx, p, t)
}

func (m *Manager) finishRestore(ctx context.Context, p Principal, t *registry.Tenant) (*registry.Tenant, error) {
	target := cmp.Or(t.Lifecycle.Target, registry.StatusSuspended)
	var out *registry.Tenant
	_, err := m.step(ctx, p, t, OpRestore, stepActivate, map[string]string{"to": string(target)}, func() error {
		var uerr error
		out, uerr = m.o.Registry.Update(ctx, t.ID, func(r *registry.Tenant) error {
			if err := registry.Transition(r.Status, target); err != nil {
				return err
			}
			r.Status = target
			r.Lifecycle = registry.Lifecycle{Archive: r.Lifecycle.Archive}
			return nil
		})
		return uerr
	})
	return out, err
}

// Reconcile finishes every provisioning, archive and purge that was
// interrupted and has been idle for at least idle, and every restore of
// an archived tenant whose data never left (any other restore needs its
// archive: it is logged, for an operator to run again). A tenant whose
// operation still holds its lease (it is running, here or elsewhere) is
// left alone. Errors of single tenants are joined; the others are still
// finished.
func (m *Manager) Reconcile(ctx context.Context, p Principal, idle time.Duration) (int, error) {
	now := m.o.Now()
	var errs []error
	n := 0
	err := m.each(ctx, func(t *registry.Tenant) {
		op := t.Lifecycle.Operation
		if op == "" || now.Sub(t.UpdatedAt) < idle {
			return
		}
		finished := false
		err := m.locked(ctx, p, t.Issuer, t.ExternalID, t.ID, op, func(ctx context.Context) error {
			// Read again under the lease: the holder before may have
			// finished the operation.
			t, err := m.get(ctx, t.ID)
			if errors.Is(err, registry.ErrNotFound) || err == nil && t.Lifecycle.Operation != op {
				return nil
			}
			if err != nil {
				return err
			}
			switch op {
			case OpProvision:
				_, err = m.provision(ctx, p, t)
			case OpArchive:
				_, err = m.archive(ctx, p, t.ID, t.Lifecycle.Deleted)
			case OpPurge:
				_, err = m.purge(ctx, p, t.ID)
			case OpRestore:
				if t.Status != registry.StatusArchived {
					m.log.Warn("lifecycle: an interrupted restore needs its archive: run the restore again", "tenant_id", t.ID, "step", t.Lifecycle.Step)
					return nil
				}
				// A restore in place: the data never left.
				_, err = m.finishRestore(ctx, p, t)
			default:
				m.log.Warn("lifecycle: an interrupted operation needs an operator", "tenant_id", t.ID, "operation", op, "step", t.Lifecycle.Step)
				return nil
			}
			finished = err == nil
			return err
		})
		var busy *BusyError
		switch {
		case errors.As(err, &busy):
			m.log.Info("lifecycle: an operation is under way; not finishing it", "tenant_id", t.ID, "error", err)
		case err != nil:
			errs = append(errs, fmt.Errorf("tenant %s: finish %s: %w", t.ID, op, err))
		case finished:
			n++
		}
	})
	return n, errors.Join(append(errs, err)...)
}
