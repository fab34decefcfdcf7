package admin_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

const importIssuer = "https://idp.example/"

// importStore is a registry store that fails where a test says.
type importStore struct {
	*registry.MemoryStore
	mu       sync.Mutex
	failFor  map[string]bool // external ids whose Create fails
	failList bool
}

var errStoreDown = errors.New("registry store: connection refused")

func (s *importStore) Create(ctx context.Context, t *registry.Tenant) error {
	s.mu.Lock()
	fail := s.failFor[t.ExternalID]
	s.mu.Unlock()
	if fail {
		return errStoreDown
	}
	return s.MemoryStore.Create(ctx, t)
}

func (s *importStore) List(ctx context.Context, after tenant.ID, limit int) ([]*registry.Tenant, error) {
	s.mu.Lock()
	fail := s.failList
	s.mu.Unlock()
	if fail {
		return nil, errStoreDown
	}
	return s.MemoryStore.List(ctx, after, limit)
}

type importFixture struct {
	svc    *admin.Service
	reg    *registry.Registry
	store  *importStore
	events *audit.MemoryStore
	w      *audit.Writer
}

var importPrincipal = admin.Principal{Subject: "ops@example", Issuer: "https://admins.example/", Via: admin.ViaHTTP, RequestID: "req_import"}

func newImportFixture(t *testing.T) *importFixture {
	t.Helper()
	f := &importFixture{store: &importStore{MemoryStore: registry.NewMemoryStore(), failFor: map[string]bool{}}, events: audit.NewMemoryStore()}
	f.reg = registry.New(f.store, nil)
	w, err := audit.NewWriter(f.events, ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), &audit.WriterOptions{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	f.svc, err = admin.NewService(admin.Options{Registry: f.reg, Store: admin.NewMemoryStore(), Audit: w, Issuer: importIssuer,
		Tools: []string{"get_document", "list_documents"}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func parse(t *testing.T, body string) *admin.ImportFile {
	t.Helper()
	in, err := admin.ParseImport([]byte(body), admin.DetectImportFormat([]byte(body)))
	if err != nil {
		t.Fatalf("ParseImport: %v\n%s", err, body)
	}
	return in
}

// run imports body and records every progress report.
func (f *importFixture) run(t *testing.T, ctx context.Context, body string, opts *admin.ImportOptions) (*admin.ImportSummary, []admin.ImportProgress) {
	t.Helper()
	var reports []admin.ImportProgress
	sum, err := f.svc.Import(ctx, importPrincipal, parse(t, body), opts, func(p admin.ImportProgress) {
		p.Failures = slices.Clone(p.Failures)
		reports = append(reports, p)
	})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return sum, reports
}

func (f *importFixture) lookup(t *testing.T, issuer, externalID string) *registry.Tenant {
	t.Helper()
	rec, err := f.reg.Lookup(context.Background(), issuer, externalID)
	if err != nil {
		t.Fatalf("tenant %s of %s: %v", externalID, issuer, err)
	}
	return rec
}

func (f *importFixture) count(t *testing.T) int {
	t.Helper()
	recs, err := f.reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// createEvents are the create_tenant events by external id, "outcome
// actor via" each.
func (f *importFixture) createEvents(t *testing.T) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	chains, err := f.events.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, c := range chains {
		err := f.events.Scan(ctx, c, 1, func(r *audit.Record) error {
			ev, err := r.Event()
			if err == nil && ev.Method == "admin/create_tenant" {
				id := ev.Detail["external_id"]
				out[id] = append(out[id], ev.Outcome+" "+ev.Actor.Sub+" "+ev.Detail["via"])
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func outcomeOn(t *testing.T, sum *admin.ImportSummary, line int) admin.ImportOutcome {
	t.Helper()
	for _, o := range sum.Outcomes {
		if o.Line == line {
			return o
		}
	}
	t.Fatalf("no outcome on line %d: %+v", line, sum.Outcomes)
	return admin.ImportOutcome{}
}

// TestImportFormats: the same tenants written as CSV, a JSON array and
// JSON lines are detected as such and make the same records.
func TestImportFormats(t *testing.T) {
	t.Parallel()
	files := map[admin.ImportFormat]string{
		admin.ImportCSV: "\ufeffexternal_id,name,rate_limit,rate_burst,allowed_tools,flags,config,trial_ends_at\n" +
			"org_a,Acme,300,50,list_documents;get_document,beta=true;old=false,region=eu;tier=gold,\n" +
			"org_b,Globex,,,,,,2030-01-02\n",
		admin.ImportJSON: `  [
 {"external_id": "org_a", "name": "Acme", "rate_limit": 300, "rate_burst": 50, "allowed_tools": ["list_documents", "get_document"],
  "flags": {"beta": true, "old": false}, "config": {"region": "eu", "tier": "gold"}},
 {"external_id": "org_b", "name": "Globex", "trial_ends_at": "2030-01-02T00:00:00Z"}
]`,
		admin.ImportJSONLines: `{"external_id": "org_a", "name": "Acme", "rate_limit": 300, "rate_burst": 50, "allowed_tools": ["list_documents", "get_document"], "flags": {"beta": true, "old": false}, "config": {"region": "eu", "tier": "gold"}}

{"external_id": "org_b", "name": "Globex", "trial_ends_at": "2030-01-02T00:00:00Z"}
`,
	}
	for format, body := range files {
		if got := admin.DetectImportFormat([]byte(body)); got != format {
			t.Errorf("%s file detected as %s", format, got)
		}
		f := newImportFixture(t)
		sum, _ := f.run(t, context.Background(), body, nil)
		if sum.Format != format || sum.Rows != 2 || sum.Created != 2 || sum.Failed != 0 || sum.Parallel != admin.DefaultImportParallel {
			t.Fatalf("%s: %+v", format, sum)
		}
		a, b := f.lookup(t, importIssuer, "org_a"), f.lookup(t, importIssuer, "org_b")
		if a.Name != "Acme" || a.RateLimit != 300 || a.RateBurst != 50 || !slices.Equal(a.AllowedTools, []string{"list_documents", "get_document"}) ||
			!reflect.DeepEqual(a.Flags, map[string]bool{"beta": true, "old": false}) || !reflect.DeepEqual(a.Config, map[string]string{"region": "eu", "tier": "gold"}) ||
			a.Status != registry.StatusActive {
			t.Errorf("%s: org_a %+v", format, a)
		}
		if b.Status != registry.StatusTrial || !b.TrialEndsAt.Equal(time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: org_b %+v, want a trial ending 2030-01-02 (a trial end alone makes a trial)", format, b)
		}
		if o := outcomeOn(t, sum, map[admin.ImportFormat]int{admin.ImportCSV: 3, admin.ImportJSON: 4, admin.ImportJSONLines: 3}[format]); o.ExternalID != "org_b" || o.ID != b.ID {
			t.Errorf("%s: org_b's outcome is not on the line it starts on: %+v", format, sum.Outcomes)
		}
	}
}

// TestImportFileErrors: a file that cannot be imported as a whole is
// refused with ErrImportFile (a registry.ErrInvalid, a caller error)
// saying what is wrong; so is a format the file does not have.
func TestImportFileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		format     admin.ImportFormat
		want       string
	}{
		{"unknown column", "external_id,plan\norg_a,x\n", admin.ImportCSV, `CSV header (line 1): unknown column "plan" (the columns are: issuer, external_id, name`},
		{"no external_id", "name\nAcme\n", admin.ImportCSV, "no external_id column"},
		{"empty", "\ufeff \n", admin.ImportCSV, "the file is empty"},
		{"header only", "external_id\n", admin.ImportCSV, "no rows to import"},
		{"bad quote", "external_id,name\norg_a,\"Ac\"me\n", admin.ImportCSV, "line 2:"},
		{"unknown field", "[{\"external_id\": \"a\", \"tier\": 1}]", admin.ImportJSON, `unknown fields: line 1: "tier"`},
		{"unended", "[{\"external_id\": \"a\"},\n", admin.ImportJSON, "the JSON array does not end"},
		{"CSV given as JSON", "external_id\norg_a\n", admin.ImportJSON, `given as json but looks like CSV`},
		{"lines given as array", "{\"external_id\": \"a\"}\n", admin.ImportJSON, `looks like JSON lines (it starts with "{"): choose the format jsonl`},
		{"array given as CSV", "[]", admin.ImportCSV, "looks like a JSON array"},
		{"unknown format", "external_id\norg_a\n", admin.ImportFormat("xlsx"), `format "xlsx": want one of csv, json, jsonl`},
	} {
		_, err := admin.ParseImport([]byte(tc.body), tc.format)
		if !errors.Is(err, admin.ErrImportFile) || !errors.Is(err, registry.ErrInvalid) || !admin.CallerError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrImportFile saying %q", tc.name, err, tc.want)
		}
	}
	f := newImportFixture(t)
	if _, err := f.svc.Import(context.Background(), importPrincipal, parse(t, "external_id\norg_a\n"), &admin.ImportOptions{Parallel: -1}, nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("parallel -1: %v", err)
	}
	if n := f.count(t); n != 0 {
		t.Errorf("refused imports created %d tenants", n)
	}
}

// TestImportBadRows: rows that cannot be read, and a second row for the
// same tenant, fail alone with their line and reason and are reported
// before any create; a create that fails (a tool not served) is reported
// as it happens and the others go on. The progress reports count up to
// the summary, and every tenant is audited as the principal.
func TestImportBadRows(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t)
	const other = "https://other.example/"
	body := "external_id,name,rate_limit,allowed_tools,issuer\n" +
		"org_a,Acme,,,\n" + // 2
		"org_b,Bad rate,ten,,\n" + // 3
		"org_c,Bad tool,,nope,\n" + // 4
		"org_a,Twice,,,\n" + // 5
		",Nameless,,,\n" + // 6
		"org_a,Acme elsewhere,,," + other + "\n" + // 7
		"org_d,Extra,,,,cell\n" // 8
	sum, reports := f.run(t, context.Background(), body, &admin.ImportOptions{Parallel: 1})
	if sum.Rows != 7 || sum.Created != 2 || sum.Failed != 5 || sum.Skipped != 0 || sum.Pending != 0 || sum.Interrupted {
		t.Fatalf("summary %+v", sum)
	}
	for line, want := range map[int]string{
		3: `rate_limit: "ten" is not a whole number`,
		4: `allowed_tools: "nope" not served here`,
		5: "the tenant is also on line 2",
		6: "external_id: required",
		8: "has 6 cells, the header 5",
	} {
		if o := outcomeOn(t, sum, line); o.Outcome != admin.RowFailed || !strings.Contains(o.Error, want) || o.ID != "" {
			t.Errorf("line %d: %+v, want failed with %q", line, o, want)
		}
	}
	if o := outcomeOn(t, sum, 7); o.Outcome != admin.RowCreated || o.Issuer != other {
		t.Errorf("line 7: %+v, want created under %s", o, other)
	}
	if a, b := f.lookup(t, importIssuer, "org_a"), f.lookup(t, other, "org_a"); a.ID == b.ID || a.Name != "Acme" || b.Name != "Acme elsewhere" {
		t.Errorf("the two org_a: %+v %+v", a, b)
	}

	// First the plan: the rows refused before any create; then one report
	// per create, the failed one with its error.
	if len(reports) != 1+3 {
		t.Fatalf("%d progress reports, want the plan and 3 creates: %+v", len(reports), reports)
	}
	planned := reports[0]
	if planned.Row != nil || planned.Rows != 7 || planned.ToCreate != 3 || planned.Done != 0 || planned.Failed != 4 || len(planned.Failures) != 4 {
		t.Fatalf("plan %+v", planned)
	}
	for i, line := range []int{3, 5, 6, 8} {
		if planned.Failures[i].Line != line {
			t.Errorf("plan's failure %d on line %d, want %d", i, planned.Failures[i].Line, line)
		}
	}
	last := reports[len(reports)-1]
	if last.Done != 3 || last.Created != sum.Created || last.Failed != sum.Failed || len(last.Failures) != 5 || last.Failures[4].Line != 4 {
		t.Errorf("last report %+v, want done 3 with the summary's counts", last)
	}
	for i, r := range reports[1:] {
		if r.Row == nil || r.Done != i+1 {
			t.Errorf("report %d: %+v", i+1, r)
		}
		if r.Row != nil && r.Row.Line == 4 && (r.Row.Outcome != admin.RowFailed || !strings.Contains(r.Row.Error, "nope")) {
			t.Errorf("the failed create's report: %+v", r.Row)
		}
	}
	ev := f.createEvents(t)
	who := audit.OutcomeOK + " ops@example " + admin.ViaHTTP
	if !slices.Equal(ev["org_a"], []string{who, who}) || len(ev["org_c"]) != 1 || strings.HasPrefix(ev["org_c"][0], audit.OutcomeOK) || len(ev["org_b"]) != 0 {
		t.Errorf("create events %v: want org_a twice (two issuers) by the principal, org_c refused, none for unread rows", ev)
	}
}

// TestImportResume: a second import of the same file skips every
// registered row without changing it (and says where it differs), and
// creates only the rest; an import interrupted after k rows stops once
// the rows in flight finish and the same file again finishes it, every
// tenant created once; a tenant a crash left provisioning is finished.
func TestImportResume(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t)
	ctx := context.Background()
	// Left by a crash in the middle of its provisioning.
	if _, err := f.reg.Add(ctx, registry.Tenant{Issuer: importIssuer, ExternalID: "org_05", Status: registry.StatusProvisioning,
		Lifecycle: registry.Lifecycle{Operation: lifecycle.OpProvision, Step: "record", Target: registry.StatusActive}}); err != nil {
		t.Fatal(err)
	}
	const total, k, parallel = 20, 6, 3
	var b strings.Builder
	b.WriteString("external_id,name\n")
	for i := range total {
		fmt.Fprintf(&b, "org_%02d,Tenant %d\n", i, i)
	}
	body := b.String()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var at int
	sum1, err := f.svc.Import(cctx, importPrincipal, parse(t, body), &admin.ImportOptions{Parallel: parallel}, func(p admin.ImportProgress) {
		if p.Done >= k && at == 0 {
			at = p.Done
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sum1.Interrupted || sum1.Created < k || sum1.Created > at+parallel-1 || sum1.Created+sum1.Pending != total || sum1.Failed != 0 {
		t.Fatalf("interrupted at %d: %+v", at, sum1)
	}
	for _, o := range sum1.Outcomes {
		if (o.Outcome == admin.RowCreated) != (o.ID != "") || o.Outcome != admin.RowCreated && o.Outcome != admin.RowPending {
			t.Errorf("interrupted, line %d: %+v", o.Line, o)
		}
	}

	sum2, _ := f.run(t, ctx, body, nil)
	if sum2.Interrupted || sum2.Skipped != sum1.Created || sum2.Created != total-sum1.Created || sum2.Failed != 0 {
		t.Fatalf("resumed after %d: %+v", sum1.Created, sum2)
	}
	if n := f.count(t); n != total {
		t.Fatalf("%d tenants, want %d", n, total)
	}
	if st := f.lookup(t, importIssuer, "org_05").Status; st != registry.StatusActive {
		t.Errorf("the tenant left provisioning is %s after the import, want active", st)
	}
	ev := f.createEvents(t)
	for i := range total {
		id := fmt.Sprintf("org_%02d", i)
		if len(ev[id]) != 1 || !strings.HasPrefix(ev[id][0], audit.OutcomeOK+" ops@example") {
			t.Errorf("%s: create events %q, want one by the principal", id, ev[id])
		}
	}

	// A third run with a changed row changes nothing and says so; a dry
	// run of new rows creates nothing.
	before := f.lookup(t, importIssuer, "org_03")
	changed := strings.Replace(body, "org_03,Tenant 3", "org_03,Renamed", 1) + "org_new,New\n"
	sum3, _ := f.run(t, ctx, changed, &admin.ImportOptions{DryRun: true})
	if !sum3.DryRun || sum3.Interrupted || sum3.Pending != 1 || sum3.Skipped != total || sum3.Created != 0 {
		t.Fatalf("dry run: %+v", sum3)
	}
	if o := outcomeOn(t, sum3, 5); o.Outcome != admin.RowSkipped || o.ID != before.ID || o.Note != "name differs from the file and was not changed" {
		t.Errorf("changed row: %+v", o)
	}
	if after := f.lookup(t, importIssuer, "org_03"); after.Name != before.Name || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("a skipped row changed its tenant: %+v → %+v", before, after)
	}
	if n := f.count(t); n != total {
		t.Errorf("the dry run created tenants: %d", n)
	}
}

// TestImportConcurrent: two imports of the same file at once (two
// operators, two replicas) register every tenant once; a row the other
// import registered first is skipped or finished, never failed.
func TestImportConcurrent(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t)
	var b strings.Builder
	b.WriteString("external_id\n")
	for i := range 30 {
		fmt.Fprintf(&b, "org_%02d\n", i)
	}
	var wg sync.WaitGroup
	sums := make([]*admin.ImportSummary, 2)
	for i := range sums {
		wg.Go(func() {
			var err error
			sums[i], err = f.svc.Import(context.Background(), importPrincipal, parse(t, b.String()), nil, nil)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A row both imports start before either has registered it is
	// provisioned by the first and finished by the second (lifecycle's
	// Provision resumes a tenant still provisioning), so both may count
	// it created: at least 30 created, none failed.
	for i, sum := range sums {
		if sum.Created+sum.Skipped != 30 || sum.Failed != 0 || sum.Interrupted {
			t.Errorf("import %d: %+v", i, sum)
		}
	}
	if c := sums[0].Created + sums[1].Created; c < 30 {
		t.Errorf("created %d in all, want at least 30", c)
	}
	if n := f.count(t); n != 30 {
		t.Fatalf("%d tenants, want 30", n)
	}
}

// TestImportFailingStore: a registry that cannot list refuses the import
// before anything is created; one whose writes fail for some rows fails
// those rows alone, with the store's error, and the others are created.
func TestImportFailingStore(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t)
	body := "external_id\norg_a\norg_b\norg_c\n"
	f.store.failList = true
	if _, err := f.svc.Import(context.Background(), importPrincipal, parse(t, body), nil, nil); !errors.Is(err, errStoreDown) || !strings.Contains(err.Error(), "import: list the registered tenants") {
		t.Fatalf("import over a registry that cannot list: %v", err)
	}
	f.store.mu.Lock()
	f.store.failList = false
	f.store.failFor["org_b"] = true
	f.store.mu.Unlock()
	sum, _ := f.run(t, context.Background(), body, nil)
	if sum.Created != 2 || sum.Failed != 1 {
		t.Fatalf("%+v", sum)
	}
	if o := outcomeOn(t, sum, 3); o.Outcome != admin.RowFailed || !strings.Contains(o.Error, errStoreDown.Error()) {
		t.Errorf("org_b: %+v", o)
	}
	if _, err := f.reg.Lookup(context.Background(), importIssuer, "org_b"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("org_b after its write failed: %v", err)
	}
	// Fixed, the same file creates only org_b.
	f.store.mu.Lock()
	delete(f.store.failFor, "org_b")
	f.store.mu.Unlock()
	if sum, _ := f.run(t, context.Background(), body, nil); sum.Created != 1 || sum.Skipped != 2 || outcomeOn(t, sum, 3).Outcome != admin.RowCreated {
		t.Fatalf("after the fix: %+v", sum)
	}
}

// FuzzParseImport: any file either parses into rows or is refused with
// ErrImportFile; never a panic.
func FuzzParseImport(f *testing.F) {
	for _, s := range []string{
		"external_id,name\norg_a,Acme\n",
		"external_id,flags,config\na,x=true;y=no,k=v\n",
		"[{\"external_id\": \"a\", \"trial_ends_at\": \"2030-01-02T00:00:00Z\"}]",
		"{\"external_id\": \"a\"}\n{\"rate_limit\": \"x\"}\n[1]\n",
		"\ufeff[\n{}, 1, \"x\", null]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range admin.ImportFormats {
			in, err := admin.ParseImport(data, format)
			if err != nil && !errors.Is(err, admin.ErrImportFile) {
				t.Fatalf("%s: an error that is not ErrImportFile: %v", format, err)
			}
			if err == nil && (in.Rows() == 0 || in.Format != format) {
				t.Fatalf("%s: parsed as %s with %d rows", format, in.Format, in.Rows())
			}
		}
	})
}

// ExampleService_Import imports a CSV file: the bad row fails alone, and
// importing the same file again skips what is registered.
func ExampleService_Import() {
	ctx := context.Background()
	svc, err := admin.NewService(admin.Options{Registry: registry.New(registry.NewMemoryStore(), nil), Store: admin.NewMemoryStore(),
		Issuer: "https://idp.example/"})
	if err != nil {
		panic(err)
	}
	data := []byte("external_id,name,rate_limit\norg_a,Acme,300\norg_b,Globex,ten\n")
	f, err := admin.ParseImport(data, admin.DetectImportFormat(data))
	if err != nil {
		panic(err) // the file as a whole cannot be imported (errors.Is admin.ErrImportFile)
	}
	p := admin.Principal{Subject: "ops@example", Via: admin.ViaHTTP}
	for range 2 {
		sum, err := svc.Import(ctx, p, f, nil, nil)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %d rows, %d created, %d skipped, %d failed\n", sum.Format, sum.Rows, sum.Created, sum.Skipped, sum.Failed)
	}
	// Output:
	// csv: 2 rows, 1 created, 0 skipped, 1 failed
	// csv: 2 rows, 0 created, 1 skipped, 1 failed
}
