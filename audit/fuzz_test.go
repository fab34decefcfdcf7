package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzVerifyExport: VerifyExport never panics on any input and fails
// only with ErrExportFormat or a broken chain; its reports are
// consistent; and a file it accepts stays accepted when its events and
// checkpoints are stored and exported again (the reader and the writer
// agree on every byte that is hashed or signed).
func FuzzVerifyExport(f *testing.F) {
	fx := setup(f, 12, 5)
	var valid [][]byte
	for _, r := range [][2]time.Time{{}, {eventTime(4), {}}, {eventTime(3), eventTime(9)}, {eventTime(6), eventTime(7)}} {
		var buf bytes.Buffer
		if err := Export(context.Background(), fx.s, fx.chain, r[0], r[1], &buf); err != nil {
			f.Fatal(err)
		}
		valid = append(valid, buf.Bytes())
	}
	for _, v := range valid {
		f.Add(v)
	}
	f.Add([]byte{})
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"type":"header","format":"tenantmcp-audit-export","version":1,"chain":"x","from":{"seq":18446744073709551615,"hash":"` + Hash{}.String() + `"}}` + "\n" + `{"type":"end","events":0,"checkpoints":0,"last":{"seq":18446744073709551615,"hash":"` + Hash{}.String() + `"}}`))
	fx.edit(3)
	fx.truncate(2)
	var buf bytes.Buffer
	if err := Export(context.Background(), fx.s, fx.chain, time.Time{}, time.Time{}, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	// Every tampering TestTamperingCaught knows, exported.
	for _, tt := range tamperings {
		fx := setup(f, 20, 5)
		tt.tamper(fx)
		var buf bytes.Buffer
		if err := Export(context.Background(), fx.s, fx.chain, time.Time{}, time.Time{}, &buf); err != nil {
			f.Fatalf("%s: %v", tt.name, err)
		}
		f.Add(buf.Bytes())
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast reading of event lines agrees with the JSON decoder.
		for _, line := range bytes.Split(data, []byte("\n")) {
			r, ok := parseEventLine(line)
			if !ok {
				continue
			}
			var ln exportLine
			if err := json.Unmarshal(line, &ln); err != nil || ln.Type != "event" || ln.Chain == nil || ln.EventBase64 != nil ||
				*ln.Chain != r.Chain || ln.Seq != r.Seq || ln.Prev != r.Prev || ln.Hash != r.Hash || !bytes.Equal(ln.Event, r.Body) {
				t.Fatalf("parseEventLine and json.Unmarshal disagree on\n%s\n%+v\n%+v, %v", line, r, ln, err)
			}
		}
		rep, err := VerifyExport(bytes.NewReader(data), testPub)
		if err != nil {
			if rep != nil || !errors.Is(err, ErrExportFormat) {
				t.Fatalf("error %v with report %v; want ErrExportFormat and no report", err, rep)
			}
			for _, v := range valid {
				if bytes.Equal(data, v) {
					t.Fatalf("a valid export refused: %v", err)
				}
			}
			return
		}
		if rep.Head.Seq != rep.From.Seq+rep.Events {
			t.Fatalf("report: from %d + %d events ≠ head %d", rep.From.Seq, rep.Events, rep.Head.Seq)
		}
		if (rep.Checkpoints == 0) != (rep.Latest == nil) || rep.Latest != nil && rep.Latest.Count != rep.Signed {
			t.Fatalf("report: %d checkpoints, latest %v, signed %d", rep.Checkpoints, rep.Latest, rep.Signed)
		}
		again, err := VerifyExport(bytes.NewReader(data), testPub)
		if err != nil || again.Status() != rep.Status() || again.Events != rep.Events {
			t.Fatalf("verified twice: %s then %v, %v", rep.Status(), again, err)
		}
		if !rep.OK() {
			for _, v := range valid {
				if bytes.Equal(data, v) {
					t.Fatalf("a valid export broken: %s", rep.Status())
				}
			}
			return
		}
		if rep.Signed > rep.Head.Seq {
			t.Fatalf("OK report signed to %d beyond its head %d", rep.Signed, rep.Head.Seq)
		}
		reexported, ok := reexport(data)
		if !ok {
			return
		}
		rep2, err := VerifyExport(bytes.NewReader(reexported), testPub)
		if err != nil || !rep2.OK() || rep2.Events != rep.Events || rep2.Head != rep.Head || rep2.Checkpoints != rep.Checkpoints || rep2.Signed != rep.Signed {
			t.Fatalf("accepted (%s, %d events, %d checkpoints), but once stored and exported again: %v, %v\n%s\n%s",
				rep.Status(), rep.Events, rep.Checkpoints, rep2, err, data, reexported)
		}
	})
}

// reexport stores an accepted export's events and checkpoints in a
// MemoryStore and exports them again; false if they cannot be stored
// (an export starting mid-chain, or bodies that are not events).
func reexport(data []byte) ([]byte, bool) {
	s := NewMemoryStore()
	var chain string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxExportLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var ln exportLine
		if json.Unmarshal(sc.Bytes(), &ln) != nil {
			return nil, false
		}
		if ln.Chain != nil {
			chain = *ln.Chain
		}
		switch ln.Type {
		case "header":
			if ln.From != nil && ln.From.Seq != 0 {
				return nil, false
			}
		case "event":
			body := []byte(ln.Event)
			if ln.EventBase64 != nil {
				body = ln.EventBase64
			}
			if s.Append(context.Background(), []Record{{Chain: chain, Seq: ln.Seq, Prev: ln.Prev, Hash: ln.Hash, Body: body}}) != nil {
				return nil, false
			}
		case "checkpoint":
			cp := Checkpoint{Chain: chain, Count: ln.Count, Head: ln.Head, Time: ln.Time, KeyID: ln.KeyID, Signature: ln.Signature}
			if s.PutCheckpoint(context.Background(), &cp) != nil {
				return nil, false
			}
		}
	}
	var buf bytes.Buffer
	if Export(context.Background(), s, chain, time.Time{}, time.Time{}, &buf) != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
