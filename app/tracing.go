package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracingExportTimeout bounds one export to the collector: OpenTelemetry's
// default (OTEL_EXPORTER_OTLP_TIMEOUT, which is not read here).
const tracingExportTimeout = 10 * time.Second

// tracerProvider builds the OpenTelemetry tracer provider [tracing]
// describes: spans batched and exported over OTLP/HTTP (protobuf) to
// tracing.endpoint, a tracing.sample_ratio of new traces recorded (a
// request whose trace context carries a sampling decision follows it),
// under tracing.service_name. It returns nil when tracing is off.
//
// Only [tracing] says where spans go and what they are sent with: the
// exporter's OTEL_EXPORTER_OTLP_* variables (endpoint, headers, protocol,
// compression, certificates, timeout) are overridden. The returned
// function shuts the provider down, exporting the spans still batched, for
// at most server.shutdown_timeout.
func (a *App) tracerProvider(ctx context.Context) (trace.TracerProvider, func(), error) {
	cfg := a.Config
	t := cfg.Tracing
	if !t.Enabled {
		return nil, func() {}, nil
	}
	url := cfg.TracesURL()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	exp, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(url),
		otlptracehttp.WithHeaders(cfg.TracingHeaders()),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: transport, Timeout: tracingExportTimeout}),
		otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf),
		otlptracehttp.WithCompression(otlptracehttp.NoCompression),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing exporter for %s: %w", url, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&exportLogger{SpanExporter: exp, log: a.log, url: url}),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(t.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", t.ServiceName))),
	)
	a.log.Info("tracing: exporting spans", "endpoint", url, "sample_ratio", t.SampleRatio, "service_name", t.ServiceName)
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			a.log.Warn("tracing: not every span was exported at shutdown", "endpoint", url, "err", err)
		}
		transport.CloseIdleConnections()
	}
	return tp, stop, nil
}

// exportLogger reports failed exports on the app's logger, at warn when
// exports start failing and at info when they recover (each batch in
// between at debug), instead of OpenTelemetry's global error handler.
type exportLogger struct {
	sdktrace.SpanExporter
	log     *slog.Logger
	url     string
	failing atomic.Bool
}

func (e *exportLogger) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch was := e.failing.Swap(err != nil); {
	case err != nil && !was:
		e.log.WarnContext(ctx, "tracing: spans lost: the collector did not take them (logged again once it does)",
			"endpoint", e.url, "spans", len(spans), "err", err)
	case err != nil:
		e.log.DebugContext(ctx, "tracing: spans lost", "endpoint", e.url, "spans", len(spans), "err", err)
	case was:
		e.log.InfoContext(ctx, "tracing: the collector takes spans again", "endpoint", e.url)
	}
	// Reported above: the batch processor would only hand it to the
	// process-wide OpenTelemetry error handler (the standard logger).
	return nil
}
