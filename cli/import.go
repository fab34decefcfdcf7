package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
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
			in, err := parseImport(data)
			if err != nil {
				return fmt.Errorf("%s: %w", importName(args[0]), err)
			}
			return withAdmin(cmd, e, &tf, !dryRun, func(r *adminRun) error {
				im := &importer{r: r, in: in, issuer: issuer, parallel: parallel, dryRun: dryRun,
					prog: newImportProgress(e.stderr, mode)}
				rep, err := im.run(cmd.Context())
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
	f.IntVar(&parallel, "parallel", defaultImportParallel, "rows created at once")
	f.StringVar(&progress, "progress", "auto", "auto (a bar on a terminal, else lines), bar, lines or off")
	f.BoolVar(&dryRun, "dry-run", false, "read the file and say what would be created and skipped; change nothing")
	f.BoolVar(&asJSON, "json", false, "print a JSON report with every row's outcome instead of the summary")
	return cmd
}

// defaultImportParallel is how many rows an import creates at once unless
// --parallel says. Creating a tenant mostly waits for writes to be made
// durable (a new SQLite file per tenant, a few PostgreSQL commits), so
// several at once help even on SQLite: 4 rather than 1 was 1.4 to 2.7
// times as fast there, on 2 cores; on PostgreSQL the gain was within the
// noise (docs/benchmarks.md, "Bulk import").
const defaultImportParallel = 4

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

// importRow is one tenant of the file.
type importRow struct {
	// line is where the row starts in the file (1-based).
	line int
	spec admin.TenantSpec
	// problems say why the row cannot be read; such a row is not imported.
	problems []string
}

// importInput is a parsed file.
type importInput struct {
	format string // "csv", "json" or "jsonl"
	rows   []importRow
}

// importColumn is a CSV column: the TenantSpec field of the same JSON name,
// and how a cell sets it.
type importColumn struct {
	name string
	set  func(sp *admin.TenantSpec, v string) error
}

// importColumns are the CSV columns and the JSON fields, in TenantSpec's
// order.
var importColumns = []importColumn{
	{"issuer", func(sp *admin.TenantSpec, v string) error { sp.Issuer = v; return nil }},
	{"external_id", func(sp *admin.TenantSpec, v string) error { sp.ExternalID = v; return nil }},
	{"name", func(sp *admin.TenantSpec, v string) error { sp.Name = v; return nil }},
	{"status", func(sp *admin.TenantSpec, v string) error { sp.Status = registry.Status(v); return nil }},
	{"trial_days", func(sp *admin.TenantSpec, v string) (err error) { sp.TrialDays, err = cellInt(v); return err }},
	{"trial_ends_at", func(sp *admin.TenantSpec, v string) (err error) { sp.TrialEndsAt, err = parseTime(v); return err }},
	{"rate_limit", func(sp *admin.TenantSpec, v string) (err error) { sp.RateLimit, err = cellInt(v); return err }},
	{"rate_burst", func(sp *admin.TenantSpec, v string) (err error) { sp.RateBurst, err = cellInt(v); return err }},
	{"allowed_tools", func(sp *admin.TenantSpec, v string) error { sp.Tools = cellList(v); return nil }},
	{"flags", func(sp *admin.TenantSpec, v string) error {
		for _, kv := range cellList(v) {
			k, val, ok := strings.Cut(kv, "=")
			b, err := strconv.ParseBool(strings.TrimSpace(val))
			if k = strings.TrimSpace(k); !ok || k == "" || err != nil {
				return fmt.Errorf("%q: want NAME=true or NAME=false", kv)
			}
			if sp.Flags == nil {
				sp.Flags = map[string]bool{}
			}
			sp.Flags[k] = b
		}
		return nil
	}},
	{"config", func(sp *admin.TenantSpec, v string) error {
		for _, kv := range cellList(v) {
			k, val, ok := strings.Cut(kv, "=")
			if k = strings.TrimSpace(k); !ok || k == "" {
				return fmt.Errorf("%q: want KEY=VALUE", kv)
			}
			if sp.Config == nil {
				sp.Config = map[string]string{}
			}
			sp.Config[k] = strings.TrimSpace(val)
		}
		return nil
	}},
}

// importColumnNames lists the columns for messages.
func importColumnNames() string {
	names := make([]string, len(importColumns))
	for i, c := range importColumns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

func cellInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", v)
	}
	return n, nil
}

// cellList splits a cell at ";", dropping blanks.
func cellList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseImport reads a whole file: JSON when its first character (after
// blanks and a byte-order mark) is "[" (an array) or "{" (JSON lines),
// else CSV. An error refuses the file; problems of single rows are in
// their rows.
func parseImport(data []byte) (*importInput, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("the file is empty: want a CSV header row or JSON")
	}
	var in *importInput
	var err error
	switch trimmed[0] {
	case '[':
		in, err = parseJSONArray(data)
	case '{':
		in, err = parseJSONLines(data)
	default:
		in, err = parseCSV(data)
	}
	if err != nil {
		return nil, err
	}
	if len(in.rows) == 0 {
		return nil, errors.New("no rows to import")
	}
	for i := range in.rows {
		sp := &in.rows[i].spec
		if sp.ExternalID == "" {
			in.rows[i].problems = append(in.rows[i].problems, "external_id: required (the identity provider's tenant id)")
		}
		if !sp.TrialEndsAt.IsZero() && sp.Status == "" {
			sp.Status = registry.StatusTrial // as 'tenant create --trial-ends' does
		}
	}
	return in, nil
}

func parseCSV(data []byte) (*importInput, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	cols := make([]*importColumn, len(header))
	var problems, unknown []string
	hasExternalID := false
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		j := slices.IndexFunc(importColumns, func(c importColumn) bool { return c.name == name })
		switch {
		case name == "":
			problems = append(problems, fmt.Sprintf("column %d has no name", i+1))
		case j < 0:
			unknown = append(unknown, strconv.Quote(strings.TrimSpace(h)))
		case slices.Contains(cols, &importColumns[j]):
			problems = append(problems, fmt.Sprintf("column %q appears twice", name))
		default:
			cols[i] = &importColumns[j]
			hasExternalID = hasExternalID || name == "external_id"
		}
	}
	if len(unknown) > 0 {
		what := "unknown column"
		if len(unknown) > 1 {
			what = "unknown columns"
		}
		problems = append(problems, fmt.Sprintf("%s %s (the columns are: %s)", what, strings.Join(unknown, ", "), importColumnNames()))
	}
	if len(problems) == 0 && !hasExternalID {
		problems = append(problems, "no external_id column: the header row must name the columns (the columns are: "+importColumnNames()+")")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("CSV header (line 1): %s", strings.Join(problems, "; "))
	}
	in := &importInput{format: "csv"}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
			}
			return nil, err
		}
		line, _ := r.FieldPos(0)
		if !slices.ContainsFunc(rec, func(c string) bool { return strings.TrimSpace(c) != "" }) {
			continue // a row of empty cells, as spreadsheets export
		}
		row := importRow{line: line}
		if err != nil {
			row.problems = append(row.problems, fmt.Sprintf("has %d cells, the header %d", len(rec), len(header)))
		}
		for i, cell := range rec {
			v := strings.TrimSpace(cell)
			if i >= len(cols) || v == "" {
				continue
			}
			if err := cols[i].set(&row.spec, v); err != nil {
				row.problems = append(row.problems, cols[i].name+": "+err.Error())
			}
		}
		in.rows = append(in.rows, row)
	}
	return in, nil
}

func parseJSONArray(data []byte) (*importInput, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the "["
		return nil, jsonSyntax(data, err)
	}
	in := &importInput{format: "json"}
	var unknown []string
	for dec.More() {
		start := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonSyntax(data, err)
		}
		// The element starts after the separator and blanks.
		start += len(data[start:]) - len(bytes.TrimLeft(data[start:], " \t\r\n,"))
		row, unk := jsonRow(lineAt(data, start), raw)
		in.rows, unknown = append(in.rows, row), append(unknown, unk...)
	}
	if _, err := dec.Token(); err != nil { // the "]"
		return nil, jsonSyntax(data, err)
	}
	if err := unknownFields(unknown); err != nil {
		return nil, err
	}
	return in, nil
}

func parseJSONLines(data []byte) (*importInput, error) {
	in := &importInput{format: "jsonl"}
	var unknown []string
	for i, text := range strings.Split(string(data), "\n") {
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		row, unk := jsonRow(i+1, json.RawMessage(text))
		in.rows, unknown = append(in.rows, row), append(unknown, unk...)
	}
	if err := unknownFields(unknown); err != nil {
		return nil, err
	}
	return in, nil
}

// jsonRow decodes one object into a row, and returns its unknown fields as
// "line N: "field"".
func jsonRow(line int, raw json.RawMessage) (importRow, []string) {
	row := importRow{line: line}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			row.problems = append(row.problems, "invalid JSON: "+se.Error())
		} else {
			row.problems = append(row.problems, "not a JSON object")
		}
		return row, nil
	}
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.ContainsFunc(importColumns, func(c importColumn) bool { return c.name == k }) {
			unknown = append(unknown, fmt.Sprintf("line %d: %q", line, k))
		}
	}
	if len(unknown) > 0 {
		return row, unknown
	}
	if err := json.Unmarshal(raw, &row.spec); err != nil {
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &te):
			row.problems = append(row.problems, fmt.Sprintf("%s: want %s, not a JSON %s", te.Field, jsonType(te.Type.Kind().String()), te.Value))
		case errors.As(err, &pe):
			row.problems = append(row.problems, fmt.Sprintf("trial_ends_at: %q is not RFC 3339 (2026-12-31T23:59:59Z)", pe.Value))
		default:
			row.problems = append(row.problems, err.Error())
		}
	}
	return row, nil
}

// jsonType names a Go kind as JSON does.
func jsonType(kind string) string {
	switch kind {
	case "int", "int64":
		return "a whole number"
	case "slice":
		return "an array of strings"
	case "map":
		return "an object"
	case "struct":
		return "an RFC 3339 time string"
	}
	return "a " + kind
}

func unknownFields(unknown []string) error {
	if len(unknown) == 0 {
		return nil
	}
	const most = 10
	more := ""
	if len(unknown) > most {
		more = fmt.Sprintf(" and %d more", len(unknown)-most)
		unknown = unknown[:most]
	}
	return fmt.Errorf("unknown fields: %s%s (the fields are: %s)", strings.Join(unknown, ", "), more, importColumnNames())
}

// jsonSyntax places a JSON decoding error on its line.
func jsonSyntax(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: %w", lineAt(data, int(se.Offset)), err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the JSON array does not end (a missing \"]\"?)")
	}
	return err
}

// lineAt is the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	return 1 + bytes.Count(data[:min(off, len(data))], []byte("\n"))
}

// Outcomes of a row.
const (
	outcomeCreated = "created"
	outcomeSkipped = "skipped" // already registered; not changed
	outcomeFailed  = "failed"
	outcomePending = "pending" // not attempted: a dry run, or interrupted
)

// importOutcome is what became of one row.
type importOutcome struct {
	Line       int       `json:"line"`
	ExternalID string    `json:"external_id"`
	Issuer     string    `json:"issuer"`
	Outcome    string    `json:"outcome"`
	ID         tenant.ID `json:"id,omitempty"`
	// Error says why a failed row failed; Note, for a skipped row, which
	// of its settings differ from the registered tenant's (unchanged).
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
}

// importReport is the outcome of an import.
type importReport struct {
	File           string          `json:"file"`
	Format         string          `json:"format"`
	DryRun         bool            `json:"dry_run,omitempty"`
	Interrupted    bool            `json:"interrupted,omitempty"`
	Rows           int             `json:"rows"`
	Created        int             `json:"created"`
	Skipped        int             `json:"skipped"`
	Failed         int             `json:"failed"`
	Pending        int             `json:"pending"`
	ElapsedSeconds float64         `json:"elapsed_seconds"`
	Parallel       int             `json:"parallel"`
	Outcomes       []importOutcome `json:"outcomes"`
}

// importer runs one import.
type importer struct {
	r        *adminRun
	in       *importInput
	issuer   string // --issuer
	parallel int
	dryRun   bool
	prog     *importProgress
}

type regKey struct{ issuer, externalID string }

// result is a worker's answer for row i.
type result struct {
	i   int
	t   *registry.Tenant
	err error
}

func (im *importer) run(ctx context.Context) (*importReport, error) {
	start := time.Now()
	existing, err := im.r.a.Registry.List(ctx)
	if err != nil {
		return nil, err
	}
	byKey := make(map[regKey]*registry.Tenant, len(existing))
	for _, t := range existing {
		byKey[regKey{t.Issuer, t.ExternalID}] = t
	}
	rep := &importReport{Format: im.in.format, DryRun: im.dryRun, Rows: len(im.in.rows), Parallel: im.parallel,
		Outcomes: make([]importOutcome, len(im.in.rows))}
	seen := map[regKey]int{} // the line of each tenant's first row
	var todo []int
	for i := range im.in.rows {
		row := &im.in.rows[i]
		if row.spec.Issuer == "" {
			row.spec.Issuer = im.issuer // "" = the deployment's, which CreateTenant applies
		}
		out := &rep.Outcomes[i]
		*out = importOutcome{Line: row.line, ExternalID: row.spec.ExternalID, Issuer: cmp.Or(row.spec.Issuer, im.r.a.Issuer())}
		k := regKey{out.Issuer, out.ExternalID}
		first, dup := seen[k]
		if !dup && k.externalID != "" {
			seen[k] = row.line
		}
		t := byKey[k]
		switch {
		case len(row.problems) > 0:
			out.Outcome, out.Error = outcomeFailed, strings.Join(row.problems, "; ")
		case dup:
			out.Outcome, out.Error = outcomeFailed, fmt.Sprintf("the tenant is also on line %d (a file names each tenant once)", first)
		case t != nil && t.Status != registry.StatusProvisioning:
			// A tenant still provisioning is handed to CreateTenant,
			// which finishes it.
			out.Outcome, out.ID, out.Note = outcomeSkipped, t.ID, differences(&row.spec, t)
		default:
			out.Outcome = outcomePending
			todo = append(todo, i)
		}
	}
	im.prog.say(rep.plan(len(todo)))
	if failed := rep.count(outcomeFailed); failed > 0 {
		im.prog.say(fmt.Sprintf("%d %s cannot be imported:\n%s", failed, plural(failed, "row", "rows"), rep.list(outcomeFailed, 20)))
	}
	if !im.dryRun && len(todo) > 0 {
		im.create(ctx, rep, todo)
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	rep.Created, rep.Skipped = rep.count(outcomeCreated), rep.count(outcomeSkipped)
	rep.Failed, rep.Pending = rep.count(outcomeFailed), rep.count(outcomePending)
	rep.Interrupted = !im.dryRun && rep.Pending > 0
	return rep, nil
}

// create runs the rows todo through a pool of workers, in file order.
// Once ctx is done no further row starts; the rows in flight finish (their
// context is not cancelled, so none is left half made).
func (im *importer) create(ctx context.Context, rep *importReport, todo []int) {
	jobs := make(chan int)
	results := make(chan result)
	workers := min(im.parallel, len(todo))
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range jobs {
				t, err := im.createOne(context.WithoutCancel(ctx), im.in.rows[i].spec)
				results <- result{i, t, err}
			}
		}()
	}
	im.prog.begin(len(todo))
	next, inFlight, failed := 0, 0, 0
	stop := ctx.Done()
	for inFlight > 0 || (next < len(todo) && ctx.Err() == nil) {
		var send chan<- int // nil (never ready) once no row is to start
		row := -1
		if next < len(todo) && ctx.Err() == nil {
			send, row = jobs, todo[next]
		}
		select {
		case send <- row:
			next++
			inFlight++
		case res := <-results:
			inFlight--
			if im.record(ctx, rep, res) {
				if failed++; failed <= maxLiveFailures {
					o := rep.Outcomes[res.i]
					im.prog.say(fmt.Sprintf("line %d (%s): %s", o.Line, o.ExternalID, o.Error))
				}
			}
			im.prog.update(next-inFlight, failed)
		case <-stop:
			// No row starts from now on (the loop's condition); wait for
			// the rows in flight.
			stop = nil
		}
	}
	close(jobs)
	for range workers {
		<-done
	}
	im.prog.end()
}

// createOne creates a row's tenant, retrying while the audit queue is full
// (the audit store is briefly behind): the operation is not run unless its
// event has a place.
func (im *importer) createOne(ctx context.Context, spec admin.TenantSpec) (*registry.Tenant, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		t, _, err := im.r.svc.CreateTenant(ctx, im.r.p, spec, "")
		if !errors.Is(err, audit.ErrBackpressure) || attempt == 5 {
			return t, err
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// record sets a row's outcome from its result and reports whether it
// failed.
func (im *importer) record(ctx context.Context, rep *importReport, res result) bool {
	out := &rep.Outcomes[res.i]
	switch {
	case res.err == nil:
		out.Outcome, out.ID = outcomeCreated, res.t.ID
	case errors.Is(res.err, registry.ErrExists):
		// Registered meanwhile, by another process.
		out.Outcome, out.Note = outcomeSkipped, "registered by someone else during the import; not changed"
		if t, err := im.r.a.Registry.Lookup(context.WithoutCancel(ctx), out.Issuer, out.ExternalID); err == nil {
			out.ID = t.ID
		}
	default:
		out.Outcome, out.Error = outcomeFailed, res.err.Error()
	}
	return out.Outcome == outcomeFailed
}

// maxLiveFailures is how many failures are printed as they happen; the
// summary lists them too, and --json all of them.
const maxLiveFailures = 5

// differences names the settings of spec that differ from the registered
// tenant t ("" when none do). Only the fields the row sets are compared.
func differences(sp *admin.TenantSpec, t *registry.Tenant) string {
	var d []string
	add := func(differ bool, name string) {
		if differ {
			d = append(d, name)
		}
	}
	add(sp.Name != "" && sp.Name != t.Name, "name")
	add(sp.Status != "" && sp.Status != t.Status, "status")
	add(!sp.TrialEndsAt.IsZero() && !sp.TrialEndsAt.Equal(t.TrialEndsAt), "trial_ends_at")
	add(sp.RateLimit != 0 && sp.RateLimit != t.RateLimit, "rate_limit")
	add(sp.RateBurst != 0 && sp.RateBurst != t.RateBurst, "rate_burst")
	add(len(sp.Tools) > 0 && !slices.Equal(sp.Tools, t.AllowedTools), "allowed_tools")
	add(len(sp.Flags) > 0 && !maps.Equal(sp.Flags, t.Flags), "flags")
	add(len(sp.Config) > 0 && !maps.Equal(sp.Config, t.Config), "config")
	if len(d) == 0 {
		return ""
	}
	if len(d) == 1 {
		return d[0] + " differs from the file and was not changed"
	}
	return strings.Join(d, ", ") + " differ from the file and were not changed"
}

func (rep *importReport) count(outcome string) int {
	n := 0
	for _, o := range rep.Outcomes {
		if o.Outcome == outcome {
			n++
		}
	}
	return n
}

// plan says what the import is about to do.
func (rep *importReport) plan(toCreate int) string {
	verb := "to create"
	if rep.DryRun {
		verb = "would be created (dry run: nothing is changed)"
	}
	return fmt.Sprintf("%d %s: %d already registered (skipped), %d %s", rep.Rows, plural(rep.Rows, "row", "rows"),
		rep.count(outcomeSkipped), toCreate, verb)
}

// list is up to most rows with outcome, one per line, for people.
func (rep *importReport) list(outcome string, most int) string {
	var b strings.Builder
	n := 0
	for _, o := range rep.Outcomes {
		msg := o.Error
		if outcome == outcomeSkipped {
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
	if n > most {
		fmt.Fprintf(&b, "  and %d more (all of them with --json)\n", n-most)
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
	if s := rep.list(outcomeSkipped, 10); s != "" {
		fmt.Fprintf(w, "skipped rows whose settings differ (change them with 'tenant update'):\n%s\n", s)
	}
	if s := rep.list(outcomeFailed, 10); s != "" {
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
