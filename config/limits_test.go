package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/server"
)

const limitsBase = "[auth]\ndomain = \"example.auth0.com\"\n"

// TestLimitDefaults: the limits against abuse are on by default, with the
// server package's defaults, and 0 turns off the ones that can be off.
func TestLimitDefaults(t *testing.T) {
	cfg, err := Parse([]byte(limitsBase), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	got := []int64{int64(s.MaxHeaderBytes), int64(s.MaxJSONDepth), s.MaxArgumentBytes, int64(s.MaxConcurrentRequests), int64(s.MaxConcurrentAdminRequests), int64(s.MaxConnsPerClient), int64(cfg.RateLimit.MaxConcurrentPerTenant)}
	want := []int64{server.DefaultMaxHeaderBytes, server.DefaultMaxJSONDepth, server.DefaultMaxArgumentBytes, server.DefaultMaxConcurrentRequests, server.DefaultMaxConcurrentAdminRequests, server.DefaultMaxConnsPerClient, DefaultMaxConcurrentPerTenant}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("defaults %v, want %v", got, want)
			break
		}
	}
	cfg, err = Parse([]byte(limitsBase+"[server]\nmax_concurrent_requests = 0\nmax_concurrent_admin_requests = 0\nmax_conns_per_client = 0\n"), nil)
	if err != nil {
		t.Fatalf("0 (off): %v", err)
	}
	if cfg.Server.MaxConcurrentRequests != 0 || cfg.Server.MaxConcurrentAdminRequests != 0 || cfg.Server.MaxConnsPerClient != 0 {
		t.Fatalf("0 not kept: %+v", cfg.Server)
	}
}

// TestArgumentLimitFollowsBody: left unset, max_argument_bytes is lowered
// to a smaller max_body_bytes; set above it, it is an error naming both.
func TestArgumentLimitFollowsBody(t *testing.T) {
	cfg, err := Parse([]byte(limitsBase+"[server]\nmax_body_bytes = 4096\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.MaxArgumentBytes != 4096 {
		t.Fatalf("max_argument_bytes = %d, want 4096 (the body limit)", cfg.Server.MaxArgumentBytes)
	}
	cfg, err = Parse([]byte(limitsBase+"[server]\nmax_body_bytes = 4096\n"), []string{"TENANTMCP_SERVER_MAX_ARGUMENT_BYTES=1000"})
	if err != nil || cfg.Server.MaxArgumentBytes != 1000 {
		t.Fatalf("explicit 1000: %v %v", cfg, err)
	}
	_, err = Parse([]byte(limitsBase+"[server]\nmax_body_bytes = 4096\nmax_argument_bytes = 8192\n"), nil)
	wantErrors(t, err, `server.max_argument_bytes: must be at most server.max_body_bytes (4096), not 8192`)
}

func TestLimitValidation(t *testing.T) {
	for _, tt := range []struct {
		name, toml string
		want       []string
	}{
		{"too small", "[server]\nmax_header_bytes = 100\nmax_json_depth = 2\nmax_argument_bytes = 0\n", []string{
			`server.max_header_bytes: must be between 4096 (a bearer token and the MCP headers need a few KiB) and 16777216, not 100`,
			`server.max_json_depth: must be between 8 (MCP messages themselves nest 3 to 4 levels) and 10000 (the JSON decoder's own limit), not 2`,
			`server.max_argument_bytes: must be more than 0, not 0`,
		}},
		{"too large", "[server]\nmax_header_bytes = 100000000\nmax_json_depth = 20000\n", []string{
			`server.max_header_bytes: must be between 4096`,
			`server.max_json_depth: must be between 8`,
		}},
		{"negative", "[server]\nmax_concurrent_requests = -1\nmax_concurrent_admin_requests = -1\nmax_conns_per_client = -1\n", []string{
			`server.max_concurrent_requests: must be 0 or more, not -1`,
			`server.max_concurrent_admin_requests: must be 0 or more, not -1`,
			`server.max_conns_per_client: must be 0 or more, not -1`,
		}},
		{"tenant cap not below the replica's", "[server]\nmax_concurrent_requests = 100\n[ratelimit]\nmax_concurrent_per_tenant = 100\n", []string{
			`ratelimit.max_concurrent_per_tenant: must be less than server.max_concurrent_requests (100), not 100: one tenant could hold every request slot of a replica`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(limitsBase+tt.toml), nil)
			wantErrors(t, err, tt.want...)
		})
	}
	// Either cap off: no relation to check.
	for _, toml := range []string{
		"[server]\nmax_concurrent_requests = 0\n[ratelimit]\nmax_concurrent_per_tenant = 1000\n",
		"[ratelimit]\nmax_concurrent_per_tenant = 0\n",
	} {
		if _, err := Parse([]byte(limitsBase+toml), nil); err != nil {
			t.Errorf("%q: %v", toml, err)
		}
	}
}

// wantErrors checks that err is a configuration error with exactly the
// wanted problems (each matched as a prefix, in any order).
func wantErrors(t *testing.T, err error, want ...string) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v, want configuration errors %q", err, want)
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), err)
	}
	for _, w := range want {
		found := false
		for _, e := range es {
			found = found || strings.HasPrefix(e.Key+": "+e.Msg, w)
		}
		if !found {
			t.Errorf("no error %q in:\n%v", w, err)
		}
	}
}
