"""One trace across services: catalog → review → catalog, carried by ``traceparent`` through
each service's outbox (both services in-process, spans collected in memory)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vitrine.contract.envelope import CloudEvent
from vitrine.runtime import service
from vitrine.runtime.messaging.outbox import outbox_rows, records
from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION as CATALOG
from vitrine_review.service import DEFINITION as REVIEW


def _product(pid: str) -> dict[str, object]:
    return {
        "product_id": pid,
        "merchant_id": "m-trace",
        "title": "White porcelain tea cup",
        "category": "kitchen",
        "images": ["https://img.example/cup.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
    }


def _trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def _spans(exporter: InMemorySpanExporter, type_: str, subject: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("cloudevents.event_type") == type_
        and (s.attributes or {}).get("cloudevents.event_subject") == subject
    ]


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_one_trace_spans_catalog_review_catalog(
    stack: Any, probe: Any, publisher: Any, monkeypatch: Any
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(service, "_tracer_provider", lambda name: provider)

    pid = f"p-{uuid.uuid4().hex[:8]}"
    async with (
        running(CATALOG, stack, otel_enabled=True),
        running(REVIEW, stack, otel_enabled=True),
    ):
        await publisher.send(
            "merchants.products", cloud_event("product.submitted", pid, _product(pid))
        )
        listed = await probe.wait_for("catalog.products", type="product.listed", subject=pid)
        deadline = time.monotonic() + 10
        while not _spans(exporter, "product.listed", pid):
            assert time.monotonic() < deadline, "no span for product.listed"
            await asyncio.sleep(0.1)

    consumed = [
        s for s in _spans(exporter, "product.submitted", pid) if s.name.endswith(" process")
    ]
    assert len(consumed) == 1
    trace_id = consumed[0].context.trace_id

    # Every record the submission caused carries a traceparent of that one trace.
    requested = probe.events("catalog.products", type="product.review_requested", subject=pid)
    approved = probe.events("review.decisions", type="review.approved", subject=pid)
    for record in (*requested, *approved, *listed):
        assert "traceparent" in record.headers, record.headers
        assert _trace_id(record.headers["traceparent"]) == f"{trace_id:032x}"

    # Each hop's spans belong to it: review consumed the request, catalog the decision and
    # published product.listed, all in the trace of the submission's consumption.
    for type_, name in [
        ("product.review_requested", "catalog.products process"),
        ("review.approved", "review.decisions process"),
        ("product.listed", "catalog.products publish"),
    ]:
        spans = [s for s in _spans(exporter, type_, pid) if s.name == name]
        assert spans, (type_, name)
        assert {s.context.trace_id for s in spans} == {trace_id}


def test_outbox_rows_keep_the_trace_and_older_rows_still_read() -> None:
    event = CloudEvent.model_validate(cloud_event("product.listed", "p-1", {"product_id": "p-1"}))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced = outbox_rows(
        [("catalog.products", event)], [{"traceparent": parent, "tracestate": "k=v"}]
    )
    headers = dict(records(traced[0])[0].headers)
    assert headers["traceparent"] == parent.encode() and headers["tracestate"] == b"k=v"

    plain = outbox_rows([("catalog.products", event)])
    assert plain[0]["events"].split("\n")[0].count(",") == 4  # the five-field meta line as before
    assert "traceparent" not in dict(records(plain[0])[0].headers)
