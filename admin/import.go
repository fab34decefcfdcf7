package admin

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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Bulk import: many tenants from one file (CSV, a JSON array or JSON
// lines), each created by CreateTenant, so each is validated, provisioned
// and audited (as the principal) like any other. A row whose tenant is
// already registered (its external id under its issuer) is skipped and
// never changed: that is what makes a second run of the same file resume
// an interrupted import, on any replica and after a crash, without an
// idempotency key that could expire or stay claimed by a row a crash
// interrupted. The CLI ('tenant import') and the console's jobs page both
// call ParseImport and Service.Import.

// ImportFormat is the format of an import file.
type ImportFormat string

// Import formats.
const (
	// ImportCSV: a header row naming the columns (ImportFields, in any
	// order; only external_id is required), then a row per tenant. Cells
	// are trimmed of blanks; an empty cell leaves the field unset; lists
	// are separated by ";", flags are NAME=true|false and config
	// KEY=VALUE.
	ImportCSV ImportFormat = "csv"
	// ImportJSON: an array of objects whose fields are the CSV columns,
	// with allowed_tools an array of strings, flags an object of booleans,
	// config an object of strings and trial_ends_at RFC 3339.
	ImportJSON ImportFormat = "json"
	// ImportJSONLines: one such object per line.
	ImportJSONLines ImportFormat = "jsonl"
)

// ImportFormats are the formats, for choices and messages.
var ImportFormats = []ImportFormat{ImportCSV, ImportJSON, ImportJSONLines}

// DetectImportFormat tells the format of a file from its first character
// after blanks and a byte-order mark: "[" is a JSON array, "{" JSON lines,
// anything else CSV.
func DetectImportFormat(data []byte) ImportFormat {
	switch t := bytes.TrimLeft(bytes.TrimPrefix(data, bom), " \t\r\n"); {
	case len(t) > 0 && t[0] == '[':
		return ImportJSON
	case len(t) > 0 && t[0] == '{':
		return ImportJSONLines
	}
	return ImportCSV
}

var bom = []byte("\ufeff")

// ErrImportFile is what a file that cannot be imported as a whole fails
// with (an unknown column or field, a header without external_id, broken
// JSON, no rows); it wraps registry.ErrInvalid. Rows that cannot be read
// do not refuse the file: they fail alone.
var ErrImportFile = fmt.Errorf("import file: %w", registry.ErrInvalid)

// importFileError refuses a whole file; its message is the problem's
// alone, and it is ErrImportFile.
type importFileError struct{ err error }

func (e *importFileError) Error() string   { return e.err.Error() }
func (e *importFileError) Unwrap() []error { return []error{e.err, ErrImportFile} }

func fileError(format string, args ...any) error {
	return &importFileError{fmt.Errorf(format, args...)}
}

// ImportFile is a parsed import file: its rows, each a TenantSpec or the
// problems that keep it from being one.
type ImportFile struct {
	Format ImportFormat
	rows   []importRow
}

// Rows is the number of tenants (rows) in the file.
func (f *ImportFile) Rows() int { return len(f.rows) }

// importRow is one tenant of the file.
type importRow struct {
	// line is where the row starts in the file (1-based).
	line int
	spec TenantSpec
	// problems say why the row cannot be read; such a row is not imported.
	problems []string
}

// importColumn is a CSV column and JSON field: the TenantSpec field of
// the same JSON name, and how a CSV cell sets it.
type importColumn struct {
	name string
	set  func(sp *TenantSpec, v string) error
}

// importColumns are the CSV columns and the JSON fields, in TenantSpec's
// order.
var importColumns = []importColumn{
	{"issuer", func(sp *TenantSpec, v string) error { sp.Issuer = v; return nil }},
	{"external_id", func(sp *TenantSpec, v string) error { sp.ExternalID = v; return nil }},
	{"name", func(sp *TenantSpec, v string) error { sp.Name = v; return nil }},
	{"status", func(sp *TenantSpec, v string) error { sp.Status = registry.Status(v); return nil }},
	{"trial_days", func(sp *TenantSpec, v string) (err error) { sp.TrialDays, err = cellInt(v); return err }},
	{"trial_ends_at", func(sp *TenantSpec, v string) (err error) { sp.TrialEndsAt, err = ParseTime(v); return err }},
	{"rate_limit", func(sp *TenantSpec, v string) (err error) { sp.RateLimit, err = cellInt(v); return err }},
	{"rate_burst", func(sp *TenantSpec, v string) (err error) { sp.RateBurst, err = cellInt(v); return err }},
	{"allowed_tools", func(sp *TenantSpec, v string) error { sp.Tools = cellList(v); return nil }},
	{"flags", func(sp *TenantSpec, v string) error {
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
	{"config", func(sp *TenantSpec, v string) error {
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

// ImportFields are the names of the CSV columns and JSON fields, in
// TenantSpec's order.
func ImportFields() []string {
	names := make([]string, len(importColumns))
	for i, c := range importColumns {
		names[i] = c.name
	}
	return names
}

// importColumnNames lists the columns for messages.
func importColumnNames() string { return strings.Join(ImportFields(), ", ") }

// ParseTime reads a time as RFC 3339 or a date (YYYY-MM-DD, midnight
// UTC).
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2026-12-31T23:59:59Z) or a date (2026-12-31)", s)
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

// ParseImport reads a whole file of format (DetectImportFormat tells it
// from the file). A file that cannot be imported as a whole fails with an
// error that is ErrImportFile, saying where (line) and what; problems of
// single rows are kept with their rows, which fail alone when imported.
func ParseImport(data []byte, format ImportFormat) (*ImportFile, error) {
	data = bytes.TrimPrefix(data, bom)
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fileError("the file is empty: want a CSV header row or JSON")
	}
	if got := DetectImportFormat(data); got != format {
		return nil, formatMismatch(format, got)
	}
	var f *ImportFile
	var err error
	switch format {
	case ImportJSON:
		f, err = parseJSONArray(data)
	case ImportJSONLines:
		f, err = parseJSONLines(data)
	default:
		f, err = parseCSV(data)
	}
	if err != nil {
		return nil, err
	}
	if len(f.rows) == 0 {
		return nil, fileError("no rows to import")
	}
	for i := range f.rows {
		sp := &f.rows[i].spec
		if sp.ExternalID == "" {
			f.rows[i].problems = append(f.rows[i].problems, "external_id: required (the identity provider's tenant id)")
		}
		if !sp.TrialEndsAt.IsZero() && sp.Status == "" {
			sp.Status = registry.StatusTrial // as a create with a trial end does
		}
	}
	return f, nil
}

// formatMismatch refuses a file whose first character says another
// format than the one asked for (or an unknown format).
func formatMismatch(want, got ImportFormat) error {
	names := make([]string, len(ImportFormats))
	for i, f := range ImportFormats {
		names[i] = string(f)
	}
	looks := map[ImportFormat]string{
		ImportCSV:       "CSV (it starts with neither \"[\" nor \"{\")",
		ImportJSON:      "a JSON array (it starts with \"[\")",
		ImportJSONLines: "JSON lines (it starts with \"{\")",
	}
	if _, ok := looks[want]; !ok {
		return fileError("format %q: want one of %s", want, strings.Join(names, ", "))
	}
	return fileError("the file was given as %s but looks like %s: choose the format %s, or let it be detected", want, looks[got], got)
}

func parseCSV(data []byte) (*ImportFile, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fileError("CSV header: %w", err)
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
		return nil, fileError("CSV header (line 1): %s", strings.Join(problems, "; "))
	}
	f := &ImportFile{Format: ImportCSV}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			if errors.As(err, &pe) {
				return nil, fileError("line %d: %w", pe.StartLine, pe.Err)
			}
			return nil, fileError("%w", err)
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
		f.rows = append(f.rows, row)
	}
	return f, nil
}

func parseJSONArray(data []byte) (*ImportFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the "["
		return nil, jsonSyntax(data, err)
	}
	f := &ImportFile{Format: ImportJSON}
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
		f.rows, unknown = append(f.rows, row), append(unknown, unk...)
	}
	if _, err := dec.Token(); err != nil { // the "]"
		return nil, jsonSyntax(data, err)
	}
	if err := unknownFields(unknown); err != nil {
		return nil, err
	}
	return f, nil
}

func parseJSONLines(data []byte) (*ImportFile, error) {
	f := &ImportFile{Format: ImportJSONLines}
	var unknown []string
	for i, text := range strings.Split(string(data), "\n") {
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		row, unk := jsonRow(i+1, json.RawMessage(text))
		f.rows, unknown = append(f.rows, row), append(unknown, unk...)
	}
	if err := unknownFields(unknown); err != nil {
		return nil, err
	}
	return f, nil
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
	return fileError("unknown fields: %s%s (the fields are: %s)", strings.Join(unknown, ", "), more, importColumnNames())
}

// jsonSyntax places a JSON decoding error on its line.
func jsonSyntax(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fileError("line %d: %w", lineAt(data, int(se.Offset)), err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fileError("the JSON array does not end (a missing \"]\"?)")
	}
	return fileError("%w", err)
}

// lineAt is the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	return 1 + bytes.Count(data[:min(off, len(data))], []byte("\n"))
}

// RowOutcome is what became of one row of an import.
type RowOutcome string

// Row outcomes.
const (
	RowCreated RowOutcome = "created"
	RowSkipped RowOutcome = "skipped" // already registered; not changed
	RowFailed  RowOutcome = "failed"
	RowPending RowOutcome = "pending" // not attempted: a dry run, or interrupted
)

// ImportOutcome is what became of one row.
type ImportOutcome struct {
	Line       int        `json:"line"`
	ExternalID string     `json:"external_id"`
	Issuer     string     `json:"issuer"`
	Outcome    RowOutcome `json:"outcome"`
	ID         tenant.ID  `json:"id,omitempty"`
	// Error says why a failed row failed; Note, for a skipped row, which
	// of its settings differ from the registered tenant's (unchanged).
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
}

// ImportSummary is the outcome of an import: the counts, and every row's
// outcome in file order.
type ImportSummary struct {
	Format      ImportFormat `json:"format"`
	DryRun      bool         `json:"dry_run,omitempty"`
	Interrupted bool         `json:"interrupted,omitempty"` // ctx ended before every row was attempted
	Rows        int          `json:"rows"`
	Created     int          `json:"created"`
	Skipped     int          `json:"skipped"`
	Failed      int          `json:"failed"`
	Pending     int          `json:"pending"`
	// ElapsedSeconds is how long the import took.
	ElapsedSeconds float64         `json:"elapsed_seconds"`
	Parallel       int             `json:"parallel"`
	Outcomes       []ImportOutcome `json:"outcomes"`
}

func (sum *ImportSummary) count(outcome RowOutcome) int {
	n := 0
	for _, o := range sum.Outcomes {
		if o.Outcome == outcome {
			n++
		}
	}
	return n
}

// ImportProgress is a report of an import in progress.
type ImportProgress struct {
	// Rows is the number of rows of the file; ToCreate of them are to be
	// created (not skipped as registered, nor refused before the creates;
	// in a dry run: would be).
	Rows, ToCreate int
	// Done is how many of ToCreate have finished (created, skipped or
	// failed).
	Done int
	// Created, Skipped and Failed count every row so far.
	Created, Skipped, Failed int
	// Failures are the first failed rows (at most MaxProgressFailures),
	// those that cannot be read first, in file order, then the creates
	// that failed, as they failed.
	Failures []ImportOutcome
	// Row is the row just finished; nil in the first report, made once
	// the rows are sorted into skipped, refused and to create.
	Row *ImportOutcome
}

// MaxProgressFailures bounds ImportProgress.Failures; the summary has
// every row.
const MaxProgressFailures = 20

// ImportOptions configure an import.
type ImportOptions struct {
	// Issuer is the issuer of the rows that name none; "" = the
	// deployment's (Options.Issuer).
	Issuer string
	// Parallel is how many rows are created at once; 0 =
	// DefaultImportParallel.
	Parallel int
	// DryRun sorts the rows into those that would be created, skipped
	// and refused, and creates nothing.
	DryRun bool
}

// DefaultImportParallel is how many rows an import creates at once unless
// ImportOptions.Parallel says. Creating a tenant mostly waits for writes
// to be made durable (a new SQLite file per tenant, a few PostgreSQL
// commits), so several at once help even on SQLite: 4 rather than 1 was
// 1.4 to 2.7 times as fast there, on 2 cores; on PostgreSQL the gain was
// within the noise (docs/benchmarks.md, "Bulk import").
const DefaultImportParallel = 4

type regKey struct{ issuer, externalID string }

// Import creates the tenants of f as p, each through CreateTenant (so
// validated, provisioned and audited in its own chain), opts.Parallel at
// once, in file order. Rows that cannot be read fail alone, and so does a
// second row for the same tenant; a row whose tenant is registered (and
// not still provisioning, which the import finishes) is skipped and not
// changed; a row whose create fails is reported and the import goes on.
//
// Once ctx is done no further row starts; the rows in flight finish (their
// context is not cancelled, so none is left half made), and the summary is
// Interrupted with the rows not started Pending: importing the same file
// again continues. progress, if not nil, is called on the goroutine that
// called Import — once the rows are sorted, then after each create — and
// must not keep the report's slices. The error is for an import that
// could not start (the registry cannot be listed, bad options); failed
// rows are in the summary (ImportSummary.Err).
func (s *Service) Import(ctx context.Context, p Principal, f *ImportFile, opts *ImportOptions, progress func(ImportProgress)) (*ImportSummary, error) {
	var o ImportOptions
	if opts != nil {
		o = *opts
	}
	if o.Parallel < 0 {
		return nil, invalid(fmt.Sprintf("parallel: 1 or more (0 = %d), not %d", DefaultImportParallel, o.Parallel))
	}
	o.Parallel = cmp.Or(o.Parallel, DefaultImportParallel)
	if progress == nil {
		progress = func(ImportProgress) {}
	}
	start := time.Now()
	existing, err := s.o.Registry.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("import: list the registered tenants: %w", err)
	}
	byKey := make(map[regKey]*registry.Tenant, len(existing))
	for _, t := range existing {
		byKey[regKey{t.Issuer, t.ExternalID}] = t
	}
	im := &importRun{s: s, p: p, sum: &ImportSummary{Format: f.Format, DryRun: o.DryRun, Rows: len(f.rows), Parallel: o.Parallel,
		Outcomes: make([]ImportOutcome, len(f.rows))}, specs: make([]TenantSpec, len(f.rows)), progress: progress,
		failures: make([]ImportOutcome, 0, MaxProgressFailures)}
	seen := map[regKey]int{} // the line of each tenant's first row
	var todo []int
	for i, row := range f.rows {
		im.specs[i] = row.spec
		sp := &im.specs[i]
		sp.Issuer = cmp.Or(sp.Issuer, o.Issuer) // "" = the deployment's, which CreateTenant applies
		out := &im.sum.Outcomes[i]
		*out = ImportOutcome{Line: row.line, ExternalID: sp.ExternalID, Issuer: cmp.Or(sp.Issuer, s.o.Issuer)}
		k := regKey{out.Issuer, out.ExternalID}
		first, dup := seen[k]
		if !dup && k.externalID != "" {
			seen[k] = row.line
		}
		t := byKey[k]
		switch {
		case len(row.problems) > 0:
			out.Outcome, out.Error = RowFailed, strings.Join(row.problems, "; ")
		case dup:
			out.Outcome, out.Error = RowFailed, fmt.Sprintf("the tenant is also on line %d (a file names each tenant once)", first)
		case t != nil && t.Status != registry.StatusProvisioning:
			// A tenant still provisioning is handed to CreateTenant,
			// which finishes it.
			out.Outcome, out.ID, out.Note = RowSkipped, t.ID, differences(sp, t)
		default:
			out.Outcome = RowPending
			todo = append(todo, i)
		}
		im.tally(*out)
	}
	im.toCreate = len(todo)
	im.report(nil)
	if !o.DryRun && len(todo) > 0 {
		im.create(ctx, todo, o.Parallel)
	}
	sum := im.sum
	sum.ElapsedSeconds = time.Since(start).Seconds()
	sum.Created, sum.Skipped = sum.count(RowCreated), sum.count(RowSkipped)
	sum.Failed, sum.Pending = sum.count(RowFailed), sum.count(RowPending)
	sum.Interrupted = !o.DryRun && sum.Pending > 0
	return sum, nil
}

// importRun is one import in progress.
type importRun struct {
	s                        *Service
	p                        Principal
	sum                      *ImportSummary
	specs                    []TenantSpec // each row's, with its issuer
	progress                 func(ImportProgress)
	toCreate                 int
	done                     int
	created, skipped, failed int
	failures                 []ImportOutcome // the first MaxProgressFailures
}

// tally counts a row's outcome for the progress reports.
func (im *importRun) tally(o ImportOutcome) {
	switch o.Outcome {
	case RowCreated:
		im.created++
	case RowSkipped:
		im.skipped++
	case RowFailed:
		im.failed++
		if len(im.failures) < MaxProgressFailures {
			im.failures = append(im.failures, o)
		}
	}
}

func (im *importRun) report(row *ImportOutcome) {
	n := len(im.failures)
	im.progress(ImportProgress{
		Rows: im.sum.Rows, ToCreate: im.toCreate, Done: im.done,
		Created: im.created, Skipped: im.skipped, Failed: im.failed,
		Failures: im.failures[:n:n], // append-only: the receiver's part never changes
		Row:      row,
	})
}

// result is a worker's answer for row i.
type result struct {
	i   int
	t   *registry.Tenant
	err error
}

// create runs the rows todo through parallel workers, in file order.
// Once ctx is done no further row starts; the rows in flight finish.
func (im *importRun) create(ctx context.Context, todo []int, parallel int) {
	jobs := make(chan int)
	results := make(chan result)
	workers := min(parallel, len(todo))
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range jobs {
				t, err := im.createOne(context.WithoutCancel(ctx), im.specs[i])
				results <- result{i, t, err}
			}
		}()
	}
	next, inFlight := 0, 0
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
			im.done++
			out := im.record(ctx, res)
			im.tally(out)
			im.report(&out)
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
}

// createOne creates a row's tenant, retrying while the audit queue is full
// (the audit store is briefly behind): the operation is not run unless its
// event has a place.
func (im *importRun) createOne(ctx context.Context, spec TenantSpec) (*registry.Tenant, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		t, _, err := im.s.CreateTenant(ctx, im.p, spec, "")
		if !errors.Is(err, audit.ErrBackpressure) || attempt == 5 {
			return t, err
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// record sets a row's outcome from its result and returns it.
func (im *importRun) record(ctx context.Context, res result) ImportOutcome {
	out := &im.sum.Outcomes[res.i]
	switch {
	case res.err == nil:
		out.Outcome, out.ID = RowCreated, res.t.ID
	case errors.Is(res.err, registry.ErrExists):
		// Registered meanwhile, by another import or replica.
		out.Outcome, out.Note = RowSkipped, "registered by someone else during the import; not changed"
		if t, err := im.s.o.Registry.Lookup(context.WithoutCancel(ctx), out.Issuer, out.ExternalID); err == nil {
			out.ID = t.ID
		}
	default:
		out.Outcome, out.Error = RowFailed, res.err.Error()
	}
	return *out
}

// differences names the settings of spec that differ from the registered
// tenant t ("" when none do). Only the fields the row sets are compared.
func differences(sp *TenantSpec, t *registry.Tenant) string {
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
