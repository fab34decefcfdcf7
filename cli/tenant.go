package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func newTenantCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Create, list, change, suspend, resume and delete tenants",
		Long: `Manage the tenant registry. A tenant is identified by its identity provider's
tenant id (Auth0 org_id, Entra tid, Cognito custom:tenant_id...) together with
the issuer; the registry gives it an internal id (t...) from which all storage
names derive. Commands accept either id.

These are the admin operations of the admin API and MCP admin tools: each is
recorded in the tenant's audit trail as done by "cli:<your user name>". A
running server on the same database or data directory sees a change within a
second.`,
	}
	cmd.AddCommand(newTenantCreateCmd(e), newTenantListCmd(e), newTenantShowCmd(e), newTenantUpdateCmd(e),
		newTenantStatusCmd(e, "suspend"), newTenantStatusCmd(e, "resume"),
		newTenantDeleteCmd(e), newTenantArchiveCmd(e), newTenantPurgeCmd(e), newTenantExportCmd(e), newTenantRestoreCmd(e))
	cmd.AddCommand(newTenantImportCmd(e))
	return cmd
}

// recordFlags are the editable fields of a tenant record.
type recordFlags struct {
	name         string
	status       string
	trialDays    int
	trialEnds    string
	rateLimit    int
	burst        int
	allowedTools []string
	flags        []string
	settings     []string
}

func (rf *recordFlags) add(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.StringVar(&rf.name, "name", "", "display name")
	if create {
		f.StringVar(&rf.status, "status", "", "active (default) or trial")
	} else {
		f.StringVar(&rf.status, "status", "", "active or trial (suspend with 'tenant suspend')")
	}
	f.IntVar(&rf.trialDays, "trial-days", 0, "make it a trial ending this many days from now")
	f.StringVar(&rf.trialEnds, "trial-ends", "", "make it a trial ending at this time (RFC 3339 or YYYY-MM-DD)")
	// Zero defaults: only flags that were given change the record
	// (f.Changed), and an explicit 0 sets the deployment default back.
	f.IntVar(&rf.rateLimit, "rate-limit", 0, "requests per minute; 0 = the deployment default (auth.multi_tenant.default_rate_limit)")
	f.IntVar(&rf.burst, "burst", 0, "requests that may arrive at once; 0 = the deployment default (auth.multi_tenant.rate_limit_burst, else one minute's worth of the rate)")
	f.StringSliceVar(&rf.allowedTools, "allowed-tools", nil, "comma-separated tools the tenant may use, from those the server serves; \"\" allows all")
	f.StringArrayVar(&rf.flags, "flag", nil, "feature flag NAME=true|false; repeat for several")
	f.StringArrayVar(&rf.settings, "set", nil, "configuration KEY=VALUE; KEY= removes it; repeat for several")
}

// trial is the trial end the flags give, if any.
func (rf *recordFlags) trial(cmd *cobra.Command, now time.Time) (time.Time, bool, error) {
	f := cmd.Flags()
	switch {
	case f.Changed("trial-days") && f.Changed("trial-ends"):
		return time.Time{}, false, usagef(cmd, "give --trial-days or --trial-ends, not both")
	case f.Changed("trial-days"):
		if rf.trialDays <= 0 {
			return time.Time{}, false, usagef(cmd, "--trial-days must be positive")
		}
		return now.AddDate(0, 0, rf.trialDays).UTC(), true, nil
	case f.Changed("trial-ends"):
		t, err := admin.ParseTime(rf.trialEnds)
		if err != nil {
			return time.Time{}, false, usagef(cmd, "--trial-ends: %v", err)
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

// flagValues parses --flag NAME=BOOL and --set KEY=VALUE (KEY= removes).
func (rf *recordFlags) flagValues(cmd *cobra.Command) (map[string]bool, map[string]*string, error) {
	var flags map[string]bool
	for _, kv := range rf.flags {
		k, v, ok := strings.Cut(kv, "=")
		b, err := strconv.ParseBool(v)
		if !ok || k == "" || err != nil {
			return nil, nil, usagef(cmd, "--flag %q: want NAME=true or NAME=false", kv)
		}
		if flags == nil {
			flags = map[string]bool{}
		}
		flags[k] = b
	}
	var settings map[string]*string
	for _, kv := range rf.settings {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, nil, usagef(cmd, "--set %q: want KEY=VALUE", kv)
		}
		if settings == nil {
			settings = map[string]*string{}
		}
		settings[k] = nil
		if v != "" {
			settings[k] = &v
		}
	}
	return flags, settings, nil
}

// spec is the new tenant the flags describe.
func (rf *recordFlags) spec(cmd *cobra.Command, externalID, issuer string, now time.Time) (admin.TenantSpec, error) {
	sp := admin.TenantSpec{Issuer: issuer, ExternalID: externalID, Name: rf.name, Status: registry.Status(rf.status),
		RateLimit: rf.rateLimit, RateBurst: rf.burst, Tools: rf.tools()}
	end, trial, err := rf.trial(cmd, now)
	if err != nil {
		return sp, err
	}
	if trial {
		sp.TrialEndsAt = end
		if sp.Status == "" {
			sp.Status = registry.StatusTrial
		}
	}
	flags, settings, err := rf.flagValues(cmd)
	if err != nil {
		return sp, err
	}
	sp.Flags = flags
	for k, v := range settings {
		if v != nil {
			if sp.Config == nil {
				sp.Config = map[string]string{}
			}
			sp.Config[k] = *v
		}
	}
	return sp, nil
}

// patch is the change the flags that were given describe.
func (rf *recordFlags) patch(cmd *cobra.Command, now time.Time) (admin.TenantPatch, error) {
	f := cmd.Flags()
	var pt admin.TenantPatch
	if f.Changed("name") {
		pt.Name = &rf.name
	}
	if f.Changed("status") {
		st := registry.Status(rf.status)
		pt.Status = &st
	}
	end, trial, err := rf.trial(cmd, now)
	if err != nil {
		return pt, err
	}
	if trial {
		st := registry.StatusTrial
		pt.TrialEndsAt, pt.Status = &end, &st
	}
	if f.Changed("rate-limit") {
		pt.RateLimit = &rf.rateLimit
	}
	if f.Changed("burst") {
		pt.RateBurst = &rf.burst
	}
	if f.Changed("allowed-tools") {
		tools := rf.tools()
		pt.AllowedTools = &tools
	}
	pt.Flags, pt.Config, err = rf.flagValues(cmd)
	return pt, err
}

// tools is --allowed-tools without blanks.
func (rf *recordFlags) tools() []string {
	var out []string
	for _, t := range rf.allowedTools {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// checkTools refuses --allowed-tools names the server does not serve (a
// typo would otherwise silently hide a tool from the tenant), listing the
// tools it does serve.
func (rf *recordFlags) checkTools(cmd *cobra.Command, served []server.Tool) error {
	if !cmd.Flags().Changed("allowed-tools") {
		return nil
	}
	known := make([]string, len(served))
	for i, t := range served {
		known[i] = t.Name
	}
	sort.Strings(known)
	var unknown []string
	for _, name := range rf.tools() {
		if !slices.Contains(known, name) {
			unknown = append(unknown, strconv.Quote(name))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	what := "unknown tool"
	if len(unknown) > 1 {
		what = "unknown tools"
	}
	return usagef(cmd, "--allowed-tools: %s %s; this server serves: %s", what, strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// parseDays parses a duration that may count days: "7d", "1d12h", "36h".
func parseDays(s string) (time.Duration, error) {
	days, rest, found := strings.Cut(s, "d")
	if !found {
		days, rest = "0", s
	}
	n, err := strconv.Atoi(days)
	var d time.Duration
	if err == nil && rest != "" {
		d, err = time.ParseDuration(rest)
	}
	if err != nil || n < 0 || d < 0 || n == 0 && d == 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 7d, 1d12h or 36h", s)
	}
	return time.Duration(n)*24*time.Hour + d, nil
}

// adminRun is an admin command in progress: the deployment, the admin
// service recording into the audit trail as the CLI's user, and the
// target the flags named.
type adminRun struct {
	t   *target
	a   *app.App
	svc *admin.Service
	p   admin.Principal
}

// withAdmin opens the deployment the flags name (with its stores when
// stores is set, to provision new tenants), runs fn with the admin
// service, and writes fn's audit events before it returns.
func withAdmin(cmd *cobra.Command, e *env, tf *targetFlags, stores bool, fn func(*adminRun) error) (err error) {
	t, err := tf.load(cmd, e)
	if err != nil {
		return err
	}
	open := app.OpenRegistry
	if stores {
		open = app.Open
	}
	a, err := open(cmd.Context(), t.cfg, e.appOptions(t.dev, nil))
	if err != nil {
		return err
	}
	defer a.Close()
	aud, flush, err := a.CommandAuditor(cmd.Context())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, flush()) }()
	svc, err := a.AdminService(cmd.Context(), aud)
	if err != nil {
		return err
	}
	return fn(&adminRun{t: t, a: a, svc: svc, p: app.CLIPrincipal()})
}

// resolve finds the tenant ref names: an internal id, or an external id
// under the deployment's issuer.
func (r *adminRun) resolve(cmd *cobra.Command, e *env, tf *targetFlags, ref string) (tenant.ID, error) {
	if id, err := tenant.ParseID(ref); err == nil {
		return id, nil
	}
	rec, err := r.a.Registry.Lookup(cmd.Context(), r.a.Issuer(), ref)
	if err != nil {
		return "", notFound(fmt.Errorf("tenant %q: %w", ref, err), e, tf, r, ref)
	}
	return rec.ID, nil
}

// notFound rewrites the registry's not-found error with advice.
func notFound(err error, e *env, tf *targetFlags, r *adminRun, ref string) error {
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("no tenant %q: list them with '%s tenant list %s'", ref, e.command(), r.t.flags())
	}
	return err
}

func newTenantCreateCmd(e *env) *cobra.Command {
	var (
		tf         targetFlags
		rf         recordFlags
		externalID string
		issuer     string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:     "create --external-id ID [--name NAME] [flags]",
		Aliases: []string{"add"},
		Short:   "Register a tenant and provision its storage",
		Example: `  tenantmcp tenant create --data ./tenantmcp-data --external-id initech --name Initech
  tenantmcp tenant create --config deploy.toml --external-id org_9fQ2 --name "Acme" --trial-days 14 --rate-limit 300
  tenantmcp tenant create --config deploy.toml --external-id org_x --allowed-tools list_documents,get_document --flag beta=true`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if externalID == "" {
				return usagef(cmd, "--external-id is required: the tenant id your identity provider puts in tokens (e.g. Auth0 org_id)")
			}
			spec, err := rf.spec(cmd, externalID, issuer, time.Now())
			if err != nil {
				return err
			}
			return withAdmin(cmd, e, &tf, true, func(r *adminRun) error {
				if err := rf.checkTools(cmd, r.a.Tools()); err != nil {
					return err
				}
				added, _, err := r.svc.CreateTenant(cmd.Context(), r.p, spec, "")
				if err != nil {
					return err
				}
				return printRecord(e.stdout, added, asJSON)
			})
		},
	}
	tf.add(cmd)
	rf.add(cmd, true)
	cmd.Flags().StringVar(&externalID, "external-id", "", "the identity provider's tenant id (org_id, tid, custom:tenant_id value)")
	cmd.Flags().StringVar(&issuer, "issuer", "", "issuer the tenant's tokens come from (default: the deployment's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantListCmd(e *env) *cobra.Command {
	var (
		tf          targetFlags
		status      string
		name        string
		trialEnding string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "list [--status S] [--name TEXT]",
		Short: "List tenants",
		Example: `  tenantmcp tenant list --data ./tenantmcp-data
  tenantmcp tenant list --config deploy.toml --status suspended --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				recs := []*registry.Tenant{}
				f := admin.TenantFilter{Status: registry.Status(status), Name: name, Limit: admin.MaxPageSize}
				if trialEnding != "" {
					d, err := parseDays(trialEnding)
					if err != nil {
						return usagef(cmd, "--trial-ending: %v", err)
					}
					f.TrialEndsBefore = time.Now().Add(d)
				}
				for {
					page, err := r.svc.ListTenants(cmd.Context(), r.p, f)
					if err != nil {
						return err
					}
					recs = append(recs, page.Tenants...)
					if page.Next == "" {
						break
					}
					f.After = page.Next
				}
				if asJSON {
					return writeJSON(e.stdout, recs)
				}
				return printTenantTable(e.stdout, recs)
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&status, "status", "", "only tenants with this status: active, trial or suspended")
	cmd.Flags().StringVar(&name, "name", "", "only tenants whose name or external id contains this text")
	cmd.Flags().StringVar(&trialEnding, "trial-ending", "", "only trials that end within this time, e.g. 7d or 36h (a reminder list)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printTenantTable prints tenants one per line.
func printTenantTable(w io.Writer, recs []*registry.Tenant) error {
	// An external id is unique per issuer: with tenants of several
	// issuers, the issuer column tells two "acme" apart.
	issuers := map[string]bool{}
	for _, r := range recs {
		issuers[r.Issuer] = true
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(issuers) > 1 {
		fmt.Fprintln(tw, "ID\tISSUER\tEXTERNAL ID\tNAME\tSTATUS\tRATE/MIN\tTOOLS")
	} else {
		fmt.Fprintln(tw, "ID\tEXTERNAL ID\tNAME\tSTATUS\tRATE/MIN\tTOOLS")
	}
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t", r.ID)
		if len(issuers) > 1 {
			fmt.Fprintf(tw, "%s\t", r.Issuer)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ExternalID, r.Name, statusText(r), rateText(r.RateLimit), toolsText(r.AllowedTools))
	}
	return tw.Flush()
}

func newTenantShowCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one tenant (by internal id or external id)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				rec, err := r.svc.GetTenant(cmd.Context(), r.p, id)
				if err != nil {
					return notFound(err, e, &tf, r, args[0])
				}
				return printRecord(e.stdout, rec, asJSON)
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTenantUpdateCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		rf     recordFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "update ID [flags]",
		Short:   "Change a tenant's name, status, limits, tools, flags or configuration",
		Example: `  tenantmcp tenant update acme --data ./tenantmcp-data --allowed-tools list_documents --flag beta=true`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pt, err := rf.patch(cmd, time.Now())
			if err != nil {
				return err
			}
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				if err := rf.checkTools(cmd, r.a.Tools()); err != nil {
					return err
				}
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				updated, err := r.svc.UpdateTenant(cmd.Context(), r.p, id, pt)
				if err != nil {
					return notFound(err, e, &tf, r, args[0])
				}
				return printRecord(e.stdout, updated, asJSON)
			})
		},
	}
	tf.add(cmd)
	rf.add(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantStatusCmd(e *env, verb string) *cobra.Command {
	var (
		tf     targetFlags
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use: verb + " ID [--reason TEXT]",
		Short: map[string]string{
			"suspend": "Suspend a tenant: its requests are refused at once, on every replica (data is kept)",
			"resume":  "Resume a suspended tenant (status active)",
		}[verb],
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				op := r.svc.SuspendTenant
				if verb == "resume" {
					op = r.svc.ResumeTenant
				}
				updated, err := op(cmd.Context(), r.p, id, reason)
				if err != nil {
					return notFound(err, e, &tf, r, args[0])
				}
				if asJSON {
					return writeJSON(e.stdout, updated)
				}
				fmt.Fprintf(e.stdout, "tenant %s (%s) is now %s\n", updated.ExternalID, updated.ID, updated.Status)
				return nil
			})
		},
	}
	if verb == "resume" {
		cmd.Aliases = []string{"activate"}
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the tenant's audit trail)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantDeleteCmd(e *env) *cobra.Command {
	var (
		tf       targetFlags
		yes      bool
		purgeNow bool
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "delete ID --yes [--purge-now]",
		Short: "Delete a tenant: refuse it at once, archive its data, purge it after the retention period",
		Long: `Delete a tenant. Its requests are refused at once; all of its data is written
into an archive (lifecycle.archive_dir, or S3), purged from every backend after
lifecycle.retention (30 days by default; at once with --purge-now), and then its
registration is removed. A tenant registered again with the same external id is
a new tenant with a new internal id and never sees the old data, unless an
operator restores the archive ('tenant restore'). Suspend instead to block
access reversibly.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usagef(cmd, "deleting a tenant refuses all its requests and archives its data: pass --yes to confirm (or 'tenant suspend' to block access reversibly)")
			}
			return withAdmin(cmd, e, &tf, true, func(r *adminRun) error {
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				rec, err := r.svc.DeleteTenant(cmd.Context(), r.p, id, purgeNow)
				if err != nil {
					return notFound(err, e, &tf, r, args[0])
				}
				if asJSON {
					return writeJSON(e.stdout, rec)
				}
				if purgeNow || rec.Status == registry.StatusPurged {
					fmt.Fprintf(e.stdout, "deleted tenant %s (%s): data purged, archive %s kept\n", rec.ExternalID, rec.ID, rec.Lifecycle.Archive)
				} else {
					fmt.Fprintf(e.stdout, "deleted tenant %s (%s): archived to %s; its data is purged after %s\n",
						rec.ExternalID, rec.ID, rec.Lifecycle.Archive, rec.Lifecycle.PurgeAfter.Format(time.RFC3339))
				}
				return nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	cmd.Flags().BoolVar(&purgeNow, "purge-now", false, "purge the data now instead of after lifecycle.retention (with --yes)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantArchiveCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "archive ID",
		Short: "Suspend a tenant and write all of its data into an archive (purged after the retention period)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, true, func(r *adminRun) error {
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				rec, err := r.svc.ArchiveTenant(cmd.Context(), r.p, id)
				if err != nil {
					return notFound(err, e, &tf, r, args[0])
				}
				if asJSON {
					return writeJSON(e.stdout, rec)
				}
				fmt.Fprintf(e.stdout, "archived tenant %s (%s) to %s; its data is purged after %s\n",
					rec.ExternalID, rec.ID, rec.Lifecycle.Archive, rec.Lifecycle.PurgeAfter.Format(time.RFC3339))
				return nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantPurgeCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		yes    bool
		due    bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "purge (ID --yes | --due)",
		Short: "Remove an archived tenant's data from every backend (its archive and audit trail stay)",
		Long: `Purge an archived tenant now (ID --yes), or every archived tenant whose
lifecycle.retention has passed (--due; the server also does this on its own,
one replica at a time). Its archive must be in the archive store. A purge that
stops halfway finishes when run again.`,
		Example: `  tenantmcp tenant purge acme --data ./tenantmcp-data --yes
  tenantmcp tenant purge --due --config deploy.toml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case due && len(args) > 0:
				return usagef(cmd, "give a tenant or --due, not both")
			case !due && len(args) == 0:
				return usagef(cmd, "which tenant? give its id (and --yes), or --due for every tenant whose retention has passed")
			case !due && !yes:
				return usagef(cmd, "purging removes the tenant's data from every backend (only its archive remains): pass --yes to confirm")
			}
			return withAdmin(cmd, e, &tf, true, func(r *adminRun) error {
				if due {
					n, err := r.svc.PurgeDue(cmd.Context(), r.p)
					if asJSON {
						writeJSON(e.stdout, map[string]int{"purged": n})
					} else {
						fmt.Fprintf(e.stdout, "purged %d tenants whose retention had passed\n", n)
					}
					return err
				}
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				rec, err := r.svc.PurgeTenant(cmd.Context(), r.p, id)
				if err != nil {
					return notFound(err, e, &tf, r, args[0])
				}
				if asJSON {
					return writeJSON(e.stdout, rec)
				}
				fmt.Fprintf(e.stdout, "purged tenant %s (%s); its archive %s is kept\n", rec.ExternalID, rec.ID, rec.Lifecycle.Archive)
				return nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the purge of one tenant")
	cmd.Flags().BoolVar(&due, "due", false, "purge every archived tenant whose retention has passed")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTenantExportCmd(e *env) *cobra.Command {
	var (
		tf  targetFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "export ID -o FILE",
		Short: "Write all of a tenant's data into an archive file (a data-export request); nothing changes",
		Long: `Write the tenant's archive — every backend's data, its audit trail, and a
manifest with the SHA-256 of every part — to FILE ('-' for standard output).
The format is described in docs/archive-format.md; 'tenant restore' reads it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef(cmd, "-o FILE is required ('-' for standard output)")
			}
			return withAdmin(cmd, e, &tf, true, func(r *adminRun) error {
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				return writeOutput(out, e.stdout, func(w io.Writer) error {
					return notFound(r.svc.ExportTenant(cmd.Context(), r.p, id, w), e, &tf, r, args[0])
				})
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "archive file to write ('-' for standard output)")
	return cmd
}

// writeOutput runs write into path atomically (a temp file renamed on
// success, removed on failure), or into stdout for "-".
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func newTenantRestoreCmd(e *env) *cobra.Command {
	var (
		tf        targetFlags
		fromStore bool
		sum       string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "restore ARCHIVE",
		Short: "Bring a purged, deleted or archived tenant back from its archive, verifying every checksum first",
		Long: `Restore a tenant from ARCHIVE: a file written by 'tenant export', or with
--from-store the name of an archive in the archive store (a tenant record's
lifecycle.archive, as 'tenant archive' and 'tenant delete' print). Every part's
SHA-256 is checked before anything changes (and the whole file's, against the
checksum kept beside an archive in the store, or --sha256); a corrupt archive is
refused naming the failing part. The tenant comes back under its own internal
id with the status it had before it was archived.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, true, func(r *adminRun) error {
				var (
					rec *registry.Tenant
					err error
				)
				if fromStore {
					rec, err = r.svc.RestoreArchive(cmd.Context(), r.p, args[0])
				} else {
					f, oerr := os.Open(args[0])
					if oerr != nil {
						return fmt.Errorf("%w (to restore from the archive store, add --from-store)", oerr)
					}
					defer f.Close()
					rec, err = r.svc.RestoreTenant(cmd.Context(), r.p, f, sum)
				}
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(e.stdout, rec)
				}
				fmt.Fprintf(e.stdout, "restored tenant %s (%s), now %s\n", rec.ExternalID, rec.ID, rec.Status)
				return nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&fromStore, "from-store", false, "ARCHIVE names an archive in the archive store, not a file")
	cmd.Flags().StringVar(&sum, "sha256", "", "the file's expected SHA-256 (hex), checked before anything changes")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

// flags repeats the flags that name deployment t, for advice such as
// "list them with 'tenantmcp tenant list --data DIR'".
func (t *target) flags() string {
	if t.path != "" {
		return "--config " + shellQuote(t.path)
	}
	return "--data " + shellQuote(t.dataDir)
}

// shellQuote double-quotes a path that a shell would split or expand; the
// advice around it is already in single quotes.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,~", r))
	}) {
		return s
	}
	return strconv.Quote(s)
}

func statusText(r *registry.Tenant) string {
	if r.Status == registry.StatusTrial {
		return "trial until " + r.TrialEndsAt.Format("2006-01-02")
	}
	return string(r.Status)
}

func rateText(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

func toolsText(tools []string) string {
	if len(tools) == 0 {
		return "all"
	}
	return strings.Join(tools, ",")
}

func printRecord(w io.Writer, r *registry.Tenant, asJSON bool) error {
	if asJSON {
		return writeJSON(w, r)
	}
	fmt.Fprintf(w, "id:            %s\n", r.ID)
	fmt.Fprintf(w, "external id:   %s\n", r.ExternalID)
	fmt.Fprintf(w, "issuer:        %s\n", r.Issuer)
	fmt.Fprintf(w, "name:          %s\n", r.Name)
	fmt.Fprintf(w, "status:        %s\n", statusText(r))
	fmt.Fprintf(w, "rate limit:    %s/min (burst %s)\n", rateText(r.RateLimit), rateText(r.RateBurst))
	fmt.Fprintf(w, "allowed tools: %s\n", toolsText(r.AllowedTools))
	fmt.Fprintf(w, "flags:         %s\n", mapText(r.Flags))
	fmt.Fprintf(w, "config:        %s\n", mapText(r.Config))
	fmt.Fprintf(w, "created:       %s\n", r.CreatedAt.Format(time.RFC3339))
	return nil
}

func mapText[V any](m map[string]V) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, m[k])
	}
	return strings.Join(parts, " ")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
