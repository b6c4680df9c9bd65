"""Run services in-process against the test stack (their real Kafka and MongoDB clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette

from vitrine.runtime.messaging.unit_of_work import Clock, system_clock
from vitrine.runtime.service import ServiceDefinition, build_app
from vitrine.runtime.settings import Settings
from vitrine.tools.testing.stack import StackInfo


def test_settings(stack: StackInfo, service: str, **overrides: object) -> Settings:
    """Settings pointing a service at the test stack."""
    values: dict[str, object] = {
        "service": service,
        "kafka_bootstrap": stack.kafka_bootstrap,
        "mongo_url": stack.mongo_url,
        "kafka_standin": stack.kafka_standin,
        "log_format": "console",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@asynccontextmanager
async def running(
    defn: ServiceDefinition,
    stack: StackInfo,
    *,
    clock: Clock = system_clock,
    **overrides: object,
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """Start the service (lifespan: Mongo, relay, consumer) and yield it with an HTTP client."""
    app = build_app(defn, test_settings(stack, defn.name, **overrides), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield app, http
