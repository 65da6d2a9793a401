"""Traces, metrics and logs, set up once per process.

- Traces: OpenTelemetry; FastAPI, psycopg, asyncpg and aiokafka are
  instrumented. A command's traceparent is stored with its events, so the relay
  publishes each event as a child of the request that caused it and consumers
  continue the same trace (DESIGN.md section 7).
- Metrics: Prometheus, served on /metrics by every service.
- Logs: one JSON object per line, carrying the trace and span ids.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from prometheus_client import Counter, Gauge, Histogram

from shared.settings import Settings

COMMANDS = Counter("pl_commands_total", "Commands handled", ["service", "command", "outcome"])
EVENTS_STORED = Counter("pl_events_stored_total", "Domain events stored", ["service"])
EVENTS_PUBLISHED = Counter(
    "pl_events_published_total", "Events acknowledged by the broker", ["service", "topic"]
)
RELAY_POSITION = Gauge("pl_relay_position", "Last published notification id", ["service"])
RELAY_LAG = Gauge("pl_relay_lag_events", "Stored events not yet published", ["service"])
RELAY_EPOCH = Gauge("pl_relay_epoch", "Relay generation (grows on broker loss)", ["service"])
RELAY_RESETS = Counter(
    "pl_relay_resets_total", "Times the broker had lost the topic", ["service", "topic"]
)
CONSUMED = Counter(
    "pl_consumer_events_total",
    "Events seen by consumers",
    ["service", "group", "outcome"],  # applied | duplicate | parked | ignored
)
CONSUMER_LAG = Gauge(
    "pl_consumer_lag_events", "High watermark minus position", ["service", "topic", "partition"]
)
DEAD_LETTERS = Counter("pl_dead_letters_total", "Events parked", ["service", "group"])
DENIALS = Counter("pl_access_denied_total", "Refused requests", ["service", "status"])
HTTP_LATENCY = Histogram(
    "pl_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_state = {"tracing": False}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, settings: Settings) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def sampler_for(settings: Settings) -> Sampler:
    """Which spans are recorded. Without an exporter nobody would read a span,
    so none is recorded; the trace context is still created and propagated
    (the traceparent stored with each event stays valid). With an exporter, a
    trace started here is kept with `trace_sample_ratio`, and a caller's
    sampling decision is followed."""
    if not settings.otel_exporter_otlp_endpoint:
        return ALWAYS_OFF
    return ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))


def configure_tracing(service: str, settings: Settings) -> None:
    """Installs the tracer provider and the library instrumentations (once)."""
    if _state["tracing"] or not settings.tracing:
        return
    _state["tracing"] = True
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"partnerledger-{service}"}),
        sampler=sampler_for(settings),
    )
    trace.set_tracer_provider(provider)
    AIOKafkaInstrumentor().instrument()
    if settings.otel_exporter_otlp_endpoint:
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        # A span per SQL statement is only worth its cost when it is exported
        # (make profile: the database instrumentation took ~1 ms per command).
        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
        PsycopgInstrumentor().instrument()


def kafka_injects_traceparent() -> bool:
    """True when the aiokafka instrumentation adds the traceparent header itself."""
    return bool(AIOKafkaInstrumentor().is_instrumented_by_opentelemetry)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return propagate.extract({"traceparent": traceparent})


tracer = trace.get_tracer("partnerledger")
