package audit

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// Encode returns the event's canonical record bytes: compact JSON with the
// fields in declaration order and the time in UTC with microseconds.
//
// The bytes are those of encoding/json's Marshal of the event. An event
// of plain text (most of them: no arguments kept, no detail, no text that
// Marshal escapes) is written directly, without reflection, which makes
// it several times cheaper; FuzzEncode checks that both ways agree.
func (e *Event) Encode() ([]byte, error) {
	t := e.Time.UTC().Truncate(time.Microsecond)
	if e.Kind == "" || e.Outcome == "" {
		return nil, errors.New("audit: event needs a kind and an outcome")
	}
	if b, ok := e.appendPlain(make([]byte, 0, encodeSize), t); ok {
		return b, nil
	}
	c := *e
	c.Time = t
	return json.Marshal(&c)
}

// encodeSize is room for a typical event's record in one allocation.
const encodeSize = 512

// appendPlain appends the record of e, at time t, to b, as json.Marshal
// would write it; false if e holds anything it does not write itself:
// arguments, detail, a string that Marshal escapes, a time Marshal
// refuses.
func (e *Event) appendPlain(b []byte, t time.Time) ([]byte, bool) {
	if len(e.Args) > 0 || len(e.Detail) > 0 || t.Year() < 0 || t.Year() > 9999 {
		return nil, false
	}
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	ok := true
	str := func(name, v string, always bool) {
		if ok && (always || v != "") {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':', '"')
			b, ok = appendPlainString(b, v)
			b = append(b, '"')
		}
	}
	num := func(name string, v int64) {
		if v != 0 {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = strconv.AppendInt(b, v, 10)
		}
	}
	str("request_id", e.RequestID, false)
	str("tenant", e.Tenant, false)
	str("external_id", e.ExternalID, false)
	str("issuer", e.Issuer, false)
	str("user", e.User, false)
	if a := e.Actor; a != nil && ok {
		b = append(b, `,"act":{"sub":"`...)
		b, ok = appendPlainString(b, a.Sub)
		b = append(b, '"')
		str("iss", a.Issuer, false)
		b = append(b, '}')
	}
	str("kind", e.Kind, true)
	str("method", e.Method, false)
	str("tool", e.Tool, false)
	str("outcome", e.Outcome, true)
	str("error_class", e.ErrorClass, false)
	num("latency_us", e.LatencyMicros)
	str("protocol", e.Protocol, false)
	str("trace_id", e.TraceID, false)
	num("args_size", int64(e.ArgsSize))
	str("args_sha256", e.ArgsSHA256, false)
	return append(b, '}'), ok
}

// appendPlainString appends s, which goes between quotes, if
// json.Marshal writes it as it is: valid UTF-8 without control
// characters, quotes, backslashes, the characters it escapes for HTML
// (<, >, &) or U+2028 and U+2029. Otherwise it returns false.
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return b, false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			return b, false
		}
		i += n
	}
	return append(b, s...), true
}
