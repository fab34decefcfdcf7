package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func newTenantCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Add, list, change, suspend and delete tenants in the registry",
		Long: `Manage the tenant registry. A tenant is identified by its identity provider's
tenant id (Auth0 org_id, Entra tid, Cognito custom:tenant_id...) together with
the issuer; the registry gives it an internal id (t...) from which all storage
names derive. Commands accept either id.

Running servers see changes within registry.cache_ttl (30s by default).`,
	}
	cmd.AddCommand(newTenantAddCmd(e), newTenantListCmd(e), newTenantShowCmd(e), newTenantUpdateCmd(e),
		newTenantStatusCmd(e, "suspend", registry.StatusSuspended), newTenantStatusCmd(e, "activate", registry.StatusActive),
		newTenantDeleteCmd(e))
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

func (rf *recordFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&rf.name, "name", "", "display name")
	f.StringVar(&rf.status, "status", "", "active, suspended or trial")
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

// apply writes the flags that were given onto rec.
func (rf *recordFlags) apply(cmd *cobra.Command, rec *registry.Tenant, now time.Time) error {
	f := cmd.Flags()
	if f.Changed("name") {
		rec.Name = rf.name
	}
	if f.Changed("status") {
		rec.Status = registry.Status(rf.status)
	}
	switch {
	case f.Changed("trial-days") && f.Changed("trial-ends"):
		return usagef(cmd, "give --trial-days or --trial-ends, not both")
	case f.Changed("trial-days"):
		if rf.trialDays <= 0 {
			return usagef(cmd, "--trial-days must be positive")
		}
		rec.Status = registry.StatusTrial
		rec.TrialEndsAt = now.Add(time.Duration(rf.trialDays) * 24 * time.Hour).UTC()
	case f.Changed("trial-ends"):
		t, err := parseTime(rf.trialEnds)
		if err != nil {
			return usagef(cmd, "--trial-ends: %v", err)
		}
		rec.Status = registry.StatusTrial
		rec.TrialEndsAt = t
	}
	if f.Changed("rate-limit") {
		rec.RateLimit = rf.rateLimit
	}
	if f.Changed("burst") {
		rec.RateBurst = rf.burst
	}
	if f.Changed("allowed-tools") {
		rec.AllowedTools = rf.tools()
	}
	for _, kv := range rf.flags {
		k, v, ok := strings.Cut(kv, "=")
		b, err := strconv.ParseBool(v)
		if !ok || k == "" || err != nil {
			return usagef(cmd, "--flag %q: want NAME=true or NAME=false", kv)
		}
		if rec.Flags == nil {
			rec.Flags = map[string]bool{}
		}
		rec.Flags[k] = b
	}
	for _, kv := range rf.settings {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef(cmd, "--set %q: want KEY=VALUE", kv)
		}
		if v == "" {
			delete(rec.Config, k)
			continue
		}
		if rec.Config == nil {
			rec.Config = map[string]string{}
		}
		rec.Config[k] = v
	}
	return nil
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

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2026-12-31T23:59:59Z) or a date (2026-12-31)", s)
	}
	return t.UTC(), nil
}

func newTenantAddCmd(e *env) *cobra.Command {
	var (
		tf         targetFlags
		rf         recordFlags
		externalID string
		issuer     string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "add --external-id ID [--name NAME] [flags]",
		Short: "Register a tenant and provision its storage",
		Example: `  tenantmcp tenant add --data ./tenantmcp-data --external-id initech --name Initech
  tenantmcp tenant add --config deploy.toml --external-id org_9fQ2 --name "Acme" --trial-days 14 --rate-limit 300
  tenantmcp tenant add --config deploy.toml --external-id org_x --allowed-tools list_documents,get_document --flag beta=true`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if externalID == "" {
				return usagef(cmd, "--external-id is required: the tenant id your identity provider puts in tokens (e.g. Auth0 org_id)")
			}
			t, err := tf.load(cmd, e)
			if err != nil {
				return err
			}
			a, err := app.Open(cmd.Context(), t.cfg, e.appOptions(t.dev, nil))
			if err != nil {
				return err
			}
			defer a.Close()
			if issuer == "" {
				issuer = a.Issuer()
			}
			rec := registry.Tenant{Issuer: issuer, ExternalID: externalID, Status: registry.StatusActive}
			if err := rf.checkTools(cmd, a.Tools()); err != nil {
				return err
			}
			if err := rf.apply(cmd, &rec, time.Now()); err != nil {
				return err
			}
			added, err := a.AddTenant(cmd.Context(), rec)
			if err != nil {
				return err
			}
			return printRecord(e.stdout, added, asJSON)
		},
	}
	tf.add(cmd)
	rf.add(cmd)
	cmd.Flags().StringVar(&externalID, "external-id", "", "the identity provider's tenant id (org_id, tid, custom:tenant_id value)")
	cmd.Flags().StringVar(&issuer, "issuer", "", "issuer the tenant's tokens come from (default: the deployment's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantListCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, a, err := tf.openRegistry(cmd, e)
			if err != nil {
				return err
			}
			defer a.Close()
			recs, err := a.Registry.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, recs)
			}
			// An external id is unique per issuer: with tenants of several
			// issuers, the issuer column tells two "acme" apart.
			issuers := map[string]bool{}
			for _, r := range recs {
				issuers[r.Issuer] = true
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
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
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
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
			return withRecord(cmd, e, &tf, args[0], func(a *app.App, rec *registry.Tenant) error {
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
			return withRecord(cmd, e, &tf, args[0], func(a *app.App, rec *registry.Tenant) error {
				if err := rf.checkTools(cmd, a.Tools()); err != nil {
					return err
				}
				updated, err := a.Registry.Update(cmd.Context(), rec.ID, func(r *registry.Tenant) error {
					return rf.apply(cmd, r, time.Now())
				})
				if err != nil {
					return err
				}
				return printRecord(e.stdout, updated, asJSON)
			})
		},
	}
	tf.add(cmd)
	rf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func newTenantStatusCmd(e *env, verb string, status registry.Status) *cobra.Command {
	var tf targetFlags
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: map[string]string{"suspend": "Suspend a tenant: its requests are refused (data is kept)", "activate": "Make a tenant active again"}[verb],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRecord(cmd, e, &tf, args[0], func(a *app.App, rec *registry.Tenant) error {
				updated, err := a.Registry.Update(cmd.Context(), rec.ID, func(r *registry.Tenant) error {
					r.Status = status
					if status == registry.StatusActive {
						r.TrialEndsAt = time.Time{}
					}
					return nil
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "tenant %s (%s) is now %s\n", updated.ExternalID, updated.ID, updated.Status)
				return nil
			})
		},
	}
	tf.add(cmd)
	return cmd
}

func newTenantDeleteCmd(e *env) *cobra.Command {
	var (
		tf  targetFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "delete ID --yes",
		Short: "Remove a tenant from the registry (its stored data is kept)",
		Long: `Remove a tenant's registry record: its tokens are refused from then on.
Its stored data (database file, schema, objects) is kept so nothing is lost by
mistake; suspend first if you only want to block access.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usagef(cmd, "deleting a tenant refuses all its requests from then on: pass --yes to confirm (or 'tenant suspend' to block access reversibly)")
			}
			return withRecord(cmd, e, &tf, args[0], func(a *app.App, rec *registry.Tenant) error {
				if err := a.Registry.Delete(cmd.Context(), rec.ID); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "deleted tenant %s (%s); its stored data is kept\n", rec.ExternalID, rec.ID)
				return nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

// withRecord opens the registry and finds ref: an internal id, or an
// external id under the deployment's issuer.
func withRecord(cmd *cobra.Command, e *env, tf *targetFlags, ref string, fn func(*app.App, *registry.Tenant) error) error {
	t, a, err := tf.openRegistry(cmd, e)
	if err != nil {
		return err
	}
	defer a.Close()
	var rec *registry.Tenant
	if id, perr := tenant.ParseID(ref); perr == nil {
		rec, err = a.Registry.Get(cmd.Context(), id)
	} else {
		rec, err = a.Registry.Lookup(cmd.Context(), a.Issuer(), ref)
	}
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("no tenant %q: list them with '%s tenant list %s'", ref, e.command(), tf.flagsFor(t))
	}
	if err != nil {
		return fmt.Errorf("tenant %q: %w", ref, err)
	}
	return fn(a, rec)
}

// flagsFor repeats the flags that name deployment t, for advice such as
// "list them with 'tenantmcp tenant list --data DIR'".
func (tf *targetFlags) flagsFor(t *target) string {
	if tf.config != "" {
		return "--config " + shellQuote(tf.config)
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
