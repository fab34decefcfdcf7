package app_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/tenantmcp/tenantmcp/auth"
)

// collectorSpan is what an OTLP/HTTP receiver got of one span.
type collectorSpan struct {
	service, name, traceID string
	attrs                  map[string]string
}

// otlpCollector is an OTLP/HTTP trace receiver on 127.0.0.1: it decodes
// every POST /v1/traces (protobuf) and keeps its spans.
type otlpCollector struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []collectorSpan
	headers []string // X-Collector-Key of each export
	bad     []string // requests it could not take
}

func newOTLPCollector() *otlpCollector {
	c := &otlpCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	return c
}

func (c *otlpCollector) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" ||
		err != nil || proto.Unmarshal(body, &req) != nil {
		c.bad = append(c.bad, fmt.Sprintf("%s %s %s (%v)", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.headers = append(c.headers, r.Header.Get("X-Collector-Key"))
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range s.Attributes {
					switch v := kv.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_StringValue:
						attrs[kv.Key] = v.StringValue
					case *commonpb.AnyValue_IntValue:
						attrs[kv.Key] = fmt.Sprint(v.IntValue)
					}
				}
				c.spans = append(c.spans, collectorSpan{service: service, name: s.Name, traceID: hex.EncodeToString(s.TraceId), attrs: attrs})
			}
		}
	}
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(resp)
}

func (c *otlpCollector) received() ([]collectorSpan, []string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]collectorSpan(nil), c.spans...), append([]string(nil), c.headers...), append([]string(nil), c.bad...)
}

// TestTracingExportsToCollector runs a deployment with [tracing] on against
// a local OTLP/HTTP receiver: the spans of its requests, with the tenant's
// internal id, reach the receiver with the configured service name and
// headers, and the ones still batched are exported when the server is
// shut down (its close function), after which nothing of it keeps running.
func TestTracingExportsToCollector(t *testing.T) {
	// The batch is exported only on shutdown, never on a timer, so the test
	// sees that the close function flushes it.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
	// It would move the spans elsewhere if [tracing] did not override it.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces")
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	col := newOTLPCollector()
	t.Cleanup(col.Close)
	var acmeID string
	const remoteTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	// Runs after the deployment's own cleanups, the server's close
	// function among them.
	t.Cleanup(func() {
		if t.Failed() {
			return // the deployment did not get far
		}
		spans, headers, bad := col.received()
		if len(bad) > 0 {
			t.Fatalf("exports the receiver could not take: %v", bad)
		}
		byName := map[string][]collectorSpan{}
		for _, s := range spans {
			if s.service != "tenantmcp-test" {
				t.Errorf("span %s of service %q", s.name, s.service)
			}
			byName[s.name] = append(byName[s.name], s)
		}
		for _, name := range []string{"tools/call list_documents", "execute_tool list_documents", "tools/list"} {
			if len(byName[name]) != 1 {
				t.Errorf("%d spans %q, want 1 (got %d spans: %v)", len(byName[name]), name, len(spans), byName)
				continue
			}
			if s := byName[name][0]; s.attrs["tenant.id"] != acmeID {
				t.Errorf("span %s: tenant.id %q, want %q", name, s.attrs["tenant.id"], acmeID)
			}
		}
		if s := byName["tools/list"]; len(s) == 1 && s[0].traceID != remoteTrace {
			t.Errorf("tools/list in trace %s, want the caller's %s", s[0].traceID, remoteTrace)
		}
		refused := byName["POST /mcp"]
		if len(refused) != 1 || refused[0].attrs["error.type"] != "no_token" || refused[0].attrs["tenant.id"] != "" {
			t.Errorf("refusal spans %v, want one no_token without tenant.id", refused)
		}
		for _, h := range headers {
			if h != "k1" {
				t.Errorf("export with X-Collector-Key %q, want k1", h)
			}
		}
		if len(headers) == 0 {
			t.Error("nothing exported")
		}
	})

	d := deploy(t, fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\n[tracing]\nenabled = true\nendpoint = %q\nservice_name = \"tenantmcp-test\"\nheaders = [\"X-Collector-Key=k1\"]\n", col.URL), nil)
	c := d.client(t, "acme", "alice")
	rec, err := d.app.Registry.Lookup(context.Background(), d.iss.Issuer(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	acmeID = string(rec.ID)
	if out, isErr := call(t, c, "list_documents", nil); isErr {
		t.Fatalf("list_documents: %s", out)
	}
	tok, err := d.iss.Mint(auth.TokenRequest{Audience: d.url, TenantID: "acme", UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, authorization := range []string{"Bearer " + tok, ""} {
		req, _ := http.NewRequest(http.MethodPost, d.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Traceparent", "00-"+remoteTrace+"-00f067aa0ba902b7-01")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if spans, _, _ := col.received(); len(spans) != 0 {
		t.Errorf("%d spans exported before shutdown: the batch should wait for it", len(spans))
	}
}
