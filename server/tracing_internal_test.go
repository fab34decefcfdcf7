package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// FuzzSpanParent: whatever a client puts in params._meta and the
// traceparent header, choosing the parent of its span never panics, and a
// parent chosen is exactly what a well-formed traceparent said: _meta's if
// it has one that the W3C propagator accepts too, else the header's, with
// the link only in the first case.
func FuzzSpanParent(f *testing.F) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f.Add(`{"traceparent":"`+valid+`","tracestate":"a=b"}`, valid)
	f.Add(`{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}`, valid)
	f.Add(`{"traceparent":12,"tracestate":[]}`, "")
	f.Add(`{"TraceParent":"`+valid+`"}`, "00-zz")
	f.Add(`null`, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future")
	f.Add(`"`+valid+`"`, valid+"-")
	s := &Server{}
	f.Fuzz(func(t *testing.T, meta, header string) {
		var tr trail
		var m rpcPeek
		if json.Unmarshal([]byte(`{"params":{"_meta":`+meta+`}}`), &m) == nil {
			tr.peek, tr.peeked = m, true
		}
		r := &http.Request{Header: http.Header{}}
		r.Header.Set("Traceparent", header)
		ctx, link := s.spanParent(context.Background(), r, &tr)
		sc := trace.SpanContextFromContext(ctx)
		mc := metaTraceContext(tr.peek.Params.Meta)
		fromMeta := mc.traceparent
		// The propagator refuses a few values traceID lets through
		// (reserved flags, say): then the header's parent stands.
		metaAccepted := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &mc)).IsValid()
		var want string
		switch {
		case tr.peeked && traceID(fromMeta) != "" && metaAccepted:
			want = fromMeta
		case traceID(header) != "":
			want = header
			if link.IsValid() {
				t.Fatalf("a link without a _meta parent")
			}
		}
		if !sc.IsValid() {
			return // the propagator may refuse more (reserved flags), never accept more
		}
		if want == "" {
			t.Fatalf("parent %s/%s from _meta %q, header %q: neither is well-formed", sc.TraceID(), sc.SpanID(), meta, header)
		}
		if !sc.IsRemote() || sc.TraceID().String() != want[3:35] || sc.SpanID().String() != want[36:52] {
			t.Fatalf("parent %s/%s (remote %v) from %q", sc.TraceID(), sc.SpanID(), sc.IsRemote(), want)
		}
	})
}
