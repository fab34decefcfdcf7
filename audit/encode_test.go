package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// marshalled is the canonical record as encoding/json writes it: what
// Encode must return, byte for byte.
func marshalled(e *Event) ([]byte, error) {
	c := *e
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	return json.Marshal(&c)
}

func sampleEvent() Event {
	return Event{
		Time: time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.FixedZone("CET", 3600)), RequestID: "r-1z", Tenant: "t2ah3htpjvblvvvgzhpov",
		ExternalID: "org_acme", Issuer: "https://acme.eu.auth0.com/", User: "auth0|alice", Kind: KindToolCall, Method: "tools/call",
		Tool: "get_document", Outcome: OutcomeOK, LatencyMicros: 1840, Protocol: "2025-11-25", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		ArgsSize: 17, ArgsSHA256: "d2a84f4b8b650937ec8f73cd8be2c74add5a911ba64df27458ed8229da804a26",
	}
}

func TestEncodeAsMarshal(t *testing.T) {
	base := sampleEvent()
	for name, edit := range map[string]func(e *Event){
		"as is":             func(*Event) {},
		"minimal":           func(e *Event) { *e = Event{Time: e.Time, Kind: KindRequest, Outcome: OutcomeRefused} },
		"whole second":      func(e *Event) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		"nanoseconds only":  func(e *Event) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC) },
		"zero time":         func(e *Event) { e.Time = time.Time{} },
		"before year 0":     func(e *Event) { e.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"after year 9999":   func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"actor":             func(e *Event) { e.Actor = &Actor{Sub: "admin|bob", Issuer: "https://admin.example/"} },
		"actor without iss": func(e *Event) { e.Actor = &Actor{} },
		"negative latency":  func(e *Event) { e.LatencyMicros = -5 },
		"html in user":      func(e *Event) { e.User = "a<b>&c" },
		"quote in tool":     func(e *Event) { e.Tool = `say "hi"\` },
		"control character": func(e *Event) { e.Method = "a\nb\x00\x7f" },
		"unicode":           func(e *Event) { e.User = "José 😀 Ünïcödé" },
		"line separator":    func(e *Event) { e.User = "a\u2028b\u2029" },
		"invalid utf-8":     func(e *Event) { e.User = "a\xffb" },
		"arguments":         func(e *Event) { e.Args = json.RawMessage(`{"a": "<b>"}`) },
		"detail":            func(e *Event) { e.Detail = map[string]string{"z": "1", "a": "2"} },
		"empty detail":      func(e *Event) { e.Detail = map[string]string{} },
		"error class":       func(e *Event) { e.Outcome, e.ErrorClass = OutcomeError, "tool_error" },
		"replacement rune":  func(e *Event) { e.User = "\uFFFD" },
		"all text omitted":  func(e *Event) { *e = Event{Time: e.Time, Kind: "k", Outcome: "o", ArgsSize: -1} },
	} {
		e := base
		edit(&e)
		got, gotErr := e.Encode()
		want, wantErr := marshalled(&e)
		if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("%s: Encode = %s, %v\nMarshal = %s, %v", name, got, gotErr, want, wantErr)
		}
	}
	if _, err := (&Event{Time: base.Time, Outcome: OutcomeOK}).Encode(); err == nil {
		t.Error("Encode of an event without a kind: no error")
	}
}

// FuzzEncode: Encode writes exactly what encoding/json writes, for any
// text and numbers.
func FuzzEncode(f *testing.F) {
	f.Add("r-1", "t2ah3", "org_acme", "https://idp/", "auth0|alice", "tools/call", "echo", "2025-11-25", "", int64(1840), int64(1764581400123456789), false)
	f.Add("<&>", "\u2028", "\xff", "\"", "\\", "\n", "😀", "", "sub", int64(-1), int64(-1<<63), true)
	f.Fuzz(func(t *testing.T, reqID, tenant, ext, iss, user, method, tool, proto, actor string, latency, nanos int64, act bool) {
		e := Event{
			Time: time.Unix(0, nanos), RequestID: reqID, Tenant: tenant, ExternalID: ext, Issuer: iss, User: user,
			Kind: KindToolCall, Method: method, Tool: tool, Outcome: OutcomeOK, ErrorClass: proto, LatencyMicros: latency,
			Protocol: proto, TraceID: actor, ArgsSize: int(latency), ArgsSHA256: reqID,
		}
		if act {
			e.Actor = &Actor{Sub: actor, Issuer: iss}
		}
		got, gotErr := e.Encode()
		want, wantErr := marshalled(&e)
		if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("Encode = %s, %v\nMarshal = %s, %v", got, gotErr, want, wantErr)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	e := sampleEvent()
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalled(&e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
