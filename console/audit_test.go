package console_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
)

// record writes events into tenant i's chain and waits until they are
// stored.
func (f *fixture) record(t *testing.T, i int, evs ...audit.Event) {
	t.Helper()
	rec := f.h.Tenant(i).Record
	for _, e := range evs {
		e.Tenant, e.ExternalID, e.Issuer = string(rec.ID), rec.ExternalID, rec.Issuer
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if err := f.w.Record(context.Background(), &e); err != nil {
			t.Fatal(err)
		}
	}
	f.chain(t, string(rec.ID)) // flushes
}

var rowRE = regexp.MustCompile(`<tr>\s*<td class="num">(\d+)</td>`)

// seqs are the event numbers a viewer page lists.
func seqs(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestAuditViewer(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	zero, one := f.tenant(t, 0), f.tenant(t, 1)
	f.record(t, 0,
		audit.Event{Kind: audit.KindToolCall, Method: "tools/call", Tool: "search_docs", User: "ann", Outcome: audit.OutcomeOK, RequestID: "req-ann"},
		audit.Event{Kind: audit.KindToolCall, Method: "tools/call", Tool: "put_doc", User: "ben", Outcome: audit.OutcomeError, ErrorClass: "tool_error", RequestID: "req-ben"},
		audit.Event{Kind: audit.KindToolCall, Method: "tools/call", Tool: "put_doc", User: "ann", Outcome: audit.OutcomeOK, RequestID: "req-imp",
			Actor: &audit.Actor{Sub: "root-admin", Issuer: "https://admin.example/"}, Detail: map[string]string{"impersonation_id": "imp_42"}},
	)
	f.record(t, 1, audit.Event{Kind: audit.KindToolCall, Method: "tools/call", Tool: "put_doc", User: "zed", Outcome: audit.OutcomeOK, RequestID: "req-zed"})
	b := f.admin(t)

	resp, body := b.get("/console/audit?tenant=" + url.QueryEscape(zero.ExternalID))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("viewer: %d\n%s", resp.StatusCode, body)
	}
	wantContains(t, body, "req-ann", "req-ben", "req-imp", "impersonated by</strong> <code>root-admin</code>", "impersonation_id=imp_42",
		"Not verified since the console started.", zero.ExternalID)
	wantNot(t, body, "req-zed", "zed", one.ExternalID) // tenant 1's trail

	for _, c := range []struct {
		query     string
		want, not []string
	}{
		{"&user=ann", []string{"req-ann", "req-imp"}, []string{"req-ben"}},
		{"&tool=put_doc", []string{"req-ben", "req-imp"}, []string{"req-ann", "req-zed"}},
		{"&outcome=error", []string{"req-ben"}, []string{"req-ann", "req-imp"}},
		{"&since=" + time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04"), []string{"No events match."}, []string{"req-ann"}},
		{"&until=" + time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04"), []string{"req-ann"}, nil},
	} {
		_, body := b.get("/console/audit?tenant=" + string(zero.ID) + c.query)
		wantContains(t, body, c.want...)
		wantNot(t, body, c.not...)
	}
	resp, body = b.get("/console/audit?tenant=" + string(zero.ID) + "&since=yesterday&outcome=maybe")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad filter: %d", resp.StatusCode)
	}
	wantContains(t, unescape(body), `from: "yesterday" is not a time`, `outcome: "maybe" is not ok, error or refused`)
	resp, body = b.get("/console/audit?tenant=nobody-at-all")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(unescape(body), `no tenant has the id or external id "nobody-at-all"`) {
		t.Errorf("unknown tenant: %d", resp.StatusCode)
	}
	// The system chain: refusals before a tenant is known.
	f.mcpStatus(t, "not-a-token")
	f.chain(t, audit.SystemChain)
	_, body = b.get("/console/audit?tenant=system")
	wantContains(t, body, "System chain", "refusal", "invalid_token")
	wantNot(t, body, "req-ann")
}

func TestAuditViewerPages(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	var evs []audit.Event
	for i := range 60 {
		evs = append(evs, audit.Event{Kind: audit.KindRequest, Method: "tools/list", User: fmt.Sprintf("u%02d", i), Outcome: audit.OutcomeOK})
	}
	f.record(t, 0, evs...)
	id := string(f.tenant(t, 0).ID)
	head := len(f.chain(t, id))
	b := f.admin(t)
	_, body := b.get("/console/audit?tenant=" + id)
	first := seqs(body)
	if len(first) != 50 || first[0] != fmt.Sprint(head) {
		t.Fatalf("first page: %d events from %v, want 50 from %d", len(first), first[:min(1, len(first))], head)
	}
	m := regexp.MustCompile(`href="/console/audit\?([^"]+)">Older events`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link to older events:\n%s", body)
	}
	_, body = b.get("/console/audit?" + unescape(m[1]))
	second := seqs(body)
	if len(second) != head-50 || second[0] != fmt.Sprint(head-50) || second[len(second)-1] != "1" {
		t.Errorf("second page: %v, want %d down to 1", second, head-50)
	}
	if strings.Contains(body, "Older events") {
		t.Error("the last page links to older events")
	}
}

func TestAuditVerifyAndExport(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	f.calls(t, 0, 3)
	f.calls(t, 1, 2)
	zero, one := f.tenant(t, 0), f.tenant(t, 1)
	f.chain(t, string(zero.ID))
	b := f.admin(t)

	// Without the CSRF token nothing is verified.
	resp, _ := b.post("/console/audit/verify", url.Values{"tenant": {string(zero.ID)}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("verify without csrf: %d", resp.StatusCode)
	}
	_, body := b.get("/console/audit?tenant=" + string(zero.ID))
	wantContains(t, body, "Not verified since the console started.")

	tok := b.csrf("/console/audit?tenant=" + string(zero.ID))
	resp, body = b.post("/console/audit/verify", url.Values{"tenant": {string(zero.ID)}, "csrf": {tok}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/audit" {
		t.Fatalf("verify: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	wantContains(t, body, `class="flash flash-ok"`, "OK: ", "events and 0 signed checkpoints verified")
	if !regexp.MustCompile(`not checkpointed yet|None of its \d+ events is covered`).MatchString(body) {
		t.Errorf("unsigned events not reported:\n%s", body)
	}
	_, body = b.get("/console/audit?tenant=" + string(one.ID))
	wantContains(t, body, "Not verified since the console started.") // tenant 1's chain was not verified

	// The export is the CLI's format and verifies offline; it holds
	// tenant 0's events only.
	before := len(f.chain(t, string(zero.ID)))
	resp, body = b.get("/console/audit/export?tenant=" + url.QueryEscape(zero.ExternalID))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="audit-`+string(zero.ID)+`.jsonl"` {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	rep, err := audit.VerifyExport(strings.NewReader(body), auditKey.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() || rep.Chain != string(zero.ID) || rep.Events < uint64(before) {
		t.Fatalf("export does not verify: %v %+v", err, rep)
	}
	wantNot(t, body, string(one.ID), one.ExternalID)
	resp, body = b.get("/console/audit/export?tenant=" + string(zero.ID) + "&since=nonsense")
	if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("export with a bad time: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestAuditViewerImpersonation: a request made with an impersonation
// credential started in the console shows in the tenant's trail with both
// identities: the impersonated user and the admin acting.
func TestAuditViewerImpersonation(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	b := f.admin(t)
	zero, one := f.tenant(t, 0), f.tenant(t, 1)
	tok := b.csrf("/console/impersonation")
	_, body := b.post("/console/impersonation", url.Values{"tenant": {string(zero.ID)}, "reason": {"ticket 7"}, "csrf": {tok}})
	m := secretRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no credential:\n%s", body)
	}
	if st := f.mcpStatus(t, m[1]); st != http.StatusOK {
		t.Fatalf("impersonated request: %d", st)
	}
	f.chain(t, string(zero.ID)) // flushed
	_, body = b.get("/console/audit?tenant=" + string(zero.ID) + "&outcome=ok")
	if !regexp.MustCompile(`<code>impersonator:[^<]+</code><br><strong>impersonated by</strong> <code>alice</code>`).MatchString(body) {
		t.Errorf("the impersonated request does not show both identities:\n%s", body)
	}
	wantContains(t, body, "impersonation_id=")
	_, body = b.get("/console/audit?tenant=" + string(one.ID))
	wantNot(t, body, "impersonated by")
}
