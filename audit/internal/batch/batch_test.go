package batch

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/audit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMicros(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{base, base.UnixMicro()},
		{base.Add(time.Nanosecond), base.UnixMicro() + 1},
		{base.Add(999 * time.Nanosecond), base.UnixMicro() + 1},
		{base.Add(time.Microsecond), base.UnixMicro() + 1},
		{base.Add(-time.Nanosecond), base.UnixMicro()},
		{time.Unix(0, -1), 0},
		{time.Unix(0, -1000), -1},
		{time.Unix(0, -1001), -1},
	} {
		if got := Micros(tc.t); got != tc.want {
			t.Errorf("Micros(%v) = %d, want %d", tc.t, got, tc.want)
		}
	}
}

func TestSplitTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", 3600)),
	} {
		us, ns := SplitTime(tm)
		if ns < 0 || ns > 999 {
			t.Errorf("SplitTime(%v) nanoseconds = %d", tm, ns)
		}
		if got := JoinTime(us, ns); !got.Equal(tm) || got.Location() != time.UTC {
			t.Errorf("JoinTime(SplitTime(%v)) = %v", tm, got)
		}
	}
}

func records(t *testing.T, n int) []audit.Record {
	var out []audit.Record
	var h audit.Head
	for i := range n {
		e := audit.Event{Time: time.Unix(int64(i), 0), Kind: audit.KindRequest, Outcome: audit.OutcomeOK, Tool: "x"}
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var r audit.Record
		r, h = h.Next("a", b)
		out = append(out, r)
	}
	return out
}

func TestCheck(t *testing.T) {
	recs := records(t, 3)
	other, _ := audit.Head{}.Next("b", recs[0].Body)
	firsts, err := Check(append(recs[:2:2], other, recs[2]))
	if err != nil || len(firsts) != 2 || firsts[0].Chain != "a" || firsts[1].Chain != "b" {
		t.Errorf("Check = %v, %v; want the first record of a and of b", firsts, err)
	}
	gap := []audit.Record{recs[0], recs[2]}
	if _, err := Check(gap); !errors.Is(err, audit.ErrConflict) {
		t.Errorf("Check of a gap: err = %v, want ErrConflict", err)
	}
	zero := recs[0]
	zero.Seq = 0
	if _, err := Check([]audit.Record{zero}); !errors.Is(err, audit.ErrConflict) {
		t.Errorf("Check of seq 0: err = %v, want ErrConflict", err)
	}
}

func TestDecode(t *testing.T) {
	recs := records(t, 10)
	var got []Fields
	err := Decode(recs, 3, func(rs []audit.Record, fs []Fields) error {
		if len(rs) != len(fs) || len(rs) > 3 {
			t.Errorf("chunk of %d records and %d fields", len(rs), len(fs))
		}
		got = append(got, fs...)
		return nil
	})
	if err != nil || len(got) != 10 || !got[9].Time.Equal(time.Unix(9, 0)) || got[9].Tool != "x" {
		t.Fatalf("Decode: %d fields, %v", len(got), err)
	}
	// An error from fn or from a body stops it, and nothing is left running.
	stop := errors.New("stop")
	calls := 0
	if err := Decode(recs, 2, func([]audit.Record, []Fields) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Decode with fn failing: %v after %d calls", err, calls)
	}
	recs[5].Body = []byte(`{"time": 5}`)
	calls = 0
	if err := Decode(recs, 2, func([]audit.Record, []Fields) error { calls++; return nil }); err == nil || calls != 2 {
		t.Errorf("Decode with a bad body: %v after %d calls; want an error after 2", err, calls)
	}
}

// indexJSON is Index by encoding/json alone: what indexPlain must agree
// with.
func indexJSON(body []byte) (Fields, error) {
	var f Fields
	err := json.Unmarshal(body, &f)
	f.Time = f.Time.UTC()
	return f, err
}

var indexSamples = []string{
	`{"time":"2026-12-01T09:30:00.123456Z","request_id":"r1","tenant":"t2ah3","user":"auth0|alice","act":{"sub":"admin","iss":"x"},"kind":"tool_call","method":"tools/call","tool":"get_document","outcome":"ok","latency_us":1840,"args_size":17,"args":{"a":[1,-2.5e+3,true,false,null,"\u00e9\n"]},"detail":{"k":"v"}}`,
	`{}`, ` { } `, `{"time":"2026-12-01T09:30:00Z"}`, `{"Time":"2026-12-01T09:30:00Z"}`, `{"TOOL":"x","tool":"y"}`,
	`{"tool":"a","tool":"b"}`, `{"tool":"a","tool":null}`, `{"tool":null}`, `{"tool":1}`, `{"tool":"a\"b"}`, `{"tool":"a\u0041"}`,
	`{"uſer":"x"}`, `{"user":"\xff"}`, `{"x":"\xff"}`, `{"time":"2026-13-01T00:00:00Z"}`, `{"time":"x"}`, `{"time":null}`,
	`{"time":"2026-12-01T09:30:00+01:00"}`, `{"time":"2026-12-01T09:30:00\u005a"}`, `["x"]`, `null`, `{"a":01}`, `{"a":1.}`,
	`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":truex}`, `{"a":[1,]}`, `{"a":{"b":1,}}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`,
	`{"a":"\x01"}`, `{"a":"\q"}`, `{"a":"\u12"}`, "{\"a\":\"\t\"}", `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"outcome":"ok"`, `{"outcome":"ok",`, `{"outcome`, "", ` `, `{"a":"b"}{}`,
}

func TestIndexPlain(t *testing.T) {
	for _, body := range indexSamples {
		checkIndex(t, []byte(body))
	}
	// Every record Encode writes takes the plain path.
	for _, e := range []audit.Event{
		{Time: time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC), Kind: audit.KindToolCall, Outcome: audit.OutcomeOK, User: "auth0|alice", Tool: "echo"},
		{Time: time.Unix(0, 0), Kind: audit.KindRefusal, Outcome: audit.OutcomeRefused, ErrorClass: "invalid_token", Actor: &audit.Actor{Sub: "a"}},
	} {
		body, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		f, ok := indexPlain(body)
		if !ok || !f.Time.Equal(e.Time.Truncate(time.Microsecond)) || f.User != e.User || f.Tool != e.Tool || f.Outcome != e.Outcome {
			t.Errorf("indexPlain(%s) = %+v, %v", body, f, ok)
		}
	}
}

func checkIndex(t *testing.T, body []byte) {
	t.Helper()
	f, ok := indexPlain(body)
	if !ok {
		return
	}
	want, err := indexJSON(body)
	if err != nil {
		t.Fatalf("indexPlain accepted %q, which json.Unmarshal refuses: %v", body, err)
	}
	f.Time = f.Time.UTC()
	if !f.Time.Equal(want.Time) || f.Time.Location() != want.Time.Location() || f.User != want.User || f.Tool != want.Tool || f.Outcome != want.Outcome {
		t.Fatalf("indexPlain(%q) = %+v, json.Unmarshal %+v", body, f, want)
	}
}

// FuzzIndex: what indexPlain accepts, json.Unmarshal accepts too, with
// the same fields.
func FuzzIndex(f *testing.F) {
	for _, s := range indexSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkIndex(t, body) })
}

func BenchmarkIndex(b *testing.B) {
	r := audit.Record{Body: []byte(indexSamples[0])}
	b.Run("Index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Index(&r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := indexJSON(r.Body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
