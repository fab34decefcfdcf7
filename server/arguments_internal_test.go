package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

type argsIn struct {
	Text  string `json:"text"`
	N     int    `json:"n"`
	Inner struct {
		A string `json:"a"`
	} `json:"inner"`
}

// freshDecode is what NewTool did before its decoders were pooled.
func freshDecode(args []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var argumentCases = []string{
	`{"text":"hello"}`,
	`{"text":"x","n":3,"inner":{"a":"b"}}`,
	`{"text":"x","extra":1}`,        // unknown field
	`{"inner":{"a":"b","zz":true}}`, // unknown nested field
	`{"n":"not a number"}`,
	`{"text":`,                                       // truncated
	`{"text":"x"}} trailing`,                         // text after the value is not read
	`{"text":"a"} {"text":"b"}`,                      // only the first value counts
	`{"text":"x"}   `,                                // trailing space
	`  {"text":"lead"}`,                              // leading space
	`{"text":"` + strings.Repeat("y", 3000) + `"}`,   // more than one buffer fill
	`{"text":"` + strings.Repeat("z", 70<<10) + `"}`, // over the pooled size
	`[1,2]`,
	`"a string"`,
	`7`,
	`{"text":"\u00e9\n\"q\""}`,
	`{"text":nul}`, // syntax error
	`{}`,
}

// decodeArguments decodes exactly as a new json.Decoder with
// DisallowUnknownFields does, whatever the arguments before it left in
// the pooled decoder: same value, same error text.
func TestDecodeArgumentsAsFreshDecoder(t *testing.T) {
	for round := range 3 {
		for i, c := range argumentCases {
			// Each case after every other, so that each meets decoders
			// that the others used.
			for _, prev := range []string{argumentCases[(i+1)%len(argumentCases)], c} {
				var scratch argsIn
				_ = decodeArguments([]byte(prev), &scratch)
			}
			var got, want argsIn
			gotErr := decodeArguments([]byte(c), &got)
			wantErr := freshDecode([]byte(c), &want)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("round %d, %.60q: error %v, a new decoder says %v", round, c, gotErr, wantErr)
			}
			if got != want {
				t.Fatalf("round %d, %.60q: decoded %+v, a new decoder gives %+v", round, c, got, want)
			}
		}
	}
}

func FuzzDecodeArguments(f *testing.F) {
	for _, c := range argumentCases {
		f.Add(c, `{"text":"warm"}`)
	}
	f.Fuzz(func(t *testing.T, args, before string) {
		var scratch argsIn
		_ = decodeArguments([]byte(before), &scratch)
		var got, want argsIn
		gotErr := decodeArguments([]byte(args), &got)
		wantErr := freshDecode([]byte(args), &want)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || got != want {
			t.Fatalf("after %q, %q: got %+v, %v; a new decoder gives %+v, %v", before, args, got, gotErr, want, wantErr)
		}
	})
}

// Decoding a call's arguments allocates only what the value itself needs.
func TestDecodeArgumentsAllocs(t *testing.T) {
	args := []byte(`{"n":3,"inner":{"a":"b"}}`)
	var v argsIn
	if err := decodeArguments(args, &v); err != nil {
		t.Fatal(err)
	}
	fresh := testing.AllocsPerRun(100, func() { _ = freshDecode(args, &v) })
	pooled := testing.AllocsPerRun(100, func() { _ = decodeArguments(args, &v) })
	if pooled > fresh-3 {
		t.Fatalf("decodeArguments made %.0f allocations, a new decoder %.0f: want 3 fewer (decoder, buffer, reader)", pooled, fresh)
	}
}
