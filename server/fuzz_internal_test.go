package server

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/auth"
)

// FuzzErrorWriter: whatever the message and the id a client sent, a
// refusal body is valid JSON-RPC that carries the message unchanged (for
// valid UTF-8) and an id that is a string, a number or null.
func FuzzErrorWriter(f *testing.F) {
	for _, seed := range []struct{ msg, body string }{
		{"plain", `{"id":1}`},
		{"nul \x00 and \x1f controls", `{"id":"a\u0000b"}`},
		{`quotes " and \ backslashes`, `{"id":"\"}`},
		{"invalid utf-8 \xff\xfe", `{"id":1e400}`},
		{"</script><script>alert(1)</script>", `{"id":{"nested":true}}`},
		{"\u2028\u2029 line separators", `[{"id":1}]`},
		{"", `{"id":-0.5e-3}`},
		{"x", `{"id":null}`},
		{"x", `not json`},
	} {
		f.Add(seed.msg, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, msg string, body []byte) {
		rec := httptest.NewRecorder()
		writeJSONRPCError(rec, 400, codeInvalidRequest, requestIDOf(body), msg)
		var out struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("not JSON: %v: %q", err, rec.Body.String())
		}
		if out.JSONRPC != "2.0" || out.Error.Code != codeInvalidRequest {
			t.Fatalf("bad envelope: %q", rec.Body.String())
		}
		if string(out.ID) != "null" && !validID(out.ID) {
			t.Fatalf("id %s is neither string, number nor null", out.ID)
		}
		if utf8.ValidString(msg) && out.Error.Message != msg {
			t.Fatalf("message %q came back as %q", msg, out.Error.Message)
		}
	})
}

// FuzzScopePeek: the tools/call scope peek never panics, and whenever the
// protocol library would decode the body as a call of a scoped tool, the
// peek reports the missing scope (no encoding trick slips past it).
func FuzzScopePeek(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"admin\u005freset"}}`,
		`{"method":"tools/call","method":"tools/list","params":{"name":"admin_reset"}}`,
		`{"METHOD":"tools/call","params":{"NAME":"admin_reset"}}`,
		`[{"method":"tools/call","params":{"name":"admin_reset"}}]`,
		`{"method":"tools/call","params":{"name":"admin_reset","name":"other"}}`,
		"{\"method\":\"tools/call\",\"params\":{\"name\":\"admin_reset\"}}\x00",
		`{"method":"tools/call","params":null}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Server{
		tools:  map[string]*Tool{"admin_reset": {Name: "admin_reset", Scopes: []string{"admin:write"}}},
		scopes: newScopeSet(nil),
	}
	ident := &auth.Identity{Scopes: []string{"read:tools"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		missing := s.missingScopes(body, ident)
		// What a standard decoder (as the protocol library uses) sees.
		var m struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if isBatch(body) || json.Unmarshal(body, &m) != nil {
			return // refused before the protocol library (batch) or a parse error there
		}
		if m.Method == "tools/call" && m.Params.Name == "admin_reset" && len(missing) == 0 {
			t.Fatalf("scoped call not caught: %q", body)
		}
	})
}
