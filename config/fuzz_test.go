package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every reported problem is
// a located *Error with a message, and that whatever it accepts validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte(chapterSnippet), "")
	f.Add([]byte(base), "TENANTMCP_SERVER_LISTEN=:1")
	f.Add([]byte("[server]\nlisten = 8080\n[[log]]\nx = 1\n"), "TENANTMCP_AUTH_DOMIAN=x")
	f.Add([]byte("a.b.c = {d = [1, {e = 2}]}\n\"x.y\" = 1\n[auth.multi_tenant.x.y]\n"), "TENANTMCP_AUTH_ALGORITHMS=none,HS256")
	f.Add([]byte("auth = {domain = \"x\", multi_tenant = {isolation = \"prefix\"}}\nlog.level = 1979-05-27T07:32:00Z\n"), "")
	for _, p := range Providers {
		out, err := InitTemplate(InitOptions{Provider: p, MultiTenant: true})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out, "")
	}
	f.Fuzz(func(t *testing.T, data []byte, envLine string) {
		env := strings.Split(envLine, "\n")
		cfg, err := Parse(data, env)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, e := range es {
				if e == nil || e.Msg == "" {
					t.Fatalf("empty problem in %v", err)
				}
				_ = e.Error()
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if _, err := Parse(cfg.Encode(false), nil); err != nil && !strings.Contains(err.Error(), "TENANTMCP_") {
			// Encode writes every key; without the environment the
			// result must load as well, except where env values made it valid.
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Encode output: %v", err)
			}
		}
	})
}
