package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// failingExporter fails the exports its errs say, in order.
type failingExporter struct {
	sdktrace.SpanExporter
	errs []error
}

func (e *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	err := e.errs[0]
	e.errs = e.errs[1:]
	return err
}

// TestExportLogger: a collector that stops taking spans is reported once
// at warn (with how many spans were lost), every further lost batch at
// debug, and its recovery once at info; the error never reaches
// OpenTelemetry's process-wide handler.
func TestExportLogger(t *testing.T) {
	var buf bytes.Buffer
	down := errors.New("connection refused")
	e := &exportLogger{
		SpanExporter: &failingExporter{errs: []error{nil, down, down, nil, nil}},
		log:          slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		url:          "http://127.0.0.1:4318/v1/traces",
	}
	for i := range 5 {
		if err := e.ExportSpans(context.Background(), make([]sdktrace.ReadOnlySpan, i+1)); err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		level, _, _ := strings.Cut(strings.SplitN(line, "level=", 2)[1], " ")
		got = append(got, level)
	}
	if strings.Join(got, " ") != "WARN DEBUG INFO" {
		t.Errorf("log levels %v, want WARN DEBUG INFO:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "spans=2") || !strings.Contains(buf.String(), "connection refused") {
		t.Errorf("the warning does not say how many spans were lost, or why:\n%s", buf.String())
	}
}
