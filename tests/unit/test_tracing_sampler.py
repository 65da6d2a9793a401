"""Which spans are recorded (DESIGN.md section 7, issue 9's profile): none
without an exporter, a ratio of new traces with one, and a caller's sampling
decision is always followed. The trace context is propagated either way, so
the traceparent stored with events stays valid."""

from __future__ import annotations

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_trace_id

from shared.settings import Settings
from shared.telemetry import sampler_for

SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def tracer_for(**values: object) -> TracerProvider:
    return TracerProvider(sampler=sampler_for(Settings(**values)))  # type: ignore[arg-type]


def test_without_an_exporter_nothing_is_recorded_but_the_context_is_valid() -> None:
    span = tracer_for(otel_exporter_otlp_endpoint=None).get_tracer("t").start_span("cmd")
    assert not span.is_recording()
    assert span.get_span_context().is_valid  # a traceparent can still be stored


def test_without_an_exporter_a_callers_trace_id_is_kept() -> None:
    parent = propagate.extract({"traceparent": SAMPLED_PARENT})
    tracer = tracer_for(otel_exporter_otlp_endpoint=None).get_tracer("t")
    span = tracer.start_span("cmd", context=parent)
    assert format_trace_id(span.get_span_context().trace_id) == SAMPLED_PARENT.split("-")[1]


def test_with_an_exporter_every_trace_is_recorded_at_ratio_one() -> None:
    tracer = tracer_for(otel_exporter_otlp_endpoint="http://collector:4318").get_tracer("t")
    assert all(tracer.start_span(f"cmd{n}").is_recording() for n in range(50))


def test_a_ratio_of_zero_records_no_new_trace_but_follows_a_sampled_caller() -> None:
    tracer = tracer_for(
        otel_exporter_otlp_endpoint="http://collector:4318", trace_sample_ratio=0.0
    ).get_tracer("t")
    assert not tracer.start_span("cmd").is_recording()
    sampled = propagate.extract({"traceparent": SAMPLED_PARENT})
    unsampled = propagate.extract({"traceparent": UNSAMPLED_PARENT})
    assert tracer.start_span("cmd", context=sampled).is_recording()
    assert not tracer.start_span("cmd", context=unsampled).is_recording()


def test_a_ratio_keeps_about_that_share_of_new_traces() -> None:
    tracer = tracer_for(
        otel_exporter_otlp_endpoint="http://collector:4318", trace_sample_ratio=0.25
    ).get_tracer("t")
    recorded = sum(tracer.start_span(f"cmd{n}").is_recording() for n in range(4000))
    assert 800 < recorded < 1200


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_a_ratio_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="trace_sample_ratio"):
        Settings(trace_sample_ratio=ratio)
