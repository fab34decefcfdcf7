package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func valid() registry.Tenant {
	return registry.Tenant{Issuer: iss, ExternalID: "org_1", Status: registry.StatusActive}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*registry.Tenant)
		want []string // fields named, in order; nil = valid
	}{
		{name: "minimal", mod: func(*registry.Tenant) {}},
		{name: "hostile but valid external ids", mod: func(r *registry.Tenant) { r.ExternalID = "a/b' OR 1=1 -- ../ü %_" }},
		{name: "max external id", mod: func(r *registry.Tenant) { r.ExternalID = strings.Repeat("x", 256) }},
		{name: "external id too long", mod: func(r *registry.Tenant) { r.ExternalID = strings.Repeat("x", 257) }, want: []string{"external_id"}},
		{name: "empty external id", mod: func(r *registry.Tenant) { r.ExternalID = "" }, want: []string{"external_id"}},
		{name: "NUL in external id", mod: func(r *registry.Tenant) { r.ExternalID = "a\x00" }, want: []string{"external_id"}},
		{name: "DEL in external id", mod: func(r *registry.Tenant) { r.ExternalID = "a\x7f" }, want: []string{"external_id"}},
		{name: "C1 control in external id", mod: func(r *registry.Tenant) { r.ExternalID = "a\u0085" }, want: []string{"external_id"}},
		{name: "invalid UTF-8 external id", mod: func(r *registry.Tenant) { r.ExternalID = "\xc3" }, want: []string{"external_id"}},
		{name: "empty issuer", mod: func(r *registry.Tenant) { r.Issuer = "" }, want: []string{"issuer"}},
		{name: "bad id", mod: func(r *registry.Tenant) { r.ID = "acme" }, want: []string{"id"}},
		{name: "good id", mod: func(r *registry.Tenant) { r.ID = tenant.NewID() }},
		{name: "name 200 characters", mod: func(r *registry.Tenant) { r.Name = strings.Repeat("é", 200) }},
		{name: "name 201 characters", mod: func(r *registry.Tenant) { r.Name = strings.Repeat("é", 201) }, want: []string{"name"}},
		{name: "name with newline", mod: func(r *registry.Tenant) { r.Name = "a\nb" }, want: []string{"name"}},
		{name: "empty status", mod: func(r *registry.Tenant) { r.Status = "" }, want: []string{"status"}},
		{name: "unknown status", mod: func(r *registry.Tenant) { r.Status = "Active" }, want: []string{"status"}},
		{name: "trial without end", mod: func(r *registry.Tenant) { r.Status = registry.StatusTrial }, want: []string{"trial_ends_at"}},
		{name: "trial with end", mod: func(r *registry.Tenant) { r.Status, r.TrialEndsAt = registry.StatusTrial, epoch }},
		{name: "negative limits", mod: func(r *registry.Tenant) { r.RateLimit, r.RateBurst = -1, -1 }, want: []string{"rate_limit", "rate_burst"}},
		{name: "tool names", mod: func(r *registry.Tenant) {
			r.AllowedTools = []string{"a.b-c_D9", "", "a/b", strings.Repeat("t", 128), strings.Repeat("t", 129), "ü"}
		}, want: []string{"allowed_tools[1]", "allowed_tools[2]", "allowed_tools[4]", "allowed_tools[5]"}},
		{name: "flag and config keys", mod: func(r *registry.Tenant) {
			r.Flags = map[string]bool{"": true, "ok": true}
			r.Config = map[string]string{strings.Repeat("k", 128): "", strings.Repeat("k", 129): "", "x\ty": ""}
		}, want: []string{"flags", "config", "config"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := valid()
			tc.mod(&r)
			err := r.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ve *registry.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != len(tc.want) {
				t.Fatalf("problems = %q, want %d naming %q", ve.Problems, len(tc.want), tc.want)
			}
			for i, field := range tc.want {
				if !strings.HasPrefix(ve.Problems[i], field+":") && !strings.HasPrefix(ve.Problems[i], field+" ") {
					t.Errorf("problem %d = %q, want it to name %s", i, ve.Problems[i], field)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 10, 1, 9, 30, 0, 0, time.FixedZone("X", 3*3600))
	tests := []struct {
		status  registry.Status
		end     time.Time
		want    error
		wantMsg string
	}{
		{status: registry.StatusActive},
		{status: registry.StatusActive, end: now.Add(-time.Hour)}, // a past trial end does not matter once active
		{status: registry.StatusSuspended, want: registry.ErrSuspended},
		{status: registry.StatusTrial, end: now.Add(time.Nanosecond)},
		{status: registry.StatusTrial, end: now, want: registry.ErrTrialExpired},
		{status: registry.StatusTrial, end: end, want: registry.ErrTrialExpired, wantMsg: "tenant's trial ended on 2026-10-01"},
		{status: registry.StatusTrial, want: registry.ErrTrialExpired}, // no end date: fail closed
		{status: registry.StatusProvisioning, want: registry.ErrProvisioning},
		{status: registry.StatusArchived, want: registry.ErrArchived},
		{status: registry.StatusPurged, want: registry.ErrArchived},
		{status: "deleted", want: registry.ErrSuspended}, // unknown status: fail closed
	}
	for _, tc := range tests {
		rec := registry.Tenant{Status: tc.status, TrialEndsAt: tc.end}
		err := rec.Check(now)
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s (end %v): Check = %v, want %v", tc.status, tc.end, err, tc.want)
		}
		if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
			t.Errorf("%s: message %v does not contain %q", tc.status, err, tc.wantMsg)
		}
	}
}

func TestClone(t *testing.T) {
	t.Parallel()
	a := &registry.Tenant{AllowedTools: []string{"x"}, Flags: map[string]bool{"f": true}, Config: map[string]string{"k": "v"}}
	b := a.Clone()
	b.AllowedTools[0], b.Flags["f"], b.Config["k"] = "y", false, "w"
	if a.AllowedTools[0] != "x" || !a.Flags["f"] || a.Config["k"] != "v" {
		t.Errorf("Clone shares state with the original: %+v", a)
	}
}

// FuzzResolve checks that whatever a token claims, Resolve answers with the
// record registered under exactly that issuer and external id, or with
// ErrUnknownTenant, and never with another tenant.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"org_a", "org_A", "org_a ", "org_a\x00", "a/b", "' OR 1=1 --", "org_ü", "org_u\u0308", ""} {
		f.Add(iss, s)
	}
	f.Add("https://other.example.com/", "org_a")
	reg := registry.New(registry.NewMemoryStore(), &registry.Options{MaxEntries: 100})
	ctx := context.Background()
	registered := map[string]tenant.ID{}
	for _, ext := range []string{"org_a", "a/b", "org_ü", "tenant-a", "tenanta"} {
		rec, err := reg.Add(ctx, registry.Tenant{Issuer: iss, ExternalID: ext})
		if err != nil {
			f.Fatal(err)
		}
		registered[ext] = rec.ID
	}
	f.Fuzz(func(t *testing.T, issuer, ext string) {
		got, err := reg.Resolve(ctx, issuer, ext)
		id, ok := registered[ext]
		if issuer != iss {
			ok = false
		}
		switch {
		case ok && (err != nil || got.ID != id):
			t.Fatalf("Resolve(%q, %q) = %v, %v; want %s", issuer, ext, got, err, id)
		case !ok && (!errors.Is(err, registry.ErrUnknownTenant) || got != nil):
			t.Fatalf("Resolve(%q, %q) = %v, %v; want ErrUnknownTenant", issuer, ext, got, err)
		}
		r := registry.Tenant{Issuer: iss, ExternalID: ext, Status: registry.StatusActive}
		if r.Validate() == nil && (!utf8.ValidString(ext) || len(ext) > registry.MaxExternalIDLen || ext == "" || strings.ContainsAny(ext, "\x00\n\r\t")) {
			t.Fatalf("Validate accepted external id %q", ext)
		}
	})
}

func TestTransition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from, to registry.Status
		ok       bool
	}{
		{registry.StatusProvisioning, registry.StatusActive, true},
		{registry.StatusProvisioning, registry.StatusSuspended, false},
		{registry.StatusActive, registry.StatusSuspended, true},
		{registry.StatusSuspended, registry.StatusArchived, true},
		{registry.StatusArchived, registry.StatusPurged, true},
		{registry.StatusActive, registry.StatusPurged, false}, // purge only what is archived
		{registry.StatusPurged, registry.StatusArchived, false},
		{registry.StatusActive, registry.StatusProvisioning, false},
		{registry.StatusTrial, registry.StatusTrial, true},
	} {
		err := registry.Transition(tc.from, tc.to)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Transition(%s, %s) = %v, want ok=%v", tc.from, tc.to, err, tc.ok)
		}
	}
}
