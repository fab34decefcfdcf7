package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/admin"
)

func newImpersonationCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "impersonation",
		Short: "Act as one tenant for support, for a stated reason, for a limited time",
		Long: `Impersonation gives an admin a short-lived credential that acts as exactly one
tenant: read-only tools unless --write, never admin scope, 30 minutes unless
--duration (at most admin.max_impersonation_ttl). The reason is required: it is
recorded, with who asked, in the tenant's own audit trail, and so is every
request made with the credential. End it early with 'impersonation end'.`,
	}
	cmd.AddCommand(newImpersonationStartCmd(e), newImpersonationListCmd(e), newImpersonationEndCmd(e))
	return cmd
}

func newImpersonationStartCmd(e *env) *cobra.Command {
	var (
		tf               targetFlags
		req              admin.ImpersonationRequest
		duration         time.Duration
		asJSON           bool
		includeSuspended bool
	)
	cmd := &cobra.Command{
		Use:   "start TENANT --reason TEXT [--ticket REF] [--scope S]... [--write] [--duration D]",
		Short: "Start an impersonation and print its credential",
		Example: `  tenantmcp impersonation start acme --data ./tenantmcp-data --reason "customer reports missing documents" --ticket SUP-1234
  CRED=$(tenantmcp impersonation start acme --config deploy.toml --reason "..." --json | jq -r .credential)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(req.Reason) == "" {
				return usagef(cmd, "--reason is required: it is shown in the tenant's audit trail")
			}
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				id, err := r.resolve(cmd, e, &tf, args[0])
				if err != nil {
					return err
				}
				req.Tenant, req.Duration, req.IncludeSuspended = id, duration, includeSuspended
				g, err := r.svc.Impersonate(cmd.Context(), r.p, req)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(e.stdout, g)
				}
				fmt.Fprintf(e.stdout, "impersonation %s of tenant %s until %s (scopes: %s; %s)\n",
					g.ID, g.Tenant, g.ExpiresAt.Format(time.RFC3339), scopesText(g.Scopes), accessText(g.Impersonation))
				fmt.Fprintf(e.stdout, "use as the bearer token:\n%s\n", g.Credential)
				fmt.Fprintf(e.stdout, "end it with: %s impersonation end %s %s\n", e.command(), g.ID, r.t.flags())
				return nil
			})
		},
	}
	tf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Reason, "reason", "", "why (required; shown in the tenant's audit trail)")
	f.StringVar(&req.Ticket, "ticket", "", "support ticket reference")
	f.StringArrayVar(&req.Scopes, "scope", nil, "scope to grant; repeat for several (default: those of the read-only tools)")
	f.BoolVar(&req.Write, "write", false, "also allow tools that are not read-only")
	f.DurationVar(&duration, "duration", 0, "how long it lasts (default admin.impersonation_ttl, 30m)")
	f.StringVar(&req.User, "user", "", "user id to act as inside the tenant (default impersonator:cli:<you>)")
	f.BoolVar(&includeSuspended, "include-suspended", false, "allow impersonating a suspended tenant (support for a locked-out customer)")
	f.BoolVar(&asJSON, "json", false, "print the grant and credential as JSON")
	return cmd
}

func scopesText(scopes []string) string {
	if len(scopes) == 0 {
		return "none"
	}
	return strings.Join(scopes, " ")
}

func accessText(g *admin.Impersonation) string {
	if g.ReadOnly {
		return "read-only tools"
	}
	return "all tools"
}

func newImpersonationListCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		ref    string
		active bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--tenant T] [--active]",
		Short: "List impersonations, newest first (active and past)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				f := admin.ImpersonationFilter{Limit: admin.MaxPageSize}
				if ref != "" {
					id, err := r.resolve(cmd, e, &tf, ref)
					if err != nil {
						return err
					}
					f.Tenant = id
				}
				if active {
					f.ActiveAt = time.Now()
				}
				var all []*admin.Impersonation
				for {
					gs, err := r.svc.ListImpersonations(cmd.Context(), r.p, f)
					if err != nil {
						return err
					}
					all = append(all, gs...)
					if len(gs) < f.Limit {
						break
					}
					f.Before = gs[len(gs)-1].ID
				}
				if asJSON {
					if all == nil {
						all = []*admin.Impersonation{}
					}
					return writeJSON(e.stdout, all)
				}
				return printImpersonations(e.stdout, all, time.Now())
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&ref, "tenant", "", "only this tenant's (internal or external id)")
	cmd.Flags().BoolVar(&active, "active", false, "only those active now")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printImpersonations(w io.Writer, gs []*admin.Impersonation, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tADMIN\tSTATE\tSTARTED\tUNTIL\tREASON")
	for _, g := range gs {
		state := "active"
		switch {
		case !g.EndedAt.IsZero():
			state = "ended by " + g.EndedBy
		case !now.Before(g.ExpiresAt):
			state = "expired"
		}
		until := g.ExpiresAt
		if !g.EndedAt.IsZero() {
			until = g.EndedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Tenant, g.Admin, state,
			g.CreatedAt.Format(time.RFC3339), until.Format(time.RFC3339), oneLine(g.Reason, 60))
	}
	return tw.Flush()
}

// oneLine shortens text for a table cell.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func newImpersonationEndCmd(e *env) *cobra.Command {
	var (
		tf     targetFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "end IMPERSONATION_ID",
		Short: "End an impersonation now (yours, or revoke another admin's)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, e, &tf, false, func(r *adminRun) error {
				g, err := r.svc.EndImpersonation(cmd.Context(), r.p, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(e.stdout, g)
				}
				fmt.Fprintf(e.stdout, "impersonation %s of tenant %s ended at %s by %s\n", g.ID, g.Tenant, g.EndedAt.Format(time.RFC3339), g.EndedBy)
				return nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
