"""Metrics, readiness, consumer lag and optional tracing of a running service (real stack)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from vitrine.runtime import metrics, service
from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION as CATALOG

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


def _product(pid: str) -> dict[str, object]:
    return {
        "product_id": pid,
        "merchant_id": "m-obs",
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
    }


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Samples of metric ``name`` whose labels include ``labels``."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found.append((sample.labels, sample.value))
    return found


async def test_metrics_count_the_traffic_per_topic_and_type(stack, probe, publisher) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    async with running(CATALOG, stack) as (_, http):
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["ready"] is True
        assert all(ready.json()["checks"].values())

        await publisher.send(
            "merchants.products", cloud_event("product.submitted", pid, _product(pid))
        )
        await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)
        await publisher.send(
            "review.decisions",
            cloud_event(
                "review.approved", pid, {"product_id": pid, "version": 1}, source="/vitrine/review"
            ),
        )
        await probe.wait_for("catalog.products", type="product.listed", subject=pid)
        await publisher.send_raw("merchants.products", b"not json", pid.encode())
        await probe.wait_for("merchants.products.dlq", subject=pid)

        text = (await http.get("/metrics")).text
        consumed = "vitrine_messages_consumed_total"
        for topic, kind in [
            ("merchants.products", "product.submitted"),
            ("review.decisions", "review.approved"),
        ]:
            found = samples(text, consumed, service="catalog", topic=topic, type=kind)
            assert found and found[0][1] >= 1, (topic, kind)
        for kind in ("product.review_requested", "product.listed"):
            found = samples(
                text,
                "vitrine_messages_published_total",
                service="catalog",
                topic="catalog.products",
                type=kind,
            )
            assert found and found[0][1] >= 1, kind
        dead = samples(
            text,
            "vitrine_dead_letters_total",
            service="catalog",
            topic="merchants.products",
            reason="not_json",
        )
        assert dead and dead[0][1] >= 1
        batches = samples(text, "vitrine_batch_seconds_count", service="catalog")
        assert batches and batches[0][1] >= 1
        assert samples(text, "vitrine_outbox_backlog", service="catalog")
        assert samples(text, "vitrine_ready", service="catalog") == [({"service": "catalog"}, 1.0)]

        # Consumer lag: a gauge per assigned input partition, measured every few seconds.
        deadline = time.monotonic() + 20
        while True:
            text = (await http.get("/metrics")).text
            lag = samples(text, "vitrine_consumer_lag", service="catalog")
            topics = {labels["topic"] for labels, _ in lag}
            if {"merchants.products", "review.decisions"} <= topics:
                break
            assert time.monotonic() < deadline, f"no lag gauges yet: {lag}"
            await asyncio.sleep(0.5)
        assert len([x for x in lag if x[0]["topic"] == "merchants.products"]) == 12
        assert all(value >= 0 for _, value in lag)


async def test_readyz_reflects_database_and_pipeline_health(stack) -> None:
    from pymongo import AsyncMongoClient

    from vitrine.tools.devstack import free_port

    async with running(CATALOG, stack) as (app, http):
        rt = app.state.runtime()
        assert (await http.get("/readyz")).status_code == 200

        # The database stops answering (a client aimed at a port where nothing listens; the
        # shared test database stays up for the other tests).
        real = rt.client
        rt.client = AsyncMongoClient(
            f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=300
        )
        try:
            red = await http.get("/readyz")
        finally:
            await rt.client.close()
            rt.client = real
        assert red.status_code == 503
        assert red.json()["checks"]["mongo"] is False and red.json()["checks"]["kafka"] is True

        # The pipeline is waiting out a transient fault.
        rt.health.pipeline_ok, rt.health.last_error = False, "simulated outage"
        try:
            red = await http.get("/readyz")
        finally:
            rt.health.pipeline_ok, rt.health.last_error = True, None
        assert red.status_code == 503
        assert red.json()["checks"]["pipeline"] is False
        assert red.json()["last_error"] == "simulated outage"
        assert (await http.get("/readyz")).status_code == 200


class _FakeConsumer:
    def __init__(self, parts: dict[TopicPartition, tuple[int | None, int]]) -> None:
        self.parts = parts

    def assignment(self) -> set[TopicPartition]:
        return set(self.parts)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.parts[tp][0]

    async def position(self, tp: TopicPartition) -> int:
        return self.parts[tp][1]


async def test_consumer_lag_is_highwater_minus_position_and_follows_rebalances() -> None:
    svc = f"lag-{uuid.uuid4().hex[:6]}"
    a, b, c = (TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0))
    seen = await metrics.measure_consumer_lag(
        svc, _FakeConsumer({a: (10, 4), b: (None, 0), c: (3, 3)})
    )
    assert seen == {("t", 0), ("t", 1), ("u", 0)}
    assert metrics.CONSUMER_LAG.labels(svc, "t", "0")._value.get() == 6
    assert metrics.CONSUMER_LAG.labels(svc, "u", "0")._value.get() == 0

    # After a rebalance "t"/0 is gone: its gauge is removed, not left stale.
    seen = await metrics.measure_consumer_lag(svc, _FakeConsumer({c: (5, 3)}), seen)
    assert seen == {("u", 0)}
    names = {
        (s.labels["topic"], s.labels["partition"])
        for fam in metrics.CONSUMER_LAG.collect()
        for s in fam.samples
        if s.labels["service"] == svc
    }
    assert names == {("u", "0")}


async def test_tracing_is_off_by_default_and_spans_flow_when_enabled(
    stack, probe, publisher, monkeypatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vitrine.runtime.settings import Settings

    off = service.build_broker(CATALOG, Settings(service="catalog"))
    assert not _telemetry(off)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(service, "_tracer_provider", lambda name: provider)

    pid = f"p-{uuid.uuid4().hex[:8]}"
    async with running(CATALOG, stack, otel_enabled=True) as (app, _):
        assert _telemetry(app.state.broker)
        await publisher.send(
            "merchants.products", cloud_event("product.submitted", pid, _product(pid))
        )
        await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)
        deadline = time.monotonic() + 10
        while not exporter.get_finished_spans():
            assert time.monotonic() < deadline, "no span recorded"
            await asyncio.sleep(0.2)
    spans = exporter.get_finished_spans()
    attributes = [dict(s.attributes or {}) for s in spans]
    assert any(a.get("messaging.system") == "kafka" for a in attributes), attributes


def _telemetry(broker: Any) -> bool:
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    middlewares = broker.config.broker_middlewares
    return any(
        isinstance(m, KafkaTelemetryMiddleware)
        or getattr(m, "__self__", None).__class__ is KafkaTelemetryMiddleware
        for m in middlewares
    )
