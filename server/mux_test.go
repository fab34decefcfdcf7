package server

import "testing"

func TestShadows(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"/mcp", "/mcp", true},
		{"POST /mcp", "/mcp", true},
		{"GET  example.com/mcp", "/mcp", true},
		{"example.com/mcp", "/mcp", true},
		{"/mcp{$}", "/mcp", true},
		{"GET /{$}", "/", true},
		{"/mcp/", "/mcp", false},
		{"/{name}", "/mcp", false},
		{"GET /healthz", "/mcp", false},
		{"GET /mcpx", "/mcp", false},
		{"GET /.well-known/oauth-protected-resource/mcp", "/mcp", false},
		{"GET /flood", "/", false},
	} {
		if got := shadows(c.pattern, c.path); got != c.want {
			t.Errorf("shadows(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
