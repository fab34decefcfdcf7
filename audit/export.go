package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// An export is JSON lines (docs/audit.md describes it for auditors):
//
//	{"type":"header","format":"tenantmcp-audit-export","version":1,"chain":…,"key_id":…,"since":…,"until":…,"from":{"seq":…,"hash":…},"to_head":…,"exported_at":…}
//	{"type":"checkpoint",…}   checkpoints at the from count, if any
//	{"type":"event","chain":…,"seq":…,"prev":…,"hash":…,"event":<the record's bytes>}
//	{"type":"checkpoint","chain":…,"count":…,"head":…,"time":…,"key_id":…,"signature":…}
//	…                         each checkpoint right after the event at its count
//	{"type":"checkpoint",…}   (to_head only) checkpoints beyond the last event: truncation
//	{"type":"end","events":…,"checkpoints":…,"last":{"seq":…,"hash":…}}
//
// so that a reader verifies it in one pass holding only the current head.

// ExportFormat and ExportVersion name the export file format in its header.
const (
	ExportFormat  = "tenantmcp-audit-export"
	ExportVersion = 1
)

// MaxExportLine is the longest line VerifyExport reads (an event with
// stored arguments can be long).
const MaxExportLine = 16 << 20

// ErrExportFormat: the input is not a well-formed export (not JSON lines
// of this format, no header, lines after the end, an end line that
// disagrees with the lines, or no end line: cut short). A well-formed
// export whose chain does not verify is reported in Report.FirstBroken
// instead.
var ErrExportFormat = errors.New("audit: not a well-formed audit export")

// exportHead is a Head in an export: {"seq":…,"hash":…}.
type exportHead struct {
	Seq  uint64 `json:"seq"`
	Hash Hash   `json:"hash"`
}

type exportHeader struct {
	Type       string     `json:"type"`
	Format     string     `json:"format"`
	Version    int        `json:"version"`
	Chain      string     `json:"chain"`
	KeyID      string     `json:"key_id,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	Until      *time.Time `json:"until,omitempty"`
	From       exportHead `json:"from"`
	ToHead     bool       `json:"to_head"`
	ExportedAt time.Time  `json:"exported_at"`
}

type exportCheckpoint struct {
	Type string `json:"type"`
	Checkpoint
}

type exportEnd struct {
	Type        string     `json:"type"`
	Events      uint64     `json:"events"`
	Checkpoints int        `json:"checkpoints"`
	Last        exportHead `json:"last"`
}

// Export writes chain's records and checkpoints to w as JSON lines, in
// the order VerifyExport (or an auditor's own tools) verifies them in one
// pass.
//
// since and until (zero = unbounded) select a contiguous piece of the
// chain: from the first event at or after since up to, not including, the
// first later event at or after until. (Events are chained in the order
// they were written, which can differ slightly from the order of their
// times; cutting at the first event past each bound keeps the piece
// contiguous, so it verifies.) An event whose time cannot be read (its
// body was damaged) is included. A piece that starts mid-chain verifies
// from the Prev of its first event, which the header repeats as "from";
// the checkpoints whose count lies in the piece prove its hashes.
//
// Without until the export runs to the chain's head and also carries the
// checkpoints beyond its last event, which a truncated chain has: the
// export then shows the truncation to whoever verifies it.
//
// The chain's checkpoints are read first and the records after, so
// events appended meanwhile are exported, uncovered by a checkpoint.
func Export(ctx context.Context, s Store, chain string, since, until time.Time, w io.Writer) error {
	cps, err := s.Checkpoints(ctx, chain)
	if err != nil {
		return fmt.Errorf("audit: checkpoints of chain %q: %w", chain, err)
	}
	slices.SortStableFunc(cps, func(a, b Checkpoint) int { return cmp.Compare(a.Count, b.Count) })
	x := &exporter{w: bufio.NewWriterSize(w, 64<<10), cps: cps}
	x.hdr = exportHeader{
		Type: "header", Format: ExportFormat, Version: ExportVersion, Chain: chain,
		ToHead: until.IsZero(), ExportedAt: time.Now().UTC(),
	}
	if len(cps) > 0 {
		x.hdr.KeyID = cps[len(cps)-1].KeyID
	}
	if !since.IsZero() {
		t := since.UTC()
		x.hdr.Since = &t
	}
	if !until.IsZero() {
		t := until.UTC()
		x.hdr.Until = &t
	}
	ranged := !since.IsZero() || !until.IsZero()
	var before Head // the last record before the range
	err = s.Scan(ctx, chain, 1, func(r *Record) error {
		if ranged {
			t, ok := recordTime(r.Body)
			if !x.started && ok && !since.IsZero() && t.Before(since) {
				before = Head{Seq: r.Seq, Hash: r.Hash}
				return nil
			}
			if ok && !until.IsZero() && !t.Before(until) {
				if !x.started { // an empty range, just before r
					if err := x.start(Head{Seq: r.Seq - 1, Hash: r.Prev}); err != nil {
						return err
					}
				}
				return errStop
			}
		}
		if !x.started {
			if err := x.start(Head{Seq: r.Seq - 1, Hash: r.Prev}); err != nil {
				return err
			}
		}
		return x.event(r)
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit: export chain %q: %w", chain, err)
	}
	if !x.started {
		if before.Seq == 0 {
			// No records: a chain that never had any, or one retention
			// emptied, which keeps its head.
			if before, err = s.Head(ctx, chain); err != nil {
				return fmt.Errorf("audit: head of chain %q: %w", chain, err)
			}
		}
		if err := x.start(before); err != nil {
			return err
		}
	}
	if x.hdr.ToHead {
		for ; x.next < len(x.cps); x.next++ {
			if err := x.checkpoint(&x.cps[x.next]); err != nil {
				return err
			}
		}
	}
	if err := x.line(exportEnd{Type: "end", Events: x.events, Checkpoints: x.checkpoints, Last: exportHead(x.last)}); err != nil {
		return err
	}
	return x.w.Flush()
}

type exporter struct {
	w           *bufio.Writer
	hdr         exportHeader
	cps         []Checkpoint
	next        int // cps[next:] are not written yet
	started     bool
	events      uint64
	checkpoints int
	last        Head
	buf         []byte
}

// start writes the header, which names from, and the checkpoints at from.
func (x *exporter) start(from Head) error {
	x.started = true
	x.hdr.From = exportHead(from)
	x.last = from
	if err := x.line(x.hdr); err != nil {
		return err
	}
	for ; x.next < len(x.cps) && x.cps[x.next].Count <= from.Seq; x.next++ {
		if x.cps[x.next].Count == from.Seq {
			if err := x.checkpoint(&x.cps[x.next]); err != nil {
				return err
			}
		}
	}
	return nil
}

// event writes r, then the checkpoints at its count. The body goes in
// verbatim as "event" when it is compact JSON, as it always is unless
// damaged; otherwise in base64 as "event_base64", so that damage is
// exported (and found) rather than hidden.
func (x *exporter) event(r *Record) error {
	b := x.buf[:0]
	b = append(b, `{"type":"event","chain":`...)
	b = appendJSONString(b, r.Chain)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"prev":"`...)
	b = append(b, r.Prev.String()...)
	b = append(b, `","hash":"`...)
	b = append(b, r.Hash.String()...)
	if isCompactJSON(r.Body) {
		b = append(b, `","event":`...)
		b = append(b, r.Body...)
	} else {
		b = append(b, `","event_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Body)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	x.buf = b
	if _, err := x.w.Write(b); err != nil {
		return err
	}
	x.events++
	x.last = Head{Seq: r.Seq, Hash: r.Hash}
	for ; x.next < len(x.cps) && x.cps[x.next].Count <= r.Seq; x.next++ {
		if err := x.checkpoint(&x.cps[x.next]); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) checkpoint(cp *Checkpoint) error {
	c := *cp
	c.Time = c.Time.UTC() // the signed form of the time, verbatim
	x.checkpoints++
	return x.line(exportCheckpoint{Type: "checkpoint", Checkpoint: c})
}

func (x *exporter) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = x.w.Write(b)
	return err
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// isCompactJSON reports whether body is one JSON object without
// insignificant white space, which a JSON line can carry verbatim and a
// JSON parser hands back byte for byte.
func isCompactJSON(body []byte) bool {
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' || !json.Valid(body) {
		return false
	}
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

// recordTime reads an event's time from its body.
func recordTime(body []byte) (time.Time, bool) {
	var e struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Time.IsZero() {
		return time.Time{}, false
	}
	return e.Time, true
}

// exportLine is any line of an export; Type says which fields apply.
type exportLine struct {
	Type string `json:"type"`
	// header
	Format  string      `json:"format"`
	Version int         `json:"version"`
	Since   *time.Time  `json:"since"`
	From    *exportHead `json:"from"`
	// event
	Chain       *string         `json:"chain"`
	Seq         uint64          `json:"seq"`
	Prev        Hash            `json:"prev"`
	Hash        Hash            `json:"hash"`
	Event       json.RawMessage `json:"event"`
	EventBase64 []byte          `json:"event_base64"`
	// checkpoint
	Count     uint64    `json:"count"`
	Head      Hash      `json:"head"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
	// end
	Events      *uint64     `json:"events"`
	Checkpoints *int        `json:"checkpoints"`
	Last        *exportHead `json:"last"`
}

// VerifyExport verifies an export (see Export) with nothing but the file
// and the public key: every event's sequence, link and hash; every
// checkpoint's signature and its agreement with the chain; and, where the
// export runs to the chain's head, truncation (a checkpoint beyond the
// last event). The report names the first broken link.
//
// The error is for input that is not a well-formed export (matching
// ErrExportFormat), including one cut short before its end line, or that
// could not be read.
//
// What a verified export proves: the events up to Report.Signed are the
// ones the key signed. Events after the latest checkpoint (Report.Unsigned)
// are consistent but not yet signed; and an export cut back to an earlier
// checkpoint, header and end line rewritten, verifies too — compare
// Report.Latest with a checkpoint obtained from the server to rule that
// out.
func VerifyExport(r io.Reader, pub ed25519.PublicKey) (*Report, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxExportLine)
	var (
		c           *checker
		n           int // line number
		ended       bool
		events      uint64
		checkpoints int
	)
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if ended {
			return nil, fmt.Errorf("%w: line %d: a line after the end line", ErrExportFormat, n)
		}
		if c != nil {
			if r, ok := parseEventLine(b); ok {
				events++
				if c.event(&r) {
					return c.rep, nil
				}
				continue
			}
		}
		var ln exportLine
		if err := json.Unmarshal(b, &ln); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrExportFormat, n, err)
		}
		if c == nil {
			if ln.Type != "header" || ln.Format != ExportFormat {
				return nil, fmt.Errorf("%w: line %d: the first line must be the header of format %q", ErrExportFormat, n, ExportFormat)
			}
			if ln.Version != ExportVersion {
				return nil, fmt.Errorf("%w: version %d; this verifier reads version %d", ErrExportFormat, ln.Version, ExportVersion)
			}
			if ln.Chain == nil {
				return nil, fmt.Errorf("%w: line %d: the header names no chain", ErrExportFormat, n)
			}
			c = newChecker(*ln.Chain, pub)
			var from Head
			if ln.From != nil {
				from = Head(*ln.From)
			}
			reason := fromRetention
			if ln.Since != nil {
				reason = fromRange
			}
			c.start(from, reason)
			continue
		}
		chain := c.rep.Chain
		if ln.Chain != nil {
			chain = *ln.Chain
		}
		switch ln.Type {
		case "event":
			if ln.Event != nil && ln.EventBase64 != nil {
				return nil, fmt.Errorf("%w: line %d: an event with both \"event\" and \"event_base64\"", ErrExportFormat, n)
			}
			body := []byte(ln.Event)
			if ln.EventBase64 != nil {
				body = ln.EventBase64
			}
			events++
			if c.event(&Record{Chain: chain, Seq: ln.Seq, Prev: ln.Prev, Hash: ln.Hash, Body: body}) {
				return c.rep, nil
			}
		case "checkpoint":
			checkpoints++
			cp := Checkpoint{Chain: chain, Count: ln.Count, Head: ln.Head, Time: ln.Time, KeyID: ln.KeyID, Signature: ln.Signature}
			if c.checkpoint(&cp) {
				return c.rep, nil
			}
		case "end":
			if ln.Events == nil || ln.Checkpoints == nil || ln.Last == nil {
				return nil, fmt.Errorf("%w: line %d: the end line needs events, checkpoints and last", ErrExportFormat, n)
			}
			if *ln.Events != events || *ln.Checkpoints != checkpoints || Head(*ln.Last) != c.rep.Head {
				return nil, fmt.Errorf("%w: line %d: the end line counts %d events and %d checkpoints up to event %d, the file has %d and %d up to event %d (lines removed or added)",
					ErrExportFormat, n, *ln.Events, *ln.Checkpoints, ln.Last.Seq, events, checkpoints, c.rep.Head.Seq)
			}
			ended = true
		default:
			return nil, fmt.Errorf("%w: line %d: unknown line type %q", ErrExportFormat, n, ln.Type)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrExportFormat, n+1, MaxExportLine)
		}
		return nil, fmt.Errorf("audit: read export: %w", err)
	}
	if c == nil {
		return nil, fmt.Errorf("%w: no header (empty input)", ErrExportFormat)
	}
	if !ended {
		return nil, fmt.Errorf("%w: it ends after event %d without its end line (cut short)", ErrExportFormat, c.rep.Head.Seq)
	}
	return c.rep, nil
}

// parseEventLine reads an event line laid out exactly as Export writes
// it, without the general JSON decoder, which would otherwise take most
// of the time of verifying an export. It gives what json.Unmarshal into
// exportLine gives, or ok false for any other line (left to it).
func parseEventLine(b []byte) (r Record, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"type":"event","chain":"`))
	if !ok {
		return r, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return r, false
	}
	chain := rest[:i]
	if !utf8.Valid(chain) || bytes.ContainsFunc(chain, func(c rune) bool { return c < 0x20 || c == '\\' }) {
		return r, false
	}
	if rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"seq":`)); !ok {
		return r, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && rest[0] == '0' {
		return r, false
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return r, false
	}
	rest = rest[n:]
	for _, h := range []struct {
		key string
		to  *Hash
	}{{`,"prev":"`, &r.Prev}, {`","hash":"`, &r.Hash}} {
		if rest, ok = bytes.CutPrefix(rest, []byte(h.key)); !ok || len(rest) < 2*len(h.to) {
			return r, false
		}
		if _, err := hex.Decode(h.to[:], rest[:2*len(h.to)]); err != nil {
			return r, false
		}
		rest = rest[2*len(h.to):]
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`","event":`)); !ok {
		return r, false
	}
	body, ok := bytes.CutSuffix(rest, []byte("}"))
	if !ok || len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' || !json.Valid(body) {
		return r, false
	}
	// The body is b's: VerifyExport's checker only hashes it.
	r.Chain, r.Seq, r.Body = string(chain), seq, body
	return r, true
}
