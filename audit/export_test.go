package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func export(t *testing.T, s Store, chain string, since, until time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(context.Background(), s, chain, since, until, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lines splits an export into its lines, each decoded for inspection.
func lines(t *testing.T, file []byte) (raw [][]byte, decoded []map[string]any) {
	t.Helper()
	for _, l := range bytes.Split(bytes.TrimSuffix(file, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("export line is not JSON: %v\n%s", err, l)
		}
		raw, decoded = append(raw, l), append(decoded, m)
	}
	return raw, decoded
}

// kinds is the line types of an export with each event's seq and each
// checkpoint's count: "header event:1 … checkpoint:5 … end".
func kinds(decoded []map[string]any) string {
	var b []string
	for _, m := range decoded {
		switch m["type"] {
		case "event":
			b = append(b, fmt.Sprintf("e%v", m["seq"]))
		case "checkpoint":
			b = append(b, fmt.Sprintf("cp%v", m["count"]))
		default:
			b = append(b, m["type"].(string))
		}
	}
	return strings.Join(b, " ")
}

// TestExportFormat: the lines are the header, each event with its body
// verbatim, each checkpoint right after the event at its count, and the
// end line.
func TestExportFormat(t *testing.T) {
	f := setup(t, 7, 3) // checkpoints at 3, 6 and 7
	file := export(t, f.s, f.chain, time.Time{}, time.Time{})
	raw, dec := lines(t, file)
	if got, want := kinds(dec), "header e1 e2 e3 cp3 e4 e5 e6 cp6 e7 cp7 end"; got != want {
		t.Fatalf("lines %s\nwant  %s", got, want)
	}
	hdr := dec[0]
	for k, want := range map[string]any{"format": ExportFormat, "version": float64(ExportVersion), "chain": f.chain,
		"key_id": KeyID(testPub), "to_head": true, "from": map[string]any{"seq": float64(0), "hash": Hash{}.String()}} {
		if !cmp.Equal(hdr[k], want) {
			t.Errorf("header %s = %v, want %v", k, hdr[k], want)
		}
	}
	if _, ok := hdr["since"]; ok {
		t.Errorf("whole-chain export names a since: %s", raw[0])
	}
	r := f.records()[0]
	want := fmt.Sprintf(`{"type":"event","chain":%q,"seq":1,"prev":"%s","hash":"%s","event":%s}`, f.chain, r.Prev, r.Hash, r.Body)
	if string(raw[1]) != want {
		t.Errorf("event line\n%s\nwant\n%s", raw[1], want)
	}
	cp := f.s.cps[f.chain][0]
	wantCP := fmt.Sprintf(`{"type":"checkpoint","chain":%q,"count":3,"head":"%s","time":"%s","key_id":"%s","signature":"%s"}`,
		f.chain, cp.Head, cp.Time.Format(time.RFC3339Nano), cp.KeyID, b64(cp.Signature))
	if string(raw[4]) != wantCP {
		t.Errorf("checkpoint line\n%s\nwant\n%s", raw[4], wantCP)
	}
	wantEnd := fmt.Sprintf(`{"type":"end","events":7,"checkpoints":3,"last":{"seq":7,"hash":"%s"}}`, f.records()[6].Hash)
	if string(raw[len(raw)-1]) != wantEnd {
		t.Errorf("end line\n%s\nwant\n%s", raw[len(raw)-1], wantEnd)
	}
}

// TestExportRange: a time range exports a contiguous piece that verifies
// from its first event's Prev, with the checkpoints inside it; it claims
// nothing about the events after it, so a truncated tail beyond its end
// is not its business.
func TestExportRange(t *testing.T) {
	f := setup(t, 20, 5)
	// Event 12 started before event 11 (written later): still in the
	// piece, which is cut at the first event past each bound.
	f.records()[11].Body = bytes.Replace(f.records()[11].Body, []byte(eventTime(12).Format(time.RFC3339)), []byte(eventTime(9).Format(time.RFC3339)), 1)
	f.rehash(12)
	f.s.cps[f.chain] = nil // rehashed: sign again
	for _, n := range []int{5, 10, 15, 20} {
		f.checkpoint(t, testKey, f.head(n))
	}
	tests := []struct {
		name         string
		since, until time.Time
		lines        string
		status       string
		signed       uint64
		unsigned     uint64
	}{
		{"since", eventTime(10), time.Time{}, "header e10 cp10 e11 e12 e13 e14 e15 cp15 e16 e17 e18 e19 e20 cp20 end",
			"OK, starts at event 10 (the export's time range starts here)", 20, 0},
		{"since and until", eventTime(6), eventTime(13), "header cp5 e6 e7 e8 e9 e10 cp10 e11 e12 end",
			"OK, starts at event 6 (the export's time range starts here)", 10, 2},
		{"until", time.Time{}, eventTime(7), "header e1 e2 e3 e4 e5 cp5 e6 end", "OK", 5, 1},
		{"from a checkpoint", eventTime(6), eventTime(8), "header cp5 e6 e7 end",
			"OK, starts at event 6 (the export's time range starts here)", 5, 2},
		{"nothing in range", eventTime(30), time.Time{}, "header cp20 end", "OK, starts at event 21 (the export's time range starts here)", 20, 0},
		{"nothing in range before the chain", eventTime(0), eventTime(1), "header end", "OK", 0, 0},
		{"nothing in range inside the chain", eventTime(5).Add(time.Millisecond), eventTime(5).Add(2 * time.Millisecond), "header cp5 end", "OK, starts at event 6 (the export's time range starts here)", 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := export(t, f.s, f.chain, tt.since, tt.until)
			_, dec := lines(t, file)
			if got, want := kinds(dec), tt.lines; got != want {
				t.Errorf("lines %s\nwant  %s", got, want)
			}
			rep, err := VerifyExport(bytes.NewReader(file), testPub)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Status() != tt.status || rep.Signed != tt.signed || rep.Unsigned() != tt.unsigned {
				t.Errorf("%s, signed to %d, %d unsigned; want %s, %d, %d", rep.Status(), rep.Signed, rep.Unsigned(), tt.status, tt.signed, tt.unsigned)
			}
		})
	}
	// The tail is truncated: a whole-chain export shows it, one ending
	// before the truncation does not, and need not.
	f.truncate(3)
	if rep, _ := exportReport(t, f.s, f.chain, testPub); rep.OK() || rep.FirstBroken.Seq != 18 {
		t.Errorf("whole export of a truncated chain: %s", rep.Status())
	}
	file := export(t, f.s, f.chain, eventTime(6), eventTime(16))
	if rep, err := VerifyExport(bytes.NewReader(file), testPub); err != nil || !rep.OK() || rep.Head.Seq != 15 {
		t.Errorf("export of 6 to 15 of a chain truncated after 17: %v %v", rep, err)
	}
}

// TestExportDamagedBody: a body that is not compact JSON any more is
// exported in base64, so the damage is found rather than the export
// failing or the bytes changing on the way.
func TestExportDamagedBody(t *testing.T) {
	f := setup(t, 5, 5)
	f.records()[2].Body = []byte("{\"time\": \"2026-11-30T12:00:03Z\",\n\"kind\":\"tool_call\"}")
	file := export(t, f.s, f.chain, eventTime(2), time.Time{})
	raw, _ := lines(t, file)
	if !bytes.Contains(raw[2], []byte(`"event_base64":"`)) {
		t.Fatalf("damaged body exported as %s", raw[2])
	}
	rep, err := VerifyExport(bytes.NewReader(file), testPub)
	if err != nil || rep.OK() || rep.FirstBroken.Seq != 3 {
		t.Fatalf("damaged body: %v, %v", rep, err)
	}
	// Rehashed, the same body verifies: base64 carries it byte for byte.
	f.rehash(3)
	f.s.cps[f.chain] = nil
	f.checkpoint(t, testKey, f.head(5))
	if rep, _ := exportReport(t, f.s, f.chain, testPub); !rep.OK() || rep.Checkpoints != 1 {
		t.Fatalf("non-compact body rehashed and signed: %s", rep.Status())
	}
}

// TestVerifyExportFileTampering: changes to the file itself are found:
// in the chain (FirstBroken) or in its structure (ErrExportFormat).
func TestVerifyExportFileTampering(t *testing.T) {
	f := setup(t, 10, 5) // lines: header e1…e5 cp5 e6…e10 cp10 end
	file := export(t, f.s, f.chain, time.Time{}, time.Time{})
	raw, _ := lines(t, file)
	edit := func(fn func(ls [][]byte) [][]byte) []byte {
		ls := fn(append([][]byte(nil), raw...))
		return append(bytes.Join(ls, []byte("\n")), '\n')
	}
	replace := func(i int, old, new string) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte {
			ls[i] = bytes.Replace(ls[i], []byte(old), []byte(new), 1)
			return ls
		}
	}
	del := func(i int) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte { return append(ls[:i], ls[i+1:]...) }
	}
	move := func(from, to int) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte {
			l := ls[from]
			ls = append(ls[:from], ls[from+1:]...)
			return append(ls[:to], append([][]byte{l}, ls[to:]...)...)
		}
	}
	tests := []struct {
		name   string
		file   []byte
		seq    uint64 // FirstBroken, or 0 for ErrExportFormat
		reason string
	}{
		{"event edited", edit(replace(3, "alice", "mallory")), 3, "hash does not match its content"},
		{"event deleted", edit(del(3)), 3, "event 3 is missing"},
		{"events swapped", edit(move(3, 4)), 3, "event 3 is missing (next is 4)"},
		{"checkpoint edited", edit(replace(6, `"count":5`, `"count":4`)), 4, "signature does not verify"},
		{"checkpoint moved later", edit(move(6, 8)), 5, "checkpoint of event 5 is out of place (after event 7)"},
		{"checkpoint moved earlier", edit(move(6, 4)), 4, "covers 5 events but only 3 remain"},
		{"header from moved on", edit(replace(0, `"seq":0`, `"seq":1`)), 1, "event 1 appears again"},
		{"chain changed", edit(replace(0, f.chain, "tother")), 1, "record of chain"},
		{"checkpoint deleted", edit(del(6)), 0, "the end line counts 10 events and 2 checkpoints"},
		{"cut short", edit(func(ls [][]byte) [][]byte { return ls[:9] }), 0, "ends after event 7 without its end line (cut short)"},
		{"cut at a checkpoint", edit(func(ls [][]byte) [][]byte { return ls[:7] }), 0, "cut short"},
		{"line after the end", append(bytes.Clone(file), raw[1]...), 0, "a line after the end line"},
		{"empty", nil, 0, "no header"},
		{"not JSON", []byte("hello\n"), 0, "line 1"},
		{"no header", edit(del(0)), 0, "the first line must be the header"},
		{"other version", edit(replace(0, `"version":1`, `"version":2`)), 0, "version 2"},
		{"unknown line", edit(replace(2, `"type":"event"`, `"type":"note"`)), 0, `unknown line type "note"`},
		{"both bodies", edit(replace(2, `"event":{`, `"event_base64":"","event":{`)), 0, "both"},
		{"line too long", append(bytes.Clone(raw[0]), append([]byte("\n"), bytes.Repeat([]byte(" "), MaxExportLine+1)...)...), 0, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := VerifyExport(bytes.NewReader(tt.file), testPub)
			if tt.seq == 0 {
				if !errors.Is(err, ErrExportFormat) || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("err = %v; want ErrExportFormat …%s…", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.FirstBroken.Seq != tt.seq || !strings.Contains(rep.FirstBroken.Reason, tt.reason) {
				t.Fatalf("%s; want BROKEN at event %d: …%s…", rep.Status(), tt.seq, tt.reason)
			}
		})
	}
	// Blank lines, including a missing final newline, are harmless.
	if rep, err := VerifyExport(bytes.NewReader(append(bytes.ReplaceAll(file, []byte("\n"), []byte("\n\n")), "\n"...)), testPub); err != nil || !rep.OK() {
		t.Errorf("blank lines: %v %v", rep, err)
	}
	if rep, err := VerifyExport(bytes.NewReader(bytes.TrimSuffix(file, []byte("\n"))), testPub); err != nil || !rep.OK() {
		t.Errorf("no final newline: %v %v", rep, err)
	}
}

// BenchmarkVerifyExport verifies an export of 1,000,000 events with a
// checkpoint every 10,000.
func BenchmarkVerifyExport(b *testing.B) {
	f := setup(b, 1_000_000, 10_000)
	var buf bytes.Buffer
	if err := Export(context.Background(), f.s, f.chain, time.Time{}, time.Time{}, &buf); err != nil {
		b.Fatal(err)
	}
	f = nil
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		rep, err := VerifyExport(bytes.NewReader(buf.Bytes()), testPub)
		if err != nil || !rep.OK() || rep.Events != 1_000_000 {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/event")
}

// BenchmarkExport exports a chain of 1,000,000 events.
func BenchmarkExport(b *testing.B) {
	f := setup(b, 1_000_000, 10_000)
	for b.Loop() {
		if err := Export(context.Background(), f.s, f.chain, time.Time{}, time.Time{}, discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/event")
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
