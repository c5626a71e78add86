//! Logging and tracing for every subcommand: log lines to standard error (filtered by `--log`,
//! as text or JSON by `--log-format`),
//! and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP/HTTP to that
//! collector (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the default, or `http/json`).
//! The standard `OTEL_*` variables (`OTEL_SERVICE_NAME`, `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_TRACES_SAMPLER`, ...) apply as the OpenTelemetry SDK reads them.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// Flushes exported spans when the command ends.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the subscriber; `service` names this process in traces (`bluelight-<command>`).
pub fn init(filter: &str, format: LogFormat, service: &str) -> Telemetry {
    let filter = || EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
    };
    let (provider, problem) = match exporter(service) {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    // Spans are exported whatever --log says: quieter logs must not break traces.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("bluelight"))
            .with_filter(EnvFilter::new(
                "info,rdkafka=off,h2=off,hyper=off,reqwest=off",
            ))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    if let Some(e) = problem {
        tracing::warn!("traces are not exported: {e}");
    } else if provider.is_some() {
        tracing::info!(
            endpoint = %std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default(),
            "exporting traces over OTLP"
        );
    }
    Telemetry { provider }
}

fn exporter(service: &str) -> Result<Option<SdkTracerProvider>, String> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        return Ok(None);
    }
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Err(_) | Ok("" | "http/protobuf") => Protocol::HttpBinary,
        Ok("http/json") => Protocol::HttpJson,
        Ok(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported; use http/protobuf (collector port 4318) or http/json"
            ));
        }
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(name).build())
            .build(),
    ))
}
