package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// TestHistoryThroughServer: the history counts each tenant's served and
// refused requests, by the metrics' reason names, and nothing of another
// tenant's or of requests refused before a tenant was known.
func TestHistoryThroughServer(t *testing.T) {
	lim := ratelimit.NewMemory(nil)
	t.Cleanup(func() { lim.Close() })
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Limiter = lim
		o.DefaultLimit = ratelimit.Limit{PerMinute: 600, Burst: 100}
	}})
	noisy := f.addTenant(t, "noisy", func(r *registry.Tenant) { r.RateLimit, r.RateBurst = 60, 2 })
	quiet := f.addTenant(t, "quiet", nil)
	idle := f.addTenant(t, "idle", nil)
	noisyTok := "Bearer " + f.genericToken("noisy", "u")
	for range 5 {
		rawPost(t, f.url, noisyTok, "")
	}
	for range 3 {
		if resp, body := rawPost(t, f.url, "Bearer "+f.genericToken("quiet", "u"), ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("quiet: %d %s", resp.StatusCode, body)
		}
	}
	rawPost(t, f.url, "Bearer "+f.genericToken("nobody", "u"), "") // unknown tenant
	rawPost(t, f.url, "", "")                                      // no token

	since := time.Now().Add(-time.Hour)
	sn := f.srv.History(noisy.ID, since)
	if sn.Total.Requests != 5 || sn.Total.Refused != 3 || sn.Total.Refusals["rate_limited_tenant"] != 3 {
		t.Errorf("noisy: %+v", sn.Total)
	}
	if strings.Join(sn.Reasons, ",") != "rate_limited_tenant" {
		t.Errorf("noisy reasons: %v", sn.Reasons)
	}
	if sn.Total.P50 <= 0 || sn.Total.P99 < sn.Total.P50 {
		t.Errorf("noisy latency: p50 %v p99 %v", sn.Total.P50, sn.Total.P99)
	}
	sq := f.srv.History(quiet.ID, since)
	if sq.Total.Requests != 3 || sq.Total.Refused != 0 || len(sq.Reasons) != 0 {
		t.Errorf("quiet sees noisy's traffic: %+v", sq.Total)
	}
	if si := f.srv.History(idle.ID, since); si.Total.Requests != 0 {
		t.Errorf("idle: %+v", si.Total)
	}
	sum := f.srv.HistorySummary(noisy.ID, 24)
	if sum.TotalRequests != 5 || sum.TotalRefused != 3 || sum.Requests[23] != 5 {
		t.Errorf("noisy summary: %+v", sum)
	}
	if m := f.metrics(t); !strings.Contains(m, "tenantmcp_history_tenants 2") || !strings.Contains(m, "tenantmcp_history_tenants_dropped_total 0") {
		t.Errorf("history metrics missing:\n%s", grepLines(m, "tenantmcp_history"))
	}
}

// TestHistoryTenantsBound: with HistoryTenants 2, a third tenant's
// requests drop the least recently active one, counted in the metrics.
func TestHistoryTenantsBound(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) { o.HistoryTenants = 2 }})
	var recs []*registry.Tenant
	for _, org := range []string{"a", "b", "c"} {
		recs = append(recs, f.addTenant(t, org, nil))
		rawPost(t, f.url, "Bearer "+f.genericToken(org, "u"), "")
	}
	if got := f.srv.History(recs[0].ID, time.Time{}).Total.Requests; got != 0 {
		t.Errorf("the first tenant is still tracked: %d requests", got)
	}
	for _, r := range recs[1:] {
		if got := f.srv.History(r.ID, time.Time{}).Total.Requests; got != 1 {
			t.Errorf("%s: %d requests, want 1", r.ExternalID, got)
		}
	}
	if m := f.metrics(t); !strings.Contains(m, "tenantmcp_history_tenants 2") || !strings.Contains(m, "tenantmcp_history_tenants_dropped_total 1") {
		t.Errorf("history metrics:\n%s", grepLines(m, "tenantmcp_history"))
	}
	if _, err := server.New(server.Options{ResourceURL: f.url, Registry: f.reg, Verifier: f.verifier, HistoryTenants: -1}); err == nil || !strings.Contains(err.Error(), "HistoryTenants") {
		t.Errorf("negative HistoryTenants: %v", err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
