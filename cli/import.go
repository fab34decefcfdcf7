package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/admin"
)

// tenant import: bulk provisioning. Every row is created by
// admin.Service.CreateTenant, as 'tenant create' does, so each imported
// tenant is validated, provisioned and audited like any other. A row whose
// tenant is already registered is skipped: that is what makes a re-run
// resume an interrupted import.

func newTenantImportCmd(e *env) *cobra.Command {
	var (
		tf       targetFlags
		issuer   string
		parallel int
		progress string
		dryRun   bool
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Register and provision many tenants from a CSV or JSON file (resumable)",
		Long: `Register and provision every tenant of FILE ("-" reads standard input), each
exactly as 'tenant create' does: validated, its storage provisioned, and
recorded in its audit trail as done by "cli:<your user name>".

The file is read whole first. A column or field the import does not know
refuses the file before anything is created; rows that cannot be read (a
number that is not one, a missing external_id, a second row for the same
tenant) are listed at once and not imported, and the other rows are.

A row whose tenant (external id under its issuer) is already registered is
skipped, so re-running the same command after an interruption (Ctrl-C, a
lost connection) creates only the rows not yet done, and each tenant exists
once. A skipped row is never changed, even where its settings differ from
the file (the summary lists those): change them with 'tenant update'. A
tenant whose provisioning a crash left unfinished (status provisioning) is
not skipped: the import finishes it.

A row that fails (a tool the server does not serve, a status a new tenant
cannot have, storage that cannot be provisioned) is reported and the import
goes on; the command exits non-zero when any row failed or the import was
interrupted. A progress bar is drawn on a terminal, plain progress lines
otherwise (--progress), and a summary printed at the end (--json: a report
with every row's outcome).

CSV: a header row naming the columns, in any order; only external_id is
required. Cells are trimmed of blanks; an empty cell leaves the field unset.
  external_id    the identity provider's tenant id (Auth0 org_id, Entra tid...)
  name           display name
  issuer         issuer of the tenant's tokens (default --issuer, else the deployment's)
  status         active (default) or trial
  trial_days     a trial ending this many days from now
  trial_ends_at  a trial ending then (RFC 3339 or YYYY-MM-DD)
  rate_limit     requests per minute (default: the deployment's)
  rate_burst     requests that may arrive at once (default: the deployment's)
  allowed_tools  tools the tenant may use, separated by ";" (default: all)
  flags          feature flags NAME=true|false, separated by ";"
  config         configuration KEY=VALUE, separated by ";" (a value cannot
                 hold ";": use JSON for such values)

JSON: an array of objects, or one object per line (JSON lines), told apart
by the first character; the fields are the CSV columns, with allowed_tools
an array of strings, flags an object of booleans, config an object of
strings and trial_ends_at RFC 3339.`,
		Example: `  tenantmcp tenant import tenants.csv --config deploy.toml
  tenantmcp tenant import tenants.jsonl --data ./tenantmcp-data --dry-run
  export-customers | tenantmcp tenant import - --config deploy.toml --json > import-report.json

  tenants.csv:
    external_id,name,status,trial_days,rate_limit,allowed_tools,flags
    org_9fQ2,Acme,,,300,list_documents;get_document,beta=true
    org_x7Lp,Globex,trial,14,,,
  tenants.jsonl:
    {"external_id": "org_9fQ2", "name": "Acme", "rate_limit": 300, "flags": {"beta": true}}
    {"external_id": "org_x7Lp", "name": "Globex", "status": "trial", "trial_days": 14}`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := progressModeOf(cmd, progress, e.stderr)
			if err != nil {
				return err
			}
			if parallel < 1 {
				return usagef(cmd, "--parallel must be 1 or more")
			}
			data, err := readImportInput(cmd, args[0])
			if err != nil {
				return err
			}
			in, err := admin.ParseImport(data, admin.DetectImportFormat(data))
			if err != nil {
				return fmt.Errorf("%s: %w", importName(args[0]), err)
			}
			return withAdmin(cmd, e, &tf, !dryRun, func(r *adminRun) error {
				opts := &admin.ImportOptions{Issuer: issuer, Parallel: parallel, DryRun: dryRun}
				rep, err := runImport(cmd.Context(), r, in, opts, newImportProgress(e.stderr, mode))
				if err != nil {
					return err
				}
				rep.File = importName(args[0])
				if asJSON {
					if err := writeJSON(e.stdout, rep); err != nil {
						return err
					}
				} else {
					rep.print(e.stdout)
				}
				return rep.err()
			})
		},
	}
	tf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", "", "issuer of the rows that name none (default: the deployment's)")
	f.IntVar(&parallel, "parallel", admin.DefaultImportParallel, "rows created at once")
	f.StringVar(&progress, "progress", "auto", "auto (a bar on a terminal, else lines), bar, lines or off")
	f.BoolVar(&dryRun, "dry-run", false, "read the file and say what would be created and skipped; change nothing")
	f.BoolVar(&asJSON, "json", false, "print a JSON report with every row's outcome instead of the summary")
	return cmd
}

func importName(arg string) string {
	if arg == "-" {
		return "standard input"
	}
	return arg
}

func readImportInput(cmd *cobra.Command, arg string) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	}
	return os.ReadFile(arg)
}

// importReport is the outcome of an import: the file and admin's summary.
type importReport struct {
	File string `json:"file"`
	*admin.ImportSummary
}

// runImport imports in through the admin service, showing its progress
// on prog: the plan (and the rows that cannot be imported) first, then a
// bar or lines, and each failed create as it happens (the first
// maxLiveFailures).
func runImport(ctx context.Context, r *adminRun, in *admin.ImportFile, opts *admin.ImportOptions, prog *importProgress) (*importReport, error) {
	failed := 0 // creates that failed
	sum, err := r.svc.Import(ctx, r.p, in, opts, func(pr admin.ImportProgress) {
		if pr.Row == nil { // the plan
			prog.say(plan(pr, opts.DryRun))
			if pr.Failed > 0 {
				prog.say(fmt.Sprintf("%d %s cannot be imported:\n%s", pr.Failed, plural(pr.Failed, "row", "rows"), listOutcomes(pr.Failures, admin.RowFailed, pr.Failed, admin.MaxProgressFailures)))
			}
			if !opts.DryRun && pr.ToCreate > 0 {
				prog.begin(pr.ToCreate)
			}
			return
		}
		if o := pr.Row; o.Outcome == admin.RowFailed {
			if failed++; failed <= maxLiveFailures {
				prog.say(fmt.Sprintf("line %d (%s): %s", o.Line, o.ExternalID, o.Error))
			}
		}
		prog.update(pr.Done, failed)
	})
	prog.end()
	if err != nil {
		return nil, err
	}
	return &importReport{ImportSummary: sum}, nil
}

// maxLiveFailures is how many failures are printed as they happen; the
// summary lists them too, and --json all of them.
const maxLiveFailures = 5

// plan says what the import is about to do.
func plan(pr admin.ImportProgress, dryRun bool) string {
	verb := "to create"
	if dryRun {
		verb = "would be created (dry run: nothing is changed)"
	}
	return fmt.Sprintf("%d %s: %d already registered (skipped), %d %s", pr.Rows, plural(pr.Rows, "row", "rows"),
		pr.Skipped, pr.ToCreate, verb)
}

// listOutcomes is up to most of the rows of outcomes with outcome, one per
// line, for people; of is how many such rows there are in all.
func listOutcomes(outcomes []admin.ImportOutcome, outcome admin.RowOutcome, of, most int) string {
	var b strings.Builder
	n := 0
	for _, o := range outcomes {
		msg := o.Error
		if outcome == admin.RowSkipped {
			msg = o.Note
		}
		if o.Outcome != outcome || msg == "" {
			continue
		}
		if n++; n <= most {
			id := ""
			if o.ExternalID != "" {
				id = " (" + o.ExternalID + ")"
			}
			fmt.Fprintf(&b, "  line %d%s: %s\n", o.Line, id, msg)
		}
	}
	if of = max(of, n); of > most {
		fmt.Fprintf(&b, "  and %d more (all of them with --json)\n", of-most)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// print writes the summary for people.
func (rep *importReport) print(w io.Writer) {
	if rep.DryRun {
		fmt.Fprintf(w, "%s (dry run, nothing changed): %d %s: %d would be created, %d skipped (already registered), %d cannot be imported\n",
			rep.File, rep.Rows, plural(rep.Rows, "row", "rows"), rep.Pending, rep.Skipped, rep.Failed)
	} else {
		elapsed := time.Duration(rep.ElapsedSeconds * float64(time.Second))
		fmt.Fprintf(w, "%s: %d %s: %d created, %d skipped (already registered), %d failed", rep.File, rep.Rows,
			plural(rep.Rows, "row", "rows"), rep.Created, rep.Skipped, rep.Failed)
		if rep.Pending > 0 {
			fmt.Fprintf(w, ", %d not started", rep.Pending)
		}
		fmt.Fprintf(w, ", in %s", elapsed.Round(time.Millisecond))
		if rep.Created > 0 && rep.ElapsedSeconds > 0 {
			fmt.Fprintf(w, " (%.0f created/s)", float64(rep.Created)/rep.ElapsedSeconds)
		}
		fmt.Fprintln(w)
	}
	if s := listOutcomes(rep.Outcomes, admin.RowSkipped, 0, 10); s != "" {
		fmt.Fprintf(w, "skipped rows whose settings differ (change them with 'tenant update'):\n%s\n", s)
	}
	if s := listOutcomes(rep.Outcomes, admin.RowFailed, 0, 10); s != "" {
		fmt.Fprintf(w, "failed:\n%s\n", s)
	}
}

// err is the command's error: an interruption or failed rows.
func (rep *importReport) err() error {
	failed := ""
	if rep.Failed > 0 {
		failed = fmt.Sprintf(" (and %d %s failed)", rep.Failed, plural(rep.Failed, "row", "rows"))
	}
	switch {
	case rep.Interrupted:
		return fmt.Errorf("import interrupted with %d of %d rows not started%s: re-run the same command to continue (the rows already imported are skipped)",
			rep.Pending, rep.Rows, failed)
	case rep.Failed > 0:
		return fmt.Errorf("%d of %d rows failed: fix them and re-run the same command (the rows already imported are skipped)", rep.Failed, rep.Rows)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Progress modes.
const (
	progressBar   = "bar"
	progressLines = "lines"
	progressOff   = "off"
)

// progressModeOf resolves --progress: "auto" is a bar when w is a
// terminal, else lines.
func progressModeOf(cmd *cobra.Command, mode string, w io.Writer) (string, error) {
	switch mode {
	case progressBar, progressLines, progressOff:
		return mode, nil
	case "auto":
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				return progressBar, nil
			}
		}
		return progressLines, nil
	}
	return "", usagef(cmd, "--progress %q: want auto, bar, lines or off", mode)
}

// importProgress shows how far the creates are: a bar redrawn in place
// (at most every barInterval), or a line at every tenth of the rows and
// at least every lineInterval.
type importProgress struct {
	w     io.Writer
	mode  string
	total int
	start time.Time
	last  time.Time // of the last bar or line
	step  int       // tenths of the rows reported by lines
	drawn bool      // a bar is on the terminal's last line
	done  int
	fail  int
}

const (
	barInterval  = 100 * time.Millisecond
	lineInterval = 2 * time.Second
	barWidth     = 24
)

func newImportProgress(w io.Writer, mode string) *importProgress {
	return &importProgress{w: w, mode: mode}
}

func (p *importProgress) begin(total int) {
	p.total, p.start, p.last = total, time.Now(), time.Now()
	if p.mode == progressBar {
		p.draw()
	}
}

// say prints a line of its own (above the bar).
func (p *importProgress) say(s string) {
	if p.mode == progressOff {
		return
	}
	p.clear()
	fmt.Fprintln(p.w, s)
	if p.drawn {
		p.draw()
	}
}

func (p *importProgress) clear() {
	if p.mode == progressBar && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// update reports done rows attempted, failed of them.
func (p *importProgress) update(done, failed int) {
	p.done, p.fail = done, failed
	now := time.Now()
	switch p.mode {
	case progressBar:
		if now.Sub(p.last) >= barInterval || done == p.total {
			p.last = now
			p.draw()
		}
	case progressLines:
		if step := done * 10 / p.total; step > p.step || now.Sub(p.last) >= lineInterval {
			p.step, p.last = step, now
			fmt.Fprintln(p.w, p.status(false))
		}
	}
}

func (p *importProgress) draw() {
	fill := barWidth * p.done / max(p.total, 1)
	bar := strings.Repeat("=", fill)
	if fill < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-fill-1)
	}
	fmt.Fprintf(p.w, "\r[%s] %s\033[K", bar, p.status(true))
	p.drawn = true
}

// status is the counts, rate and time left.
func (p *importProgress) status(short bool) string {
	elapsed := time.Since(p.start)
	rate := float64(p.done) / max(elapsed.Seconds(), 1e-3)
	left := "?"
	if p.done > 0 {
		left = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100 * p.done / max(p.total, 1)
	if short {
		return fmt.Sprintf("%d/%d %3d%%  %.0f/s  ETA %s  %d failed", p.done, p.total, pct, rate, left, p.fail)
	}
	return fmt.Sprintf("%d/%d rows done (%d%%), %d failed, %.0f rows/s, about %s left", p.done, p.total, pct, p.fail, rate, left)
}

// end finishes the bar's line.
func (p *importProgress) end() {
	if p.mode == progressBar && p.drawn {
		p.draw()
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
