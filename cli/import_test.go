package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// importReport is the --json report of tenant import.
type importReport struct {
	Rows, Created, Skipped, Failed, Pending int
	Interrupted                             bool
	DryRun                                  bool `json:"dry_run"`
	Outcomes                                []struct {
		Line       int
		ExternalID string `json:"external_id"`
		Issuer     string
		Outcome    string
		ID         string
		Error      string
		Note       string
	}
}

// outcome is the outcome of the row on line.
func (r *importReport) outcome(t *testing.T, line int) (outcome, msg string) {
	t.Helper()
	for _, o := range r.Outcomes {
		if o.Line == line {
			return o.Outcome, o.Error + o.Note
		}
	}
	t.Fatalf("the report has no row on line %d: %+v", line, r.Outcomes)
	return "", ""
}

func writeInput(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// importJSON runs tenant import --json and decodes its report.
func importJSON(t *testing.T, env []string, args ...string) (int, *importReport, string) {
	t.Helper()
	code, out, errOut := run(t, env, append([]string{"tenant", "import", "--json"}, args...)...)
	var rep importReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("tenant import --json %v: exit %d, no report (%v):\n%s\n%s", args, code, err, out, errOut)
	}
	return code, &rep, errOut
}

// registered lists the deployment's tenants.
func registered(t *testing.T, path string, env []string) []registry.Tenant {
	t.Helper()
	code, out, errOut := run(t, env, "tenant", "list", "--config", path, "--json")
	if code != 0 {
		t.Fatalf("tenant list: %d %s", code, errOut)
	}
	var recs []registry.Tenant
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("tenant list --json: %v\n%s", err, out)
	}
	return recs
}

// onceEach fails unless every (issuer, external id) of recs is there once,
// and returns them by issuer and external id.
func onceEach(t *testing.T, recs []registry.Tenant) map[[2]string]registry.Tenant {
	t.Helper()
	byKey := map[[2]string]registry.Tenant{}
	for _, r := range recs {
		k := [2]string{r.Issuer, r.ExternalID}
		if _, dup := byKey[k]; dup {
			t.Errorf("tenant %q of %s is registered twice", r.ExternalID, r.Issuer)
		}
		byKey[k] = r
	}
	return byKey
}

// tenantIssuer is the issuer of tenantConfig's deployment.
const tenantIssuer = "https://idp.example.com/"

// openDeployment opens the deployment of configuration file path, stores
// and all, as its server would; the caller closes it.
func openDeployment(t *testing.T, path string, opts *app.Options) *app.App {
	t.Helper()
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// createEvents returns the create_tenant audit events of the deployment's
// audit trail by the external id they create, as "outcome tenant-id"
// sorted: from the tenant chains and the system chain (where a create
// that failed is recorded, with no tenant id).
func createEvents(t *testing.T, path string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	a := openDeployment(t, path, nil)
	defer a.Close()
	chains, err := a.Audit().Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string][]string{}
	for _, c := range chains {
		err := a.Audit().Scan(ctx, c, 1, func(r *audit.Record) error {
			ev, err := r.Event()
			if err == nil && ev.Method == "admin/create_tenant" {
				id := ev.Detail["external_id"]
				n[id] = append(n[id], ev.Outcome+" "+ev.Tenant)
				slices.Sort(n[id])
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestTenantImportCSV: every column reaches the record; rows that cannot
// be read are listed before anything is created and the others are
// imported; a failing row does not stop the batch; a second run skips what
// exists (without changing it, and saying where it differs) and creates
// only the rest.
func TestTenantImportCSV(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := tenantConfig(t)
	const other = "https://other.example/"
	body := ` External_ID ,name,rate_limit,rate_burst,allowed_tools,flags,config,status,trial_days,trial_ends_at,issuer
org_a,Acme,300,50,list_documents; get_document,beta=true;old=false,region=eu;tier=gold,,,,
org_b,Globex,,,,,,trial,14,,
org_c,"Initech, Inc.",,,,,,,,2030-01-02,
org_d,Bad rate,ten,,,,,,,,
org_e,Bad tool,,,nope,,,,,,
org_a,Twice,,,,,,,,,
,,,,,,,,,,
,Nameless,,,,,,,,,
org_f,Elsewhere,,,,,,,,,` + other + `
org_a,Acme elsewhere,,,,,,,,,` + other + `
`
	file := writeInput(t, "tenants.csv", body)
	code, rep, errOut := importJSON(t, nil, file, "--config", path)
	if code != 1 {
		t.Fatalf("import with failing rows: exit %d, want 1\n%s", code, errOut)
	}
	if rep.Rows != 9 || rep.Created != 5 || rep.Failed != 4 || rep.Skipped != 0 || rep.Pending != 0 || rep.Interrupted {
		t.Fatalf("first run: %+v", rep)
	}
	for line, want := range map[int]string{
		5:  `rate_limit: "ten" is not a whole number`,
		6:  `allowed_tools: "nope" not served here`,
		7:  "the tenant is also on line 2",
		9:  "external_id: required",
		10: "", 11: "", 2: "", 3: "", 4: "",
	} {
		got, msg := rep.outcome(t, line)
		if want == "" && got != "created" || want != "" && (got != "failed" || !strings.Contains(msg, want)) {
			t.Errorf("line %d: %s %q, want %q", line, got, msg, want)
		}
	}
	// The rows that cannot be read are listed at once, before the first
	// create; the failure of a create is reported as it happens.
	// The list is the indented lines after its heading; the first line
	// that is not indented (a progress line or a failed create, in
	// whichever order the creates finish) ends it.
	_, rest, ok := strings.Cut(errOut, "3 rows cannot be imported:\n")
	var listed []string
	for line := range strings.Lines(rest) {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		listed = append(listed, line)
	}
	upFront := strings.Join(listed, "")
	if !ok || len(listed) != 3 {
		t.Fatalf("the rows that cannot be read are not listed before the creates:\n%s", errOut)
	}
	for _, want := range []string{`  line 5 (org_d): rate_limit: "ten" is not a whole number`, "  line 7 (org_a): the tenant is also on line 2", "  line 9: external_id: required"} {
		if !strings.Contains(upFront, want) {
			t.Errorf("not listed before the creates: %q\n%s", want, errOut)
		}
	}
	if !strings.Contains(errOut, "\nline 6 (org_e): invalid tenant: allowed_tools") {
		t.Errorf("the failed create is not reported as it happens:\n%s", errOut)
	}

	got := onceEach(t, registered(t, path, nil))
	mine := func(id string) registry.Tenant { return got[[2]string{tenantIssuer, id}] }
	if len(got) != 5 {
		t.Fatalf("registered %d tenants, want org_a, org_b, org_c and org_f, org_a of %s: %v", len(got), other, got)
	}
	if a := mine("org_a"); a.Name != "Acme" || a.RateLimit != 300 || a.RateBurst != 50 || !slices.Equal(a.AllowedTools, []string{"list_documents", "get_document"}) ||
		!reflect.DeepEqual(a.Flags, map[string]bool{"beta": true, "old": false}) || !reflect.DeepEqual(a.Config, map[string]string{"region": "eu", "tier": "gold"}) ||
		a.Status != registry.StatusActive {
		t.Errorf("org_a: %+v", a)
	}
	if b := mine("org_b"); b.Status != registry.StatusTrial || time.Until(b.TrialEndsAt) < 13*24*time.Hour {
		t.Errorf("org_b: %+v, want a 14-day trial", b)
	}
	if c := mine("org_c"); c.Name != "Initech, Inc." || c.Status != registry.StatusTrial || !c.TrialEndsAt.Equal(time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("org_c: %+v", c)
	}
	if f, a := got[[2]string{other, "org_f"}], got[[2]string{other, "org_a"}]; f.Name != "Elsewhere" || a.Name != "Acme elsewhere" {
		t.Errorf("the tenants of %s: %+v %+v", other, f, a)
	}

	// The second run, with line 5 fixed and org_b's name changed: org_d is
	// created, the rest skipped; org_b keeps its name, and the summary
	// says it differs.
	body = strings.Replace(body, "Bad rate,ten", "Bad rate,10", 1)
	body = strings.Replace(body, "org_b,Globex", "org_b,Globex Corp", 1)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, nil, "tenant", "import", file, "--config", path)
	if code != 1 || !strings.Contains(out, "9 rows: 1 created, 5 skipped (already registered), 3 failed") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "line 3 (org_b): name differs from the file and was not changed") || !strings.Contains(out, "'tenant update'") {
		t.Errorf("the summary does not say org_b differs:\n%s", out)
	}
	if !strings.Contains(errOut, "3 of 9 rows failed: fix them and re-run the same command") {
		t.Errorf("exit message: %s", errOut)
	}
	got = onceEach(t, registered(t, path, nil))
	if len(got) != 6 || mine("org_b").Name != "Globex" || mine("org_d").RateLimit != 10 {
		t.Errorf("after the second run: %d tenants, org_b %+v, org_d %+v", len(got), mine("org_b"), mine("org_d"))
	}
}

// TestTenantImportFileErrors: a file the import cannot read as a whole —
// an unknown column or field, a header without external_id, broken JSON —
// is refused with a message naming the problem, and nothing is created.
func TestTenantImportFileErrors(t *testing.T) {
	path := tenantConfig(t)
	for _, tc := range []struct{ name, body, want string }{
		{"unknown column", "external_id,name,rate_limt\norg_a,Acme,5\n", `CSV header (line 1): unknown column "rate_limt" (the columns are: issuer, external_id, name`},
		{"unknown columns", "external_id,plan,tier\norg_a,x,y\n", `unknown columns "plan", "tier"`},
		{"twice", "external_id,name,Name\norg_a,a,b\n", `column "name" appears twice`},
		{"no external_id", "name\nAcme\n", "no external_id column"},
		{"unnamed column", "external_id,,name\norg_a,x,y\n", "column 2 has no name"},
		{"empty", " \n", "the file is empty"},
		{"header only", "external_id,name\n", "no rows to import"},
		{"bad quote", "external_id,name\norg_a,Acme\norg_b,\"Glo\"bex\n", "line 3:"},
		{"unknown field", "[\n {\"external_id\": \"org_a\"},\n {\"external_id\": \"org_b\", \"rate_limt\": 5}\n]\n", `unknown fields: line 3: "rate_limt" (the fields are: issuer, external_id`},
		{"unknown field, lines", "{\"external_id\": \"org_a\"}\n{\"external_id\": \"org_b\", \"plan\": \"gold\"}\n", `unknown fields: line 2: "plan"`},
		{"broken array", "[\n {\"external_id\": \"org_a\"},\n {\"external_id\": \"org_b\",,}\n]\n", "line 3: invalid character ','"},
		{"unended array", "[\n {\"external_id\": \"org_a\"},\n", "the JSON array does not end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeInput(t, "tenants", tc.body)
			code, _, errOut := run(t, nil, "tenant", "import", file, "--config", path)
			if code != 1 || !strings.Contains(errOut, file+": ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want 1 saying %q:\n%s", code, tc.want, errOut)
			}
		})
	}
	if code, _, errOut := run(t, nil, "tenant", "import", filepath.Join(t.TempDir(), "missing.csv"), "--config", path); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d %s", code, errOut)
	}
	file := writeInput(t, "t.csv", "external_id\norg_a\n")
	for _, args := range [][]string{{"--progress", "fancy"}, {"--parallel", "0"}, {"second-file.csv"}} {
		if code, _, errOut := run(t, nil, append([]string{"tenant", "import", file, "--config", path}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if recs := registered(t, path, nil); len(recs) != 0 {
		t.Fatalf("a refused file created tenants: %+v", recs)
	}
}

// TestTenantImportJSON: a JSON array (its rows numbered by the line they
// start on) and JSON lines from standard input; a row of the wrong type
// fails alone; every TenantSpec field is a field of the import.
func TestTenantImportJSON(t *testing.T) {
	path := tenantConfig(t)
	array := writeInput(t, "tenants.json", `[
  {"external_id": "org_a", "name": "Acme", "allowed_tools": ["list_documents"],
   "flags": {"beta": true}, "config": {"region": "eu"}},
  {
    "external_id": "org_b",
    "rate_limit": "ten"
  },
  {"external_id": "org_c", "trial_ends_at": "2030-01-02"},
  {"external_id": "org_d", "status": "trial", "trial_ends_at": "2030-01-02T10:00:00Z"}
]`)
	code, rep, errOut := importJSON(t, nil, array, "--config", path)
	if code != 1 || rep.Created != 2 || rep.Failed != 2 {
		t.Fatalf("array: exit %d %+v\n%s", code, rep, errOut)
	}
	for line, want := range map[int]string{
		2: "",
		4: "rate_limit: want a whole number, not a JSON string",
		8: `trial_ends_at: "2030-01-02" is not RFC 3339`,
		9: "",
	} {
		got, msg := rep.outcome(t, line)
		if want == "" && got != "created" || want != "" && (got != "failed" || !strings.Contains(msg, want)) {
			t.Errorf("line %d: %s %q, want %q", line, got, msg, want)
		}
	}
	got := onceEach(t, registered(t, path, nil))
	if a := got[[2]string{tenantIssuer, "org_a"}]; a.Name != "Acme" || !slices.Equal(a.AllowedTools, []string{"list_documents"}) || !a.Flags["beta"] || a.Config["region"] != "eu" {
		t.Errorf("org_a: %+v", a)
	}

	// JSON lines on standard input: a broken line fails alone.
	stdin := writeInput(t, "tenants.jsonl", "{\"external_id\": \"org_e\"}\n\n{\"external_id\": \"org_f\"\n{\"external_id\": \"org_a\"}\n")
	f, err := os.Open(stdin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	code, rep, errOut = importJSON(t, nil, "-", "--config", path)
	os.Stdin = old
	if code != 1 || rep.Created != 1 || rep.Skipped != 1 || rep.Failed != 1 {
		t.Fatalf("JSON lines on stdin: exit %d %+v\n%s", code, rep, errOut)
	}
	if got, msg := rep.outcome(t, 3); got != "failed" || !strings.Contains(msg, "invalid JSON") {
		t.Errorf("line 3: %s %q", got, msg)
	}

	// Every field of admin.TenantSpec is accepted (the dry run reads and
	// plans only: the spec sets both trial fields, which a create refuses).
	var spec admin.TenantSpec
	v := reflect.ValueOf(&spec).Elem()
	filled := map[reflect.Kind]func(reflect.Value){
		reflect.String: func(f reflect.Value) { f.SetString("x") },
		reflect.Int:    func(f reflect.Value) { f.SetInt(1) },
		reflect.Slice:  func(f reflect.Value) { f.Set(reflect.ValueOf([]string{"list_documents"})) },
		reflect.Struct: func(f reflect.Value) { f.Set(reflect.ValueOf(time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC))) },
		reflect.Map: func(f reflect.Value) {
			f.Set(reflect.MakeMap(f.Type()))
			f.SetMapIndex(reflect.ValueOf("k"), reflect.New(f.Type().Elem()).Elem())
		},
	}
	for i := range v.NumField() {
		fill, ok := filled[v.Field(i).Kind()]
		if !ok {
			t.Fatalf("TenantSpec.%s: a field of a kind this test cannot fill", v.Type().Field(i).Name)
		}
		fill(v.Field(i))
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	every := writeInput(t, "every.jsonl", string(b)+"\n")
	code, rep, errOut = importJSON(t, nil, every, "--config", path, "--dry-run")
	if code != 0 || !rep.DryRun || rep.Pending != 1 || rep.Failed != 0 {
		t.Fatalf("every TenantSpec field %s: exit %d %+v\n%s", b, code, rep, errOut)
	}
	if _, ok := onceEach(t, registered(t, path, nil))[[2]string{"x", "x"}]; ok {
		t.Fatal("the dry run created the tenant")
	}
}

// cancelAt is stderr for an import that is interrupted (its context
// cancelled, as Ctrl-C does) once a progress line says at least k rows are
// done: no sleeps, and the point is known.
type cancelAt struct {
	syncBuffer
	k      int
	cancel func()
	mu     sync.Mutex
	at     int // the rows done when it cancelled
}

var doneRE = regexp.MustCompile(`(\d+)/\d+ rows done`)

func (c *cancelAt) Write(p []byte) (int, error) {
	if m := doneRE.FindSubmatch(p); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		c.mu.Lock()
		if n >= c.k && c.at == 0 {
			c.at = n
			c.cancel()
		}
		c.mu.Unlock()
	}
	return c.syncBuffer.Write(p)
}

// crashCreate creates a tenant whose provisioning stops before its last
// step, as a crash there would leave it: registered, status provisioning.
func crashCreate(t *testing.T, path, externalID string) {
	t.Helper()
	ctx := context.Background()
	crash := errors.New("crash")
	a := openDeployment(t, path, &app.Options{BeforeLifecycleStep: func(op, step string, _ tenant.ID) error {
		if step == "activate" {
			return crash
		}
		return nil
	}})
	defer a.Close()
	aud, flush, err := a.CommandAuditor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := a.AdminService(ctx, aud)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreateTenant(ctx, app.CLIPrincipal(), admin.TenantSpec{ExternalID: externalID}, ""); !errors.Is(err, crash) {
		t.Fatalf("create with a crash before activating: %v", err)
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Registry.Lookup(ctx, a.Issuer(), externalID)
	if err != nil || rec.Status != registry.StatusProvisioning {
		t.Fatalf("after the crash: %+v %v, want a tenant still provisioning", rec, err)
	}
}

// TestTenantImportResume: an import interrupted after k rows stops once
// the rows in flight finish, says how to continue, and the same command
// run again creates the rest: every tenant exists exactly once, the
// counts add up, and the audit trail holds one create event per tenant.
// A tenant whose provisioning a crash left unfinished is finished by the
// import, not skipped. On SQLite and on PostgreSQL (row-level security).
func TestTenantImportResume(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			var path string
			if backend == "sqlite" {
				path = tenantConfig(t)
			} else {
				d := newPGDeployment(t)
				path = d.config(t)
				if code, _, errOut := run(t, nil, "db", "setup", "--config", path, "--admin-dsn", d.dsn); code != 0 {
					t.Fatalf("db setup: %s", errOut)
				}
			}
			const total, k, parallel = 30, 10, 3
			var b strings.Builder
			b.WriteString("external_id,name\n")
			for i := range total {
				fmt.Fprintf(&b, "org_%02d,Tenant %d\n", i, i)
			}
			file := writeInput(t, "tenants.csv", b.String())
			args := []string{"tenant", "import", file, "--config", path, "--parallel", strconv.Itoa(parallel), "--json"}
			const crashed = "org_25"
			crashCreate(t, path, crashed)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out syncBuffer
			errb := &cancelAt{k: k, cancel: cancel}
			code := cli.Run(ctx, args, &out, errb, nil)
			var first importReport
			if err := json.Unmarshal([]byte(out.String()), &first); err != nil {
				t.Fatalf("interrupted run: exit %d, no report: %v\n%s\n%s", code, err, out.String(), errb.String())
			}
			// It stopped after the rows in flight: at most parallel-1 more
			// than were done when it was cancelled.
			if code != 1 || !first.Interrupted || first.Created < k || first.Created > errb.at+parallel-1 ||
				first.Created+first.Pending != total || first.Failed != 0 {
				t.Fatalf("interrupted at %d done: exit %d %+v\n%s", errb.at, code, first, errb.String())
			}
			if !strings.Contains(errb.String(), fmt.Sprintf("import interrupted with %d of %d rows not started: re-run the same command to continue", first.Pending, total)) {
				t.Errorf("the interruption does not say how to continue:\n%s", errb.String())
			}
			for _, o := range first.Outcomes {
				if (o.Outcome == "created") != (o.ID != "") || o.Outcome != "created" && o.Outcome != "pending" {
					t.Errorf("interrupted run, line %d: %+v", o.Line, o)
				}
			}

			code, second, errOut := importJSON(t, nil, args[2:]...)
			if code != 0 || second.Interrupted || second.Skipped != first.Created || second.Created != total-first.Created || second.Failed != 0 {
				t.Fatalf("resumed after %d: exit %d %+v\n%s", first.Created, code, second, errOut)
			}
			recs := registered(t, path, nil)
			if got := onceEach(t, recs); len(got) != total {
				t.Fatalf("%d tenants registered, want %d", len(got), total)
			}
			// One create per tenant: none repeated, none refused.
			events := createEvents(t, path)
			for _, r := range recs {
				want := []string{audit.OutcomeOK + " " + string(r.ID)}
				if r.ExternalID == crashed {
					want = append([]string{audit.OutcomeError + " "}, want...) // the crash
				}
				if r.Status != registry.StatusActive || !slices.Equal(events[r.ExternalID], want) {
					t.Errorf("tenant %s: %s, create events %q, want active and %q", r.ExternalID, r.Status, events[r.ExternalID], want)
				}
			}
			if len(events) != total {
				t.Errorf("create events for %d tenants, want %d: %v", len(events), total, events)
			}
		})
	}
}

// TestTenantImportProgress: --progress bar redraws one line in place and
// ends it; lines prints a line per tenth; off prints neither.
func TestTenantImportProgress(t *testing.T) {
	path := tenantConfig(t)
	var b strings.Builder
	b.WriteString("external_id\n")
	for i := range 20 {
		fmt.Fprintf(&b, "org_%02d\n", i)
	}
	file := writeInput(t, "tenants.csv", b.String())
	code, out, errOut := run(t, nil, "tenant", "import", file, "--config", path, "--progress", "bar")
	if code != 0 || !strings.Contains(errOut, "\r[========================] 20/20 100%") || !strings.HasSuffix(errOut, "0 failed\x1b[K\n") ||
		strings.Contains(errOut, "rows done") {
		t.Fatalf("bar: exit %d %q", code, errOut)
	}
	if !strings.Contains(out, "tenants.csv: 20 rows: 20 created, 0 skipped (already registered), 0 failed, in ") {
		t.Errorf("summary: %s", out)
	}
	// A re-run has nothing to create: no bar, and the plan says why.
	code, _, errOut = run(t, nil, "tenant", "import", file, "--config", path, "--progress", "lines")
	if code != 0 || !strings.Contains(errOut, "20 rows: 20 already registered (skipped), 0 to create") || strings.Contains(errOut, "rows done") {
		t.Fatalf("re-run: exit %d %q", code, errOut)
	}
	path = tenantConfig(t)
	code, _, errOut = run(t, nil, "tenant", "import", file, "--config", path, "--progress", "lines")
	if n := strings.Count(errOut, "rows done"); code != 0 || n < 10 || !strings.Contains(errOut, "20/20 rows done (100%), 0 failed") || strings.Contains(errOut, "\r") {
		t.Fatalf("lines: exit %d, %d lines %q", code, n, errOut)
	}
	path = tenantConfig(t)
	if code, _, errOut := run(t, nil, "tenant", "import", file, "--config", path, "--progress", "off"); code != 0 || errOut != "" {
		t.Fatalf("off: exit %d %q", code, errOut)
	}
}

// TestTenantImportHelpExamples: the example files of 'tenant import
// --help' import as they are written there.
func TestTenantImportHelpExamples(t *testing.T) {
	code, help, _ := run(t, nil, "tenant", "import", "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, name := range []string{"tenants.csv", "tenants.jsonl"} {
		_, after, ok := strings.Cut(help, "\n  "+name+":\n")
		if !ok {
			t.Fatalf("--help has no example %s:\n%s", name, help)
		}
		var body strings.Builder
		for _, line := range strings.Split(after, "\n") {
			if !strings.HasPrefix(line, "    ") {
				break
			}
			body.WriteString(strings.TrimPrefix(line, "    ") + "\n")
		}
		file := writeInput(t, name, body.String())
		path := tenantConfig(t)
		if code, rep, errOut := importJSON(t, nil, file, "--config", path); code != 0 || rep.Created != 2 {
			t.Errorf("the example %s of --help: exit %d %+v\n%s\n%s", name, code, rep, body.String(), errOut)
		}
	}
}
