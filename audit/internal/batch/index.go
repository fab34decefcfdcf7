package batch

import (
	"bytes"
	"unicode/utf8"
)

// indexPlain decodes the indexed fields of body as json.Unmarshal into a
// Fields does, for a body that is a JSON object whose indexed fields are
// plain strings (no escapes, valid UTF-8) and whose keys match the
// fields' names exactly or not at all: what Event.Encode writes. For
// anything else (including every body Unmarshal refuses) it returns
// false and Index decodes with encoding/json. FuzzIndex checks that both
// agree.
func indexPlain(body []byte) (Fields, bool) {
	var f Fields
	p := scanner{b: body}
	p.space()
	if !p.take('{') {
		return f, false
	}
	p.space()
	if p.take('}') {
		p.space()
		return f, p.i == len(p.b)
	}
	for {
		key, ok := p.plainString()
		if !ok {
			return f, false
		}
		p.space()
		if !p.take(':') {
			return f, false
		}
		p.space()
		var dst *string
		switch {
		case string(key) == "time":
			start := p.i
			if p.peek() != '"' || !p.value(0) {
				return f, false
			}
			// What Unmarshal hands time.Time: the literal, quotes and all.
			if f.Time.UnmarshalJSON(p.b[start:p.i]) != nil {
				return f, false
			}
		case string(key) == "user":
			dst = &f.User
		case string(key) == "tool":
			dst = &f.Tool
		case string(key) == "outcome":
			dst = &f.Outcome
		case bytes.EqualFold(key, []byte("time")) || bytes.EqualFold(key, []byte("user")) ||
			bytes.EqualFold(key, []byte("tool")) || bytes.EqualFold(key, []byte("outcome")):
			return f, false // Unmarshal matches names without regard to case
		default:
			if !p.value(0) {
				return f, false
			}
		}
		if dst != nil {
			v, ok := p.plainString()
			if !ok || !utf8.Valid(v) {
				return f, false
			}
			*dst = intern(v)
		}
		p.space()
		if p.take(',') {
			p.space()
			continue
		}
		if !p.take('}') {
			return f, false
		}
		p.space()
		return f, p.i == len(p.b)
	}
}

// scanner reads JSON from b at i.
type scanner struct {
	b []byte
	i int
}

// maxDepth bounds the nesting indexPlain follows (Unmarshal allows far
// more; deeper bodies take its path).
const maxDepth = 64

func (p *scanner) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *scanner) take(c byte) bool {
	if p.peek() == c && p.i < len(p.b) {
		p.i++
		return true
	}
	return false
}

func (p *scanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// plainString reads a string without escapes and returns its content.
func (p *scanner) plainString() ([]byte, bool) {
	if !p.take('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// value skips one JSON value, checking its syntax.
func (p *scanner) value(depth int) bool {
	switch c := p.peek(); {
	case c == '"':
		return p.string()
	case c == '{' || c == '[':
		return depth < maxDepth && p.composite(depth)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if end := p.i + len(lit); end <= len(p.b) && string(p.b[p.i:end]) == lit {
			p.i = end
			return true
		}
	}
	return false
}

// string skips a string, escapes included.
func (p *scanner) string() bool {
	p.i++ // the opening quote
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			p.i++
			switch p.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for range 4 {
					if !isHex(p.peek()) {
						return false
					}
					p.i++
				}
			default:
				return false
			}
		default:
			p.i++
		}
	}
	return false
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// composite skips an object or an array.
func (p *scanner) composite(depth int) bool {
	object := p.b[p.i] == '{'
	end := byte(']')
	if object {
		end = '}'
	}
	p.i++
	p.space()
	if p.take(end) {
		return true
	}
	for {
		if object {
			if p.peek() != '"' || !p.string() {
				return false
			}
			p.space()
			if !p.take(':') {
				return false
			}
			p.space()
		}
		if !p.value(depth + 1) {
			return false
		}
		p.space()
		if p.take(end) {
			return true
		}
		if !p.take(',') {
			return false
		}
		p.space()
	}
}

// number skips a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *scanner) number() bool {
	p.take('-')
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return false
	}
	if p.take('.') && !p.digits() {
		return false
	}
	if p.take('e') || p.take('E') {
		if !p.take('+') {
			p.take('-')
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

// digits skips one or more digits.
func (p *scanner) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// intern is string(v), without allocating for the outcomes.
func intern(v []byte) string {
	for _, o := range [...]string{"ok", "error", "refused"} {
		if string(v) == o {
			return o
		}
	}
	return string(v)
}
