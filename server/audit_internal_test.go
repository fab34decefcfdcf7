package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTraceID(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "4bf92f3577b34da6a3ce929d0e0e4736"}, // later versions may add fields
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", ""},                                  // version 00 has none
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},                                        // upper case
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},                                        // zero trace id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},                                        // zero parent id
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},                                        // invalid version
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", ""},
		{"", ""},
	} {
		if got := traceID(tc.header); got != tc.want {
			t.Errorf("traceID(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

// FuzzTraceID: whatever a client sends as traceparent, the event gets
// either nothing or 32 lower-case hex digits taken from it.
func FuzzTraceID(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-zz")
	f.Fuzz(func(t *testing.T, header string) {
		id := traceID(header)
		if id == "" {
			return
		}
		if len(id) != 32 || !lowerHex(id) || strings.Trim(id, "0") == "" || header[3:35] != id {
			t.Fatalf("traceID(%q) = %q", header, id)
		}
	})
}

// FuzzClip: clipped client text is valid UTF-8 within the bound, and a
// prefix of the input.
func FuzzClip(f *testing.F) {
	f.Add("tools/call", 4)
	f.Add("naïve-tool-名前", 7)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<10 {
			return
		}
		got := clip(s, max)
		if len(got) > max && len(s) > max || !strings.HasPrefix(s, got) {
			t.Fatalf("clip(%q, %d) = %q", s, max, got)
		}
		if len(s) > max && !utf8.ValidString(got) {
			t.Fatalf("clip(%q, %d) = %q: not UTF-8", s, max, got)
		}
	})
}

// FuzzCompactArguments: the arguments an event hashes (and stores) are
// exactly what json.Marshal writes for them, with or without the
// reflection-free path.
func FuzzCompactArguments(f *testing.F) {
	for _, s := range []string{`{"message":"hello"}`, "{ \"a\" : [1, 2.5e3, true, null] ,\n\"b\":{}}", `{"h":"<b>&amp;</b>"}`,
		"{\"s\":\"\u2028\"}", `{"a":"\u003c"}`, `"x"`, `{"a":`, `{"a":"\xff"}`, ``, `[]`, ` 1 `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, wantErr := json.Marshal(json.RawMessage(raw))
		got, gotErr := compactArguments(new(bytes.Buffer), raw)
		if (gotErr != nil) != (wantErr != nil) || wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("compactArguments(%q) = %q, %v; json.Marshal %q, %v", raw, got, gotErr, want, wantErr)
		}
	})
}
