package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTracingValidation: every [tracing] problem is reported at once,
// naming the key, and header values (credentials) are never shown.
func TestTracingValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		toml string
		env  []string
		want []string // error prefixes, in order
	}{
		{name: "off by default needs nothing"},
		{name: "enabled with endpoint", toml: "[tracing]\nenabled = true\nendpoint = \"http://127.0.0.1:4318\"\n"},
		{name: "enabled without endpoint", toml: "[tracing]\nenabled = true\n",
			want: []string{`tracing.endpoint: required when tracing.enabled = true: set it (or TENANTMCP_TRACING_ENDPOINT)`}},
		{name: "endpoint checked even when off", toml: "[tracing]\nendpoint = \"otlp.example.com:4318\"\n",
			want: []string{`tracing.endpoint: "otlp.example.com:4318" must be an absolute http:// or https:// URL`}},
		{name: "endpoint with credentials", toml: "[tracing]\nenabled = true\nendpoint = \"https://u:hunter2@otlp.example.com\"\n",
			want: []string{`tracing.endpoint: "https://u:hunter2@otlp.example.com" must not contain credentials`}},
		{name: "endpoint with a query", toml: "[tracing]\nendpoint = \"https://otlp.example.com/v1/traces?x=1\"\n",
			want: []string{`tracing.endpoint: "https://otlp.example.com/v1/traces?x=1" must not have a query string`}},
		{name: "ratio integer is a number", toml: "[tracing]\nsample_ratio = 0\n"},
		{name: "ratio above 1", toml: "[tracing]\nsample_ratio = 1.5\n",
			want: []string{`tracing.sample_ratio: must be between 0 and 1 (a fraction of traces, such as 0.1), not 1.5`}},
		{name: "ratio negative", toml: "[tracing]\nsample_ratio = -0.1\n",
			want: []string{`tracing.sample_ratio: must be between 0 and 1`}},
		{name: "ratio NaN", toml: "[tracing]\nsample_ratio = nan\n",
			want: []string{`tracing.sample_ratio: must be between 0 and 1`}},
		{name: "ratio a string", toml: "[tracing]\nsample_ratio = \"10%\"\n",
			want: []string{`tracing.sample_ratio: must be a number, not a string ("10%")`}},
		{name: "ratio from env", env: []string{"TENANTMCP_TRACING_SAMPLE_RATIO=half"},
			want: []string{`tracing.sample_ratio: "half" is not a number`}},
		{name: "service name empty", toml: "[tracing]\nservice_name = \" \"\n",
			want: []string{`tracing.service_name: must not be empty (default "tenantmcp")`}},
		{name: "headers", toml: "[tracing]\nheaders = [\"Authorization=Bearer hunter2\", \"x-scope-orgid=acme\"]\n"},
		{name: "bad headers", toml: "[tracing]\nheaders = [\"Bearer hunter2\", \"bad name=hunter2\", \"X-Key=\", \"X-Key=a\\nhunter2\", \"x-key=hunter2\", \"X-KEY=hunter2\"]\n",
			want: []string{
				`tracing.headers: entry 1 is not "Name=value"`,
				`tracing.headers: entry 2 is not "Name=value"`,
				`tracing.headers: entry 3 is not "Name=value"`,
				`tracing.headers: entry 4 (X-Key): the value has control characters`,
				`tracing.headers: entry 6: header X-KEY is listed twice`,
			}},
		{name: "headers from env", env: []string{"TENANTMCP_TRACING_HEADERS=hunter2"},
			want: []string{`tracing.headers: entry 1 is not "Name=value"`}},
		{name: "all at once", toml: "[tracing]\nenabled = true\nsample_ratio = 2.0\nservice_name = \"\"\n",
			want: []string{"tracing.endpoint: required", "tracing.sample_ratio: must be", "tracing.service_name: must not"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := base + tt.toml
			cfg, err := Parse([]byte(src), tt.env)
			es := errorsOf(t, err)
			var got []string
			for _, e := range es {
				got = append(got, e.Key+": "+e.Msg)
				if strings.Contains(e.Error(), "hunter2") && !strings.Contains(src, "@otlp") {
					t.Errorf("header value echoed: %s", e)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], tt.want[i])
				}
			}
			if len(tt.want) == 0 && cfg == nil {
				t.Fatal("nil config without error")
			}
		})
	}
}

func TestTracingDefaultsAndDerived(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := cfg.Tracing; tr.Enabled || tr.SampleRatio != 1 || tr.ServiceName != "tenantmcp" || tr.Endpoint != "" || len(tr.Headers) != 0 {
		t.Errorf("defaults: %+v", tr)
	}
	for endpoint, want := range map[string]string{
		"http://127.0.0.1:4318":              "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":             "http://127.0.0.1:4318/v1/traces",
		"https://otlp.example.com/v1/traces": "https://otlp.example.com/v1/traces",
		"https://gw.example.com/otlp/traces": "https://gw.example.com/otlp/traces",
	} {
		c := Default()
		c.Tracing.Endpoint = endpoint
		if got := c.TracesURL(); got != want {
			t.Errorf("TracesURL(%s) = %s, want %s", endpoint, got, want)
		}
	}
	cfg, err = Parse([]byte(base), []string{
		"TENANTMCP_TRACING_ENABLED=true", "TENANTMCP_TRACING_ENDPOINT=https://otlp.example.com",
		"TENANTMCP_TRACING_SAMPLE_RATIO=0.05", "TENANTMCP_TRACING_HEADERS=Authorization=Bearer k=1, x-scope-orgid = acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing.SampleRatio != 0.05 {
		t.Errorf("ratio %v", cfg.Tracing.SampleRatio)
	}
	want := map[string]string{"Authorization": "Bearer k=1", "x-scope-orgid": "acme"}
	if diff := cmp.Diff(want, cfg.TracingHeaders()); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if got := Default().TracingHeaders(); got != nil {
		t.Errorf("no headers: %v", got)
	}
}

// TestFormatFloat: numbers are written as TOML floats (TestEncodeRoundTrip
// reads them back).
func TestFormatFloat(t *testing.T) {
	t.Parallel()
	for f, want := range map[float64]string{1: "1.0", 0: "0.0", 0.1: "0.1", 1e-7: "1e-07"} {
		if got := formatFloat(f); got != want {
			t.Errorf("formatFloat(%v) = %s, want %s", f, got, want)
		}
	}
}
