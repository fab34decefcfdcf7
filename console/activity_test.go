package console_test

import (
	"context"
	"crypto/ed25519"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/console"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// jobSources are the lifecycle managers withData gave each fixture's
// jobs page, for tests that compute the progress it should show.
var jobSources sync.Map // *fixture → *lifecycle.Manager (a console.JobSource)

// withData adds the data pages' sources to the console's options when
// so.data is set: the server's metrics history (charts, sparklines), the
// audit store (viewer) and a lifecycle manager (jobs).
func (so setupOptions) withData(t *testing.T, f *fixture, o *server.Options, opts console.Options) console.Options {
	t.Helper()
	if !so.data {
		return opts
	}
	opts.Charts = console.LateHistory(func() console.ChartSource { return f.h.Server })
	opts.Activity = console.NewActivity(opts.Charts)
	opts.Audit = console.NewAuditSource(f.events, auditKey.Public().(ed25519.PublicKey))
	m := f.lifecycle(t, o.Stores)
	jobSources.Store(f, m)
	opts.Jobs = m
	return opts
}

// svgs returns the <svg> elements of a page, each checked to be
// well-formed XML.
func svgs(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for rest := body; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			return out
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatalf("unterminated svg in:\n%s", body)
		}
		s := rest[i : i+j+len("</svg>")]
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			if _, err := d.Token(); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("svg is not well-formed XML: %v\n%s", err, s)
			}
		}
		out = append(out, s)
		rest = rest[i+j:]
	}
}

// calls makes n tools/list requests as tenant i and waits until the
// history has them.
func (f *fixture) calls(t *testing.T, i, n int) {
	t.Helper()
	for range n {
		if st := f.mcpStatus(t, f.h.Tenant(i).Token); st != http.StatusOK {
			t.Fatalf("tenant %d: tools/list %d", i, st)
		}
	}
}

// historyTotal is tenant i's requests in the server's history.
func (f *fixture) historyTotal(i int) uint64 {
	return f.h.Server.History(f.h.Tenant(i).Record.ID, time.Time{}).Total.Requests
}

// TestSparklines: the tenants page draws each tenant's own last 24 hours.
func TestSparklines(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	f.calls(t, 0, 7)
	b := f.admin(t)
	_, body := b.get("/console/tenants")
	sp := svgs(t, body)
	if len(sp) != 2 {
		t.Fatalf("%d sparklines, want one per tenant:\n%s", len(sp), body)
	}
	for i := range 2 {
		want := strconv.FormatUint(f.historyTotal(i), 10) + " requests, 0 refused in the last 24 hours"
		if !strings.Contains(body, want) {
			t.Errorf("tenant %d: no sparkline %q", i, want)
		}
	}
	if f.historyTotal(0) < f.historyTotal(1)+7 {
		t.Errorf("tenant 0 has %d requests, tenant 1 %d: tenant 0's 7 calls are missing", f.historyTotal(0), f.historyTotal(1))
	}
}

// TestChartsPage: a tenant's charts show its own requests, refusals by
// reason and latency, as SVG with titles and a table; never another
// tenant's.
func TestChartsPage(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	one := f.tenant(t, 1)
	f.calls(t, 0, 5)
	if _, err := f.reg.Update(context.Background(), one.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusSuspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if st := f.mcpStatus(t, f.h.Tenant(1).Token); st != http.StatusForbidden {
			t.Fatalf("suspended tenant: %d", st)
		}
	}
	b := f.admin(t)
	zero := f.tenant(t, 0)
	_, body := b.get("/console/charts/" + string(zero.ID))
	charts := svgs(t, body)
	if len(charts) != 3 {
		t.Fatalf("%d charts, want 3:\n%s", len(charts), body)
	}
	for _, title := range []string{"Requests of ", "Refusals of ", "Latency of "} {
		if !strings.Contains(body, `-title">`+title) {
			t.Errorf("no chart titled %q", title)
		}
	}
	wantContains(t, body, "time (UTC, 5 min steps)", "requests per step", "latency (ms)", "<caption", zero.ExternalID)
	total := f.historyTotal(0)
	if !regexp.MustCompile(`<dt>Requests</dt><dd>` + strconv.FormatUint(total, 10) + `</dd>`).MatchString(body) {
		t.Errorf("page total is not tenant 0's %d:\n%s", total, body)
	}
	wantNot(t, body, "suspended</th>", one.ExternalID, string(one.ID))

	_, body = b.get("/console/charts/" + string(one.ID) + "?range=1h")
	svgs(t, body)
	wantContains(t, body, `<th scope="col" class="num">suspended</th>`, "suspended 3;", `aria-current="page">Last 1h`)
	wantNot(t, body, zero.ExternalID)

	resp, _ := b.get("/console/charts/t0000000000000000000000000")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown tenant's charts: %d", resp.StatusCode)
	}
}

// TestChartsIndex: recently active tenants are listed; the form finds a
// tenant by external id or says it found none.
func TestChartsIndex(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	f.calls(t, 1, 1)
	b := f.admin(t)
	_, body := b.get("/console/charts")
	one := f.tenant(t, 1)
	wantContains(t, body, "/console/charts/"+string(one.ID), "Recently active tenants")
	if n := len(svgs(t, body)); n != 2 {
		t.Errorf("%d sparklines, want 2", n)
	}
	resp, _ := b.get("/console/charts?tenant=" + one.ExternalID)
	if resp.Request.URL.Path != "/console/charts/"+string(one.ID) {
		t.Errorf("search by external id ended at %s", resp.Request.URL)
	}
	resp, body = b.get("/console/charts?tenant=test-tenant")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(unescape(body), `no tenant has the id or external id "test-tenant"`) {
		t.Errorf("partial external id: %d\n%s", resp.StatusCode, body)
	}
	wantContains(t, body, "/console/charts/"+string(one.ID)) // offered as a candidate
}

// TestDataPagesRefuseTenantUsers: a signed-in user without admin rights
// gets nothing of the data pages, and cannot verify or export.
func TestDataPagesRefuseTenantUsers(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	f.calls(t, 0, 2)
	id := string(f.tenant(t, 0).ID)
	b, _, _ := f.signIn(t, "bob", "read:tools")
	for _, p := range []string{"/console/charts/" + id, "/console/charts?tenant=" + id, "/console/audit?tenant=" + id,
		"/console/audit/export?tenant=" + id, "/console/jobs"} {
		resp, body := b.get(p)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "No admin access") {
			t.Errorf("tenant user GET %s: %d", p, resp.StatusCode)
		}
		wantNot(t, body, "<svg", "test-tenant-", `"type":"header"`, id)
	}
	tok := b.csrf("/console/tenants")
	resp, body := b.post("/console/audit/verify", map[string][]string{"tenant": {id}, "csrf": {tok}})
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "verified") {
		t.Errorf("tenant user POST verify: %d", resp.StatusCode)
	}
	// No session at all: the sign-in, not the data.
	anon := f.browser(t)
	anon.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ = anon.get("/console/audit/export?tenant=" + id)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Errorf("export without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
