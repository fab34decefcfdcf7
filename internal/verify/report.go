package verify

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the report for people: what was verified, then one
// line per check (status, check, evidence) and the totals.
func (r *Report) WriteTable(w io.Writer) error {
	mode := "stateless"
	switch {
	case r.Stateful:
		mode = "stateful (sessions)"
	case r.Protocol == "":
		mode = "not reached"
	}
	fmt.Fprintf(w, "verify %s: MCP %s, %s\n", r.URL, orDash(r.Protocol), mode)
	if r.TenantA != "" || r.TenantB != "" {
		fmt.Fprintf(w, "  tenant A: %s\n  tenant B: %s\n", orDash(r.TenantA), orDash(r.TenantB))
	}
	if len(r.Toolsets) > 0 {
		fmt.Fprintf(w, "  tools:    %s\n", strings.Join(r.Toolsets, ", "))
	}
	if len(r.Markers) > 0 {
		fmt.Fprintf(w, "  markers:  %s\n", strings.Join(r.Markers, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tATTACK: EVIDENCE")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s: %s\n", c.Status, c.ID, c.Attack, oneLine(c.Evidence))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d PASS, %d LEAK, %d N/A, %d ERROR", r.Count(StatusPass), r.Count(StatusLeak), r.Count(StatusNA), r.Count(StatusError))
	if r.RateLimitedSeconds > 0 {
		fmt.Fprintf(w, " (waited %.0fs on rate limits)", r.RateLimitedSeconds)
	}
	if r.Interrupted {
		fmt.Fprint(w, "; interrupted before every check ran")
	}
	_, err := fmt.Fprintln(w)
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
