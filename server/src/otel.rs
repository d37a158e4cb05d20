//! Traces: with `--otlp-endpoint`, spans of requests and jobs (and of their
//! steps: queue wait, decode, processing, encode, store I/O) are exported to
//! an OpenTelemetry collector over OTLP/gRPC, and log lines inside a span
//! carry its `trace_id`. A request carrying a W3C `traceparent` header
//! continues the caller's trace.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The exporter, flushed and stopped on drop.
#[derive(Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// Starts exporting to `endpoint` (`http://HOST:4317`); returns the
    /// guard and the tracer for the `tracing` layer. Must run inside the
    /// Tokio runtime (the exporter is a tonic client).
    pub fn start(endpoint: &str) -> Result<(Self, SdkTracer), String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("nl-server")
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(provider.clone());
        let tracer = provider.tracer("nl-server");
        Ok((Self { provider }, tracer))
    }
}

impl Drop for Otel {
    fn drop(&mut self) {
        // Exports what is still buffered.
        if let Err(e) = self.provider.shutdown() {
            eprintln!("nl-server: exporting the last traces: {e}");
        }
    }
}

/// Whether `span` is exported (an exporter runs and the span is sampled):
/// attributes that cost work to compute are recorded only then.
pub fn exported(span: &tracing::Span) -> bool {
    span.context().span().span_context().is_valid()
}

/// Records the trace id of `span` in its `trace_id` field (declared empty
/// by the span), so that log lines inside it carry it. Nothing without an
/// exporter.
pub fn record_trace_id(span: &tracing::Span) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
    }
}

/// Makes `span` continue the trace a request's `traceparent` header names.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    struct Headers<'a>(&'a http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// A finished child span of `parent` from `start` to `end` (for time spent
/// before the code that measures it ran: a job's wait in the queue).
pub fn past_span(
    parent: &tracing::Span,
    name: &'static str,
    start: std::time::SystemTime,
    end: std::time::SystemTime,
) {
    use opentelemetry::trace::{Span as _, Tracer as _};
    let cx = parent.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    let tracer = global::tracer("nl-server");
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .start_with_context(&tracer, &cx);
    span.end_with_timestamp(end);
}
