package ratelimit

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		d      Decision
		policy string
		want   http.Header
	}{
		{
			name:   "allowed",
			d:      Decision{Allowed: true, Limit: Limit{100, 16}, Remaining: 15, ResetAfter: 600 * time.Millisecond},
			policy: "tenant",
			want: http.Header{
				"Ratelimit-Policy": {`"tenant";q=100;w=60`},
				"Ratelimit":        {`"tenant";r=15;t=1`},
			},
		},
		{
			name:   "refused",
			d:      Decision{Allowed: false, Limit: Limit{100, 16}, RetryAfter: 600 * time.Millisecond, ResetAfter: 9600 * time.Millisecond},
			policy: "tenant",
			want: http.Header{
				"Ratelimit-Policy": {`"tenant";q=100;w=60`},
				"Ratelimit":        {`"tenant";r=0;t=10`},
				"Retry-After":      {"1"},
			},
		},
		{
			name:   "refused, whole seconds stay whole",
			d:      Decision{Allowed: false, Limit: Limit{7, 1}, RetryAfter: 3 * time.Second, ResetAfter: 3 * time.Second},
			policy: "user",
			want: http.Header{
				"Ratelimit-Policy": {`"user";q=7;w=60`},
				"Ratelimit":        {`"user";r=0;t=3`},
				"Retry-After":      {"3"},
			},
		},
		{
			name:   "budget full",
			d:      Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 5},
			policy: "tenant",
			want: http.Header{
				"Ratelimit-Policy": {`"tenant";q=60;w=60`},
				"Ratelimit":        {`"tenant";r=5;t=0`},
			},
		},
		{
			name:   "policy name escaped",
			d:      Decision{Allowed: true, Limit: Limit{1, 1}},
			policy: "a\"b\\c\né",
			want: http.Header{
				"Ratelimit-Policy": {`"a\"b\\c__";q=1;w=60`},
				"Ratelimit":        {`"a\"b\\c__";r=0;t=0`},
			},
		},
		{
			name:   "unlimited writes nothing",
			d:      unlimitedDecision(),
			policy: "tenant",
			want:   http.Header{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			tc.d.WriteHeaders(h, tc.policy)
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Fatalf("headers mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Two policies (tenant and user) add two list members; Retry-After keeps the
// longer wait.
func TestWriteHeadersTwoPolicies(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	Decision{Allowed: false, Limit: Limit{100, 16}, RetryAfter: 5 * time.Second, ResetAfter: 10 * time.Second}.WriteHeaders(h, "tenant")
	Decision{Allowed: false, Limit: Limit{20, 3}, RetryAfter: 2 * time.Second, ResetAfter: 9 * time.Second}.WriteHeaders(h, "user")
	want := http.Header{
		"Ratelimit-Policy": {`"tenant";q=100;w=60`, `"user";q=20;w=60`},
		"Ratelimit":        {`"tenant";r=0;t=10`, `"user";r=0;t=9`},
		"Retry-After":      {"5"},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Fatalf("headers mismatch (-want +got):\n%s", diff)
	}
}

// FuzzSFString checks that any policy name becomes a valid structured-field
// String: quoted, printable ASCII, with '"' and '\' escaped.
func FuzzSFString(f *testing.F) {
	for _, s := range []string{"", "tenant", `a"b`, `\`, "é\x00\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sfString(s)
		if len(got) < 2 || got[0] != '"' || got[len(got)-1] != '"' {
			t.Fatalf("sfString(%q) = %q, not quoted", s, got)
		}
		body := got[1 : len(got)-1]
		for i := 0; i < len(body); i++ {
			c := body[i]
			if c < 0x20 || c > 0x7e {
				t.Fatalf("sfString(%q) = %q holds byte %#x", s, got, c)
			}
			if c == '\\' || c == '"' {
				if c == '"' && (i == 0 || body[i-1] != '\\') {
					t.Fatalf("sfString(%q) = %q has an unescaped quote", s, got)
				}
				if c == '\\' {
					i++ // skip the escaped character
					if i >= len(body) || (body[i] != '\\' && body[i] != '"') {
						t.Fatalf("sfString(%q) = %q has a bad escape", s, got)
					}
				}
			}
		}
		if strings.Count(got, "\n") != 0 {
			t.Fatalf("newline in %q", got)
		}
	})
}

// The first policy's two field lines share one array (WriteHeaders), so
// a line added to one field afterwards must not show up in the other, and
// writing both costs two allocations: one string for both values, one
// array for both lines.
func TestWriteHeadersSharedLines(t *testing.T) {
	d := Decision{Allowed: true, Limit: Limit{100, 16}, Remaining: 7, ResetAfter: 3 * time.Second}
	h := http.Header{}
	d.WriteHeaders(h, "tenant")
	h.Add(HeaderPolicy, `"extra";q=1;w=60`)
	want := http.Header{
		"Ratelimit-Policy": {`"tenant";q=100;w=60`, `"extra";q=1;w=60`},
		"Ratelimit":        {`"tenant";r=7;t=3`},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Fatalf("headers mismatch after adding a policy line (-want +got):\n%s", diff)
	}
	h = http.Header{}
	d.WriteHeaders(h, "tenant")
	h.Add(HeaderRateLimit, `"extra";r=1;t=1`)
	if got := h.Values(HeaderPolicy); len(got) != 1 || got[0] != `"tenant";q=100;w=60` {
		t.Fatalf("RateLimit-Policy = %q after adding a RateLimit line, want only the tenant's", got)
	}

	h = make(http.Header, 4) // room for both fields: no map growth is counted
	allocs := testing.AllocsPerRun(100, func() {
		clear(h)
		d.WriteHeaders(h, "tenant")
	})
	if allocs > 2 {
		t.Fatalf("WriteHeaders made %.0f allocations, want at most 2 (one string, one array of lines)", allocs)
	}
}
