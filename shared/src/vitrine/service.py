"""One way to build and run every service: the same shape in all five.

A service declares a :class:`ServiceDefinition` (its input handlers, its indexes, its
read-only HTTP routes, background tasks); :func:`build_app` wires it to Kafka (FastStream
batch subscriber, at-least-once), MongoDB, the outbox relay, health, metrics and AsyncAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine import metrics, mongo
from vitrine.envelope import CONTENT_TYPE
from vitrine.logging import configure_logging, get_logger
from vitrine.messaging import inbox
from vitrine.messaging.outbox import OutboxRelay
from vitrine.messaging.pipeline import BatchHandler, BatchPipeline, Health
from vitrine.messaging.producer import make_producer
from vitrine.messaging.unit_of_work import Clock, system_clock
from vitrine.mongo import Document
from vitrine.settings import Settings
from vitrine.topics import TOPICS

log = get_logger(__name__)


@dataclass
class Runtime:
    """Everything a running service holds; handed to routes and background tasks."""

    settings: Settings
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    producer: AIOKafkaProducer
    broker: KafkaBroker
    relay: OutboxRelay
    pipeline: BatchPipeline
    clock: Clock
    health: Health


@dataclass
class ServiceDefinition:
    """What makes a service itself; everything else is shared."""

    name: str
    description: str
    handlers: dict[str, BatchHandler]
    publishes: Sequence[str] = ()
    setup: Callable[[AsyncDatabase[Document]], Awaitable[None]] | None = None
    routes: Callable[[Callable[[], Runtime]], list[BaseRoute]] | None = None
    background: Sequence[Callable[[Runtime], Coroutine[Any, Any, None]]] = ()


def build_broker(defn: ServiceDefinition, settings: Settings) -> KafkaBroker:
    """The FastStream broker with one batch subscriber over all of the service's inputs.

    One consumer group per service, one subscriber: a service applies its inputs one batch
    at a time, so its own writes never race each other inside one process.
    """
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"vitrine-{defn.name}",
        graceful_timeout=30.0,
        security=settings.faststream_security(),
    )
    for name in defn.publishes:  # documented in AsyncAPI; the outbox relay does the sending
        topic = TOPICS[name]
        broker.publisher(
            name, title=f"{name}:publish", description=topic.description, include_in_schema=True
        )
    return broker


def _safe_records(records: tuple[Any, ...]) -> tuple[Any, ...]:
    """Records whose headers are valid UTF-8, so FastStream's parser cannot crash on them."""

    def clean(record: Any) -> Any:
        try:
            for _, value in record.headers:
                value.decode()
        except (UnicodeDecodeError, AttributeError):
            headers = tuple((k, v if _utf8(v) else b"<binary>") for k, v in record.headers)
            return dataclasses.replace(record, headers=headers)
        return record

    return tuple(clean(r) for r in records)


def _utf8(value: Any) -> bool:
    try:
        value.decode()
    except (UnicodeDecodeError, AttributeError):
        return False
    return True


def build_app(
    defn: ServiceDefinition,
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
) -> Starlette:
    """The service as an ASGI app: consuming, relaying and serving HTTP between start and stop."""
    settings = settings or Settings(service=defn.name)
    broker = build_broker(defn, settings)
    holder: dict[str, Runtime] = {}

    def runtime() -> Runtime:
        return holder["runtime"]

    async def safe_parser(records: tuple[Any, ...], original: Any) -> Any:
        message = await original(_safe_records(records))
        message.raw_message = records  # the DLQ keeps the original bytes and headers
        return message

    async def raw_decoder(message: Any) -> Any:
        return message.raw_message

    @broker.subscriber(
        *defn.handlers,
        batch=True,
        group_id=defn.name,
        auto_offset_reset="earliest",  # Tansu's "latest" is wrong; new groups read all
        max_records=settings.batch_max_records,
        ack_policy=AckPolicy.NACK_ON_ERROR,  # commit only after the batch is durable
        parser=safe_parser,
        decoder=raw_decoder,
        title=f"{defn.name}:consume",
    )
    async def consume(records: Any) -> None:
        await runtime().pipeline.process(records)

    spec = AsyncAPI(
        broker,
        title=f"vitrine-{defn.name}",
        version="1.0.0",
        description=defn.description,
        schema_version="3.0.0",
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        configure_logging(defn.name, settings.log_format, settings.log_level)
        client = mongo.connect(settings.mongo_url, app_name=f"vitrine-{defn.name}")
        db = mongo.database(client, settings.database)
        await _wait_for("mongo", lambda: _setup_db(db, defn))
        producer = make_producer(settings)
        await _wait_for("kafka", producer.start)
        relay = OutboxRelay(db, producer, service=defn.name)
        health = Health()
        pipeline = BatchPipeline(
            service=defn.name,
            client=client,
            db=db,
            producer=producer,
            handlers=defn.handlers,
            relay=relay,
            clock=clock,
            max_message_bytes=settings.max_message_bytes,
            max_attempts=settings.handler_max_attempts,
            health=health,
        )
        holder["runtime"] = rt = Runtime(
            settings, client, db, producer, broker, relay, pipeline, clock, health
        )
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
        tasks += [asyncio.create_task(task(rt), name=task.__name__) for task in defn.background]
        await _wait_for("kafka consumer", broker.start)
        log.info("service.started", port=settings.port, inputs=list(defn.handlers))
        try:
            yield
        finally:
            # Graceful: stop consuming (in-flight batch finishes), flush the outbox, close.
            health.stopping = True
            log.info("service.stopping")
            await broker.stop()
            for task in tasks[1:]:
                task.cancel()
            await relay.flush()
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await client.close()
            log.info("service.stopped")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive", "service": defn.name})

    async def readyz(_: Request) -> Response:
        rt = runtime()
        checks = {
            "mongo": await mongo.ping(rt.client),
            "kafka": await _kafka_ok(rt.broker),
            "pipeline": rt.health.pipeline_ok,
            "outbox_relay": rt.relay.healthy,
            "not_stopping": not rt.health.stopping,
        }
        ready = all(checks.values())
        metrics.READY.labels(defn.name).set(1 if ready else 0)
        body = {"ready": ready, "checks": checks, "last_error": rt.health.last_error}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def asyncapi_json(_: Request) -> Response:
        return Response(spec.to_specification().to_json(), media_type="application/json")

    async def asyncapi_html(_: Request) -> Response:
        return HTMLResponse(get_asyncapi_html(spec.to_specification()))

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/asyncapi.json", asyncapi_json),
        Route("/asyncapi", asyncapi_html),
    ]
    if defn.routes is not None:
        routes += defn.routes(runtime)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.definition = defn
    app.state.broker = broker
    app.state.specification = spec
    app.state.runtime = runtime
    return app


async def _setup_db(db: AsyncDatabase[Document], defn: ServiceDefinition) -> None:
    await inbox.setup_inbox(db)
    if defn.setup is not None:
        await defn.setup(db)


async def _wait_for(what: str, start: Callable[[], Awaitable[Any]]) -> None:
    """Start a dependency, waiting (with a log line) until it answers."""
    delay = 0.2
    while True:
        try:
            await start()
            return
        except Exception as exc:
            log.warning("dependency.waiting", dependency=what, error=repr(exc)[:200])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _kafka_ok(broker: KafkaBroker) -> bool:
    try:
        return bool(await broker.ping(timeout=2.0))
    except Exception:
        return False


def run(defn: ServiceDefinition) -> None:
    """Entry point of ``python -m vitrine_<service>``: serve until SIGINT/SIGTERM."""
    settings = Settings(service=defn.name)
    configure_logging(defn.name, settings.log_format, settings.log_level)
    app = build_app(defn, settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


__all__ = ["CONTENT_TYPE", "Runtime", "ServiceDefinition", "build_app", "run"]
