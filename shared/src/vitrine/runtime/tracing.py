"""W3C trace context across services: consumed record → outbox → the records it causes.

A consumed batch is one FastStream span; each record in it gets its own CONSUMER span whose
parent is the record's ``traceparent`` (and which links to the batch span). The events a
record causes are staged in the outbox with that span's context; the relay sends each one
inside a PRODUCER span child of it, and puts that span's ``traceparent`` (and
``tracestate``) on the record. So one trace follows an input through every service.

Everything here is a no-op unless tracing is on (``VITRINE_OTEL_ENABLED=true``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: A trace context as W3C headers: ``{"traceparent": …, "tracestate"?: …}``.
Carrier = dict[str, str]

_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = ("traceparent", "tracestate")


def current_carrier() -> Carrier:
    """The current trace context as headers (empty when no span is active)."""
    carrier: Carrier = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def _carrier_of(span: trace.Span) -> Carrier:
    carrier: Carrier = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _extract(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context | None:
    found = {
        k: v.decode("latin-1") for k, v in headers or () if k in TRACE_HEADERS and v is not None
    }
    return _PROPAGATOR.extract(found) if "traceparent" in found else None


@contextlib.contextmanager
def consume_spans(
    tracer: Tracer | None, items: Sequence[tuple[Any, Any]]
) -> Iterator[dict[str, Carrier]]:
    """One CONSUMER span per ``(record, event)`` for the time the batch is applied.

    Yields, per event id, the carrier its effects must be staged with. A record without a
    ``traceparent`` continues the current (batch) span's trace.
    """
    if tracer is None or not items:
        yield {}
        return
    batch = trace.get_current_span()
    links = [Link(batch.get_span_context())] if batch.get_span_context().is_valid else None
    spans: list[trace.Span] = []
    carriers: dict[str, Carrier] = {}
    try:
        for record, event in items:
            span = tracer.start_span(
                f"{record.topic} process",
                context=_extract(record.headers),
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.kafka.destination.partition": record.partition,
                    "messaging.kafka.message.offset": record.offset,
                    "cloudevents.event_id": event.id,
                    "cloudevents.event_type": event.type,
                    "cloudevents.event_subject": event.subject,
                },
            )
            spans.append(span)
            carriers[event.id] = _carrier_of(span)
        yield carriers
    finally:
        for span in spans:
            span.end()


def with_trace_headers(
    headers: list[tuple[str, bytes]], carrier: Mapping[str, str] | None
) -> list[tuple[str, bytes]]:
    """``headers`` with ``traceparent``/``tracestate`` from ``carrier`` (replacing any)."""
    if not carrier:
        return headers
    kept = [(k, v) for k, v in headers if k not in TRACE_HEADERS]
    return kept + [(k, carrier[k].encode()) for k in TRACE_HEADERS if carrier.get(k)]


@contextlib.contextmanager
def publish_spans(tracer: Tracer | None, records: Sequence[Any]) -> Iterator[list[Any]]:
    """A PRODUCER span per outgoing record that carries a trace context; yields the records
    with ``traceparent`` set to their span (records without one pass unchanged)."""
    if tracer is None:
        yield list(records)
        return
    spans: list[trace.Span] = []
    out: list[Any] = []
    try:
        for record in records:
            parent = _extract(record.headers)
            if parent is None:
                out.append(record)
                continue
            span = tracer.start_span(
                f"{record.topic} publish",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation": "publish",
                    "messaging.destination.name": record.topic,
                    "cloudevents.event_id": _header(record, "ce-id"),
                    "cloudevents.event_type": _header(record, "ce-type"),
                    "cloudevents.event_subject": _header(record, "ce-subject"),
                },
            )
            spans.append(span)
            headers = with_trace_headers(record.headers, _carrier_of(span))
            out.append(type(record)(record.topic, record.key, record.value, headers))
        yield out
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR)
        raise
    finally:
        for span in spans:
            span.end()


def _header(record: Any, name: str) -> str:
    return next((v.decode() for k, v in record.headers if k == name), "")


__all__ = [
    "TRACE_HEADERS",
    "Carrier",
    "consume_spans",
    "current_carrier",
    "publish_spans",
    "with_trace_headers",
]
