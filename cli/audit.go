package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// openAuditStore returns the audit store of an opened deployment; the
// deployment owns it (a.Close closes it). Tests replace it
// (SetAuditStore).
var openAuditStore = func(_ context.Context, a *app.App) (audit.Store, error) {
	if s := a.Audit(); s != nil {
		return s, nil
	}
	return nil, errors.New("this deployment keeps no audit trail (audit.enabled = false)")
}

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and export the tamper-evident audit trail; print its public key",
		Long: `Every tenant's audit events form a hash chain: each event's hash covers the
previous one's, so a changed, removed or reordered event breaks the chain. At
intervals and on shutdown the server signs a checkpoint of each chain (its
length and head hash, Ed25519), so truncation and wholesale rewriting are
caught too. Events that belong to no tenant (refusals before a tenant is
known) form the system chain.

  audit key      print the public key that verifies the checkpoints
  audit verify   verify the stored chains, or an exported file offline
  audit export   write a tenant's trail as JSON lines for an auditor

The export format is documented in docs/audit.md, so an auditor can check it
with their own tools (SHA-256 and Ed25519) as well as with 'audit verify'.`,
	}
	cmd.AddCommand(newAuditKeyCmd(e), newAuditVerifyCmd(e), newAuditExportCmd(e), newAuditPruneCmd(e))
	return cmd
}

func newAuditKeyCmd(e *env) *cobra.Command {
	var tf targetFlags
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Print the public key that verifies the audit checkpoints, and its key id",
		Long: `Print the public key of the deployment's audit signing key ("ed25519:" and
base64, the form 'audit verify --key' reads) on the first line, its key id on
the second. Give it to whoever verifies exports. The server creates the
signing key on first start (in the data directory unless
audit.signing_key_file names one); this command never creates it.`,
		Example: `  tenantmcp audit key --config deploy.toml
  tenantmcp audit key --data ./tenantmcp-data
  tenantmcp audit key --config deploy.toml | head -1 > audit-public-key.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			pub, err := deploymentPublicKey(t)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, audit.FormatPublicKey(pub))
			fmt.Fprintln(e.stdout, "key id:", audit.KeyID(pub))
			return nil
		},
	}
	tf.add(cmd)
	return cmd
}

// deploymentPublicKey reads the public half of t's signing key.
func deploymentPublicKey(t *target) (ed25519.PublicKey, error) {
	pub, err := app.AuditPublicKey(t.cfg)
	if errors.Is(err, fs.ErrNotExist) {
		path, _ := app.AuditKeyPath(t.cfg)
		return nil, fmt.Errorf("no audit signing key yet (%s): the server creates it on first start", path)
	}
	return pub, err
}

// auditTarget names the chain of one tenant (--tenant) or the system's
// (--system).
type auditTarget struct {
	tenant string
	system bool
}

func (at *auditTarget) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&at.tenant, "tenant", "", "the tenant: its external id (as in tokens) or internal id (t…); an internal id also finds a deleted tenant's trail")
	cmd.Flags().BoolVar(&at.system, "system", false, "the system chain: events that belong to no tenant (refusals before a tenant is known)")
}

// chainRow is one chain to verify or export, with the tenant it belongs
// to for people.
type chainRow struct {
	chain string
	who   string
}

// resolve finds the chain at names.
func (at *auditTarget) resolve(cmd *cobra.Command, e *env, tf *targetFlags, t *target, a *app.App) (chainRow, error) {
	if at.system {
		return chainRow{chain: audit.SystemChain, who: "(system)"}, nil
	}
	ctx := cmd.Context()
	if id, err := tenant.ParseID(at.tenant); err == nil {
		rec, err := a.Registry.Get(ctx, id)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return chainRow{chain: string(id), who: "(not registered)"}, nil
		case err != nil:
			return chainRow{}, fmt.Errorf("tenant %q: %w", at.tenant, err)
		}
		return chainRow{chain: string(rec.ID), who: rec.ExternalID}, nil
	}
	rec, err := a.Registry.Lookup(ctx, a.Issuer(), at.tenant)
	if errors.Is(err, registry.ErrNotFound) {
		return chainRow{}, fmt.Errorf("no tenant %q: list them with '%s tenant list %s'", at.tenant, e.command(), t.flags())
	}
	if err != nil {
		return chainRow{}, fmt.Errorf("tenant %q: %w", at.tenant, err)
	}
	return chainRow{chain: string(rec.ID), who: rec.ExternalID}, nil
}

// withAudit opens the deployment's registry and audit store.
func withAudit(cmd *cobra.Command, e *env, tf *targetFlags, fn func(t *target, a *app.App, s audit.Store) error) error {
	t, a, err := tf.openRegistry(cmd, e)
	if err != nil {
		return err
	}
	defer a.Close()
	s, err := openAuditStore(cmd.Context(), a)
	if err != nil {
		return err
	}
	return fn(t, a, s)
}

// errBroken makes the command exit 1 after it printed why.
type errBroken struct{ msg string }

func (e errBroken) Error() string { return e.msg }

func newAuditVerifyCmd(e *env) *cobra.Command {
	var (
		tf   targetFlags
		at   auditTarget
		all  bool
		file string
		key  string
	)
	cmd := &cobra.Command{
		Use:   "verify [--tenant ID | --system | --all] [--key PUBKEY] | --file FILE --key PUBKEY",
		Short: "Verify the stored audit chains, or an exported file offline",
		Long: `Verify audit chains: every event's sequence number, its link to the previous
event and its hash, and every signed checkpoint — its signature, and that the
chain had the checkpoint's hash at the checkpoint's count. A changed, removed,
reordered or truncated event is reported with the first broken link:
"BROKEN at event N: reason". The exit status is 1 if any chain is broken.

Stored chains: all of them (--all, the default), one tenant's (--tenant) or the
system chain (--system). The checkpoints are checked with the deployment's
signing key, or with --key: give the key you published, so that a replaced
key file cannot pass off a rewritten trail.

An export (--file, written by 'audit export') is verified offline with nothing
but the file and the public key (--key, as 'audit key' prints it, or a file
holding it) — what a customer's auditor does. It passes if it is intact and
its events are covered by a signed checkpoint; events newer than the latest
checkpoint are reported as not yet signed. Compare the latest checkpoint it
prints with one from the server to rule out an export cut back to an earlier
checkpoint.`,
		Example: `  tenantmcp audit verify --config deploy.toml
  tenantmcp audit verify --config deploy.toml --tenant org_9fQ2
  tenantmcp audit verify --data ./tenantmcp-data --system
  tenantmcp audit verify --file acme-audit.jsonl --key ed25519:Base64PublicKey…=
  tenantmcp audit verify --file acme-audit.jsonl --key audit-public-key.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if tf.config != "" || tf.data != "" || at.tenant != "" || at.system || all {
					return usagef(cmd, "--file verifies an export offline: give only --file and --key")
				}
				if key == "" {
					return usagef(cmd, "--file needs --key PUBKEY: the deployment's public key, as 'audit key' prints it")
				}
				pub, err := readPublicKey(key)
				if err != nil {
					return usagef(cmd, "--key: %v", err)
				}
				return verifyFile(e, file, pub)
			}
			if n := btoi(at.tenant != "") + btoi(at.system) + btoi(all); n > 1 {
				return usagef(cmd, "give one of --tenant, --system and --all")
			}
			var pub ed25519.PublicKey
			if key != "" {
				var err error
				if pub, err = readPublicKey(key); err != nil {
					return usagef(cmd, "--key: %v", err)
				}
			}
			return withAudit(cmd, e, &tf, func(t *target, a *app.App, s audit.Store) error {
				if pub == nil {
					var err error
					if pub, err = deploymentPublicKey(t); err != nil {
						return err
					}
				}
				var rows []chainRow
				if at.tenant != "" || at.system {
					row, err := at.resolve(cmd, e, &tf, t, a)
					if err != nil {
						return err
					}
					rows = []chainRow{row}
				} else {
					var err error
					if rows, err = allChains(cmd.Context(), a, s); err != nil {
						return err
					}
				}
				return verifyChains(cmd.Context(), e, s, pub, rows)
			})
		},
	}
	tf.add(cmd)
	at.add(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "every chain: all registered tenants', the system's and any other stored (the default)")
	cmd.Flags().StringVar(&file, "file", "", "verify this export offline (with --key)")
	cmd.Flags().StringVar(&key, "key", "", "public key to check checkpoints with: \"ed25519:…\" as 'audit key' prints it, or a file holding it")
	return cmd
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readPublicKey reads --key: the key itself, or a file holding it.
func readPublicKey(s string) (ed25519.PublicKey, error) {
	if !strings.HasPrefix(strings.TrimSpace(s), "ed25519:") {
		if b, err := os.ReadFile(s); err == nil {
			s = string(b)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 && strings.TrimSpace(s[i:]) != "" {
		s = s[:i] // 'audit key' output saved whole: the key is its first line
	}
	return audit.ParsePublicKey(s)
}

// allChains is every chain of the deployment: those of registered
// tenants (with or without events: a chain emptied but for its
// checkpoints is truncated), the system chain and any other stored one
// (a deleted tenant's).
func allChains(ctx context.Context, a *app.App, s audit.Store) ([]chainRow, error) {
	recs, err := a.Registry.List(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := s.Chains(ctx)
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	seen := map[string]bool{}
	var rows []chainRow
	for _, c := range stored {
		if c == audit.SystemChain {
			rows = append(rows, chainRow{chain: c, who: "(system)"})
			seen[c] = true
		}
	}
	for _, r := range recs {
		rows = append(rows, chainRow{chain: string(r.ID), who: r.ExternalID})
		seen[string(r.ID)] = true
	}
	for _, c := range stored {
		if !seen[c] {
			rows = append(rows, chainRow{chain: c, who: "(not registered)"})
		}
	}
	return rows, nil
}

func verifyChains(ctx context.Context, e *env, s audit.Store, pub ed25519.PublicKey, rows []chainRow) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHAIN\tTENANT\tEVENTS\tCHECKPOINTS\tSTATUS")
	broken := 0
	for _, row := range rows {
		rep, err := audit.VerifyStore(ctx, s, row.chain, pub)
		if err != nil {
			tw.Flush()
			return err
		}
		if !rep.OK() {
			broken++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", chainName(row.chain), row.who, rep.Events, rep.Checkpoints, rep.Status())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if broken > 0 {
		return errBroken{fmt.Sprintf("%d of %d audit chains broken (key %s)", broken, len(rows), audit.KeyID(pub))}
	}
	fmt.Fprintf(e.stderr, "%d audit chains verified with key %s\n", len(rows), audit.KeyID(pub))
	return nil
}

func chainName(c string) string {
	if c == audit.SystemChain {
		return "system"
	}
	return c
}

func verifyFile(e *env, path string, pub ed25519.PublicKey) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := audit.VerifyExport(f, pub)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	w := e.stdout
	fmt.Fprintf(w, "file:         %s\n", path)
	fmt.Fprintf(w, "chain:        %s\n", chainName(rep.Chain))
	switch {
	case rep.Events == 0:
		fmt.Fprintf(w, "events:       none verified\n")
	default:
		fmt.Fprintf(w, "events:       %d (event %d to %d)\n", rep.Events, rep.From.Seq+1, rep.Head.Seq)
	}
	fmt.Fprintf(w, "checkpoints:  %d verified with key %s\n", rep.Checkpoints, audit.KeyID(pub))
	if l := rep.Latest; l != nil {
		fmt.Fprintf(w, "latest:       count %d, head %s, signed %s\n", l.Count, l.Head, l.Time.UTC().Format(time.RFC3339))
	}
	if n := rep.Unsigned(); n > 0 && rep.OK() {
		fmt.Fprintf(w, "not signed:   %d events after the latest checkpoint\n", n)
	}
	fmt.Fprintf(w, "status:       %s\n", rep.Status())
	switch {
	case !rep.OK():
		return errBroken{fmt.Sprintf("%s: audit chain broken at event %d", path, rep.FirstBroken.Seq)}
	case rep.Events > 0 && rep.Signed <= rep.From.Seq:
		// Without a checkpoint anyone could have written the chain.
		return errBroken{fmt.Sprintf("%s: no signed checkpoint covers its events: they prove nothing", path)}
	}
	return nil
}

func newAuditExportCmd(e *env) *cobra.Command {
	var (
		tf           targetFlags
		at           auditTarget
		since, until string
		out          string
	)
	cmd := &cobra.Command{
		Use:   "export --tenant ID [--since TIME] [--until TIME] [-o FILE]",
		Short: "Write a tenant's audit trail and checkpoints as JSON lines",
		Long: `Write one tenant's audit events (--tenant, or --system for the system chain)
with the signed checkpoints that prove them, as JSON lines, to FILE or
standard output. Anyone with the file and the public key ('audit key') can
verify it offline: 'audit verify --file FILE --key PUBKEY', or their own tools
following docs/audit.md.

--since and --until (RFC 3339, a date, or a duration before now such as 24h
or 7d) cut a contiguous piece of the chain: from the first event at or after
--since to the first at or after --until. Without --until the export runs to
the chain's head; checkpoints cover events up to the latest one, so the newest
events may not be signed yet.`,
		Example: `  tenantmcp audit export --config deploy.toml --tenant org_9fQ2 -o acme-audit.jsonl
  tenantmcp audit export --config deploy.toml --tenant org_9fQ2 --since 7d -o acme-last-week.jsonl
  tenantmcp audit export --data ./tenantmcp-data --tenant acme --since 2026-11-01 --until 2026-12-01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (at.tenant == "") == !at.system {
				return usagef(cmd, "give --tenant ID (or --system for the system chain)")
			}
			now := time.Now()
			var from, to time.Time
			var err error
			if since != "" {
				if from, err = parseSince(since, now); err != nil {
					return usagef(cmd, "--since: %v", err)
				}
			}
			if until != "" {
				if to, err = parseSince(until, now); err != nil {
					return usagef(cmd, "--until: %v", err)
				}
			}
			if !from.IsZero() && !to.IsZero() && !from.Before(to) {
				return usagef(cmd, "--since must be before --until")
			}
			return withAudit(cmd, e, &tf, func(t *target, a *app.App, s audit.Store) error {
				row, err := at.resolve(cmd, e, &tf, t, a)
				if err != nil {
					return err
				}
				if out == "" || out == "-" {
					return audit.Export(cmd.Context(), s, row.chain, from, to, e.stdout)
				}
				if err := exportFile(cmd.Context(), s, row.chain, from, to, out); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "wrote the audit trail of %s (%s) to %s\n", row.who, chainName(row.chain), out)
				if pub, err := app.AuditPublicKey(t.cfg); err == nil {
					fmt.Fprintf(e.stderr, "verify it with: %s audit verify --file %s --key %s\n", e.command(), shellQuote(out), audit.FormatPublicKey(pub))
				}
				return nil
			})
		},
	}
	tf.add(cmd)
	at.add(cmd)
	cmd.Flags().StringVar(&since, "since", "", "first event time: RFC 3339, a date (2026-12-31) or a duration before now (24h, 7d)")
	cmd.Flags().StringVar(&until, "until", "", "end (exclusive): RFC 3339, a date or a duration before now")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default: standard output)")
	return cmd
}

// exportFile writes the export to a temporary file renamed into place,
// so a failed export leaves no partial file behind.
func exportFile(ctx context.Context, s audit.Store, chain string, since, until time.Time, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = audit.Export(ctx, s, chain, since, until, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// parseSince reads a time: RFC 3339, a date, or a duration before now
// ("90m", "24h", "7d").
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseUint(d, 10, 16); err == nil {
			return now.Add(-time.Duration(n) * 24 * time.Hour).UTC(), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration before now must be positive", s)
		}
		return now.Add(-d).UTC(), nil
	}
	t, err := admin.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2026-12-31T23:59:59Z), a date (2026-12-31) or a duration (24h, 7d)", s)
	}
	return t, nil
}

func newAuditPruneCmd(e *env) *cobra.Command {
	var (
		tf       targetFlags
		adminDSN string
	)
	cmd := &cobra.Command{
		Use:   "prune [--config deploy.toml | --data DIR] [--admin-dsn URL]",
		Short: "Remove audit events older than audit.retention (the retention job)",
		Long: `Removes the audit events (and checkpoints) older than audit.retention from
every chain, oldest first, so what remains still verifies from its first
event. A tenant's deletion never removes its trail: only this does.

With SQLite the server runs this itself every hour. On PostgreSQL the
application role may not delete audit rows (the trail is append-only for
it), so run this as an administrator — --admin-dsn or database.admin_dsn —
from a scheduled job, e.g. daily.`,
		Example: `  tenantmcp audit prune --config deploy.toml --admin-dsn postgres://postgres@db/tenantmcp`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			n, err := app.PruneAudit(cmd.Context(), t.cfg, adminDSN)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "removed %d audit events older than %s\n", n, t.cfg.Audit.Retention)
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&adminDSN, "admin-dsn", "", "PostgreSQL administrator URL (default database.admin_dsn); not needed for SQLite")
	return cmd
}
