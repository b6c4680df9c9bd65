"""One way to build and run every service: the same shape in all five.

A service declares a :class:`ServiceDefinition` (its input handlers, its indexes, its
read-only HTTP routes, background tasks); :func:`build_app` wires it to Kafka (FastStream
batch subscriber, at-least-once), MongoDB, the outbox relay, health, metrics and AsyncAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import logging
import operator
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import uvicorn
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.subscriber.specification import KafkaSubscriberSpecification
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field, ValidationError, create_model
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.contract.envelope import CONTENT_TYPE, CloudEvent
from vitrine.contract.events.base import EventData
from vitrine.contract.topics import DLQ_SUFFIX, TOPICS
from vitrine.runtime import asyncapi, metrics, mongo, retries
from vitrine.runtime.logging import configure_logging, get_logger, library_logger
from vitrine.runtime.messaging import inbox
from vitrine.runtime.messaging.commits import SettleOnRevoke, commit_in_background
from vitrine.runtime.messaging.outbox import OutboxRelay
from vitrine.runtime.messaging.pipeline import BatchHandler, BatchPipeline, Health
from vitrine.runtime.messaging.producer import make_producer
from vitrine.runtime.messaging.subscriber import wait_in_poll
from vitrine.runtime.messaging.unit_of_work import Clock, system_clock
from vitrine.runtime.mongo import Document
from vitrine.runtime.settings import Settings

log = get_logger(__name__)

#: Seconds uvicorn gives open HTTP connections after SIGTERM, before the lifespan shutdown.
HTTP_GRACEFUL_SECONDS = 30
#: FastStream's own batch poll timeout (and nap after an empty poll), with ``poll_wait_ms=0``.
FASTSTREAM_BATCH_TIMEOUT_MS = 200
#: Upper bound of each step of the graceful shutdown (see ``build_app``'s lifespan).
SHUTDOWN_STEP_SECONDS = {
    "consumer": 35.0,
    "outbox": 12.0,
    "tasks": 5.0,
    "producer": 10.0,
    "mongo": 5.0,
}
#: The longest a service takes to stop after SIGTERM: an orchestrator's grace period must
#: exceed it (deploy/k8s sets 120 s = 5 s preStop + this 97 s + margin).
SHUTDOWN_SECONDS = HTTP_GRACEFUL_SECONDS + sum(SHUTDOWN_STEP_SECONDS.values())


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
    #: Background tasks that write use ``guard.transaction()`` so they take turns with batches.
    guard: mongo.TransactionGuard


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
    #: Per input topic, the only event types the service acts on (default: all). Valid events
    #: of other types are acknowledged without a transaction or an inbox entry: they change
    #: nothing, so redelivering them is harmless and recording them would be wasted writes.
    acts_on: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    #: Input topics whose handler dedupes inside the aggregate it writes (see
    #: ``vitrine.runtime.messaging.inbox.with_applied``): no inbox lookup or entry for their events.
    dedupes_in_aggregate: frozenset[str] = frozenset()


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
        middlewares=_telemetry_middlewares(defn.name, settings),
        # FastStream's own per-batch "Received/Processed" lines: debug only; the pipeline logs
        # one structured line per event instead. Its other lines go through our handler.
        log_level=logging.DEBUG,
        logger=library_logger(),
    )
    # Publishers are declared for the AsyncAPI document only: the outbox relay does the
    # sending. Each names the CloudEvents types on its topic (one schema per type).
    for name in defn.publishes:
        topic = TOPICS[name]
        broker.publisher(
            name,
            title=f"{name}:publish",
            description=f"{topic.description}. Key: {topic.key} (== the event's subject). "
            f"Types: {', '.join(topic.types)}.",
            schema=message_schema(name),
            include_in_schema=True,
        )
    for name in defn.handlers:
        broker.publisher(
            name + DLQ_SUFFIX,
            title=f"{name}{DLQ_SUFFIX}:publish",
            description=f"Dead letters of {name} that {defn.name} cannot process: the original "
            "key, value and headers unchanged, plus headers dlq-reason, dlq-error, "
            "dlq-service, dlq-topic, dlq-partition, dlq-offset, dlq-time.",
            include_in_schema=True,
        )
    return broker


@functools.cache
def _envelope_model(type_name: str, data_model: type[EventData]) -> type[CloudEvent]:
    """The CloudEvent carrying ``type_name`` with its typed ``data`` (documentation only)."""
    literal: Any = Literal[type_name]  # a runtime Literal: mypy cannot check it statically
    return create_model(
        f"{data_model.__name__}Event",
        __base__=CloudEvent,
        __doc__=f"CloudEvent of type `{type_name}`; `data` is {data_model.__name__}.",
        type=(literal, ...),
        data=(data_model, ...),
    )


def message_schema(topic: str) -> Any:
    """What a message on ``topic`` is: one CloudEvent per allowed type, told apart by ``type``.

    Used as the AsyncAPI payload of the topic's channel (never to validate: that is
    :func:`vitrine.contract.envelope.decode`).
    """
    models = [_envelope_model(t, model) for t, model in TOPICS[topic].types.items()]
    if len(models) == 1:
        return models[0]
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="type")]


class _InputsSpecification(KafkaSubscriberSpecification):
    """The subscriber's AsyncAPI entry, with each input topic's own message schema.

    FastStream documents one payload (the handler's signature) for every topic of a
    subscriber; the pipeline takes raw records, so the payload is filled in per topic here.
    """

    __slots__ = ()

    def get_schema(self) -> dict[str, Any]:
        from faststream.specification.asyncapi.message import get_model_schema

        channels = super().get_schema()
        for key, channel in channels.items():
            topic = channel.address
            if topic not in TOPICS:
                continue
            body = get_model_schema(
                create_model("", response__=(message_schema(topic), ...)),
                prefix=f"{key}:Message",
            )
            channel.operation.message.payload = body or {}
            channel.description = (
                f"{TOPICS[topic].description}. Key: {TOPICS[topic].key}. "
                f"Types: {', '.join(TOPICS[topic].types)}. {self.description or ''}"
            ).strip()
        return channels


def _document_inputs(subscriber: Any) -> None:
    spec = subscriber.specification
    subscriber.specification = _InputsSpecification(spec._outer_config, spec.config, spec.calls)


def _telemetry_middlewares(service: str, settings: Settings) -> list[Any]:
    """FastStream's OpenTelemetry middleware when ``VITRINE_OTEL_ENABLED=true`` (off by default)."""
    if not settings.otel_enabled:
        return []
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return [KafkaTelemetryMiddleware(tracer_provider=_tracer_provider(service))]


def _tracer(service: str, settings: Settings) -> Any:
    """The tracer of per-record and outbox spans (None when tracing is off)."""
    if not settings.otel_enabled:
        return None
    return _tracer_provider(service).get_tracer("vitrine.runtime")


@functools.cache
def _tracer_provider(service: str) -> Any:
    """The process's tracer provider if one is configured (``opentelemetry-instrument``),
    else an SDK provider exporting as ``OTEL_TRACES_EXPORTER`` says: ``otlp`` (the default:
    OTLP over HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``, default http://localhost:4318),
    ``console`` or ``none``. One per process and service (the broker and the pipeline share it)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": f"vitrine-{service}"}))
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip()
    exporter: Any = None
    if kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "otel.no_exporter",
                note="tracing on, but opentelemetry-exporter-otlp is not installed",
            )
        else:
            exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


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


#: The collector's first threshold: container allocations (net) between two young passes.
#: Python's 700 makes a service applying 500-event batches run ~10 young passes per batch.
GC_YOUNG_THRESHOLD = 100_000


def freeze_startup_heap() -> None:
    """Move everything alive once the service has started (modules, classes, schemas,
    clients: ~100,000 objects) out of the cyclic garbage collector's reach, and collect the
    young generation less often.

    The collector's full passes walk every tracked object: with the start-up heap in them, a
    service applying batches spent ~20 % of its CPU there (P1, docs/PERFORMANCE.md). Frozen
    objects are never collected, which is what they are: they live as long as the process.
    Called by :func:`run` (the process), never by an app started inside a test process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


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

    subscriber = broker.subscriber(
        # Topics come from the registry (`vitrine topics ensure`), with their partitions:
        # FastStream must not create a missing one with its defaults (nor may a service
        # principal, under the broker's ACLs).
        *(Topic(name, declare=False) for name in defn.handlers),
        batch=True,
        group_id=settings.group,
        # A new group reads its inputs from the start: a service deployed after its upstream
        # must still see every event published before it first joined.
        auto_offset_reset="earliest",
        max_records=settings.batch_max_records,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        consumer_timeout_ms=settings.consumer_timeout_ms,
        batch_timeout_ms=settings.poll_wait_ms or FASTSTREAM_BATCH_TIMEOUT_MS,
        ack_policy=AckPolicy.NACK_ON_ERROR,  # commit only after the batch is durable
        listener=SettleOnRevoke(lambda: subscriber.consumer),
        parser=safe_parser,
        decoder=raw_decoder,
        title=f"{defn.name}:consume",
        description=f"Consumer group {defn.name} applies these in batches, at least once; "
        "records that are not valid events go to the topic's .dlq.",
    )
    if settings.poll_wait_ms:
        subscriber = wait_in_poll(
            subscriber,
            gather_ms=settings.poll_gather,
            idle_fetch_wait_ms=settings.idle_fetch_wait,
        )
        if settings.commit_in_background:  # settled at stop by the subscriber above
            commit_in_background(subscriber, defn.name)
    _document_inputs(subscriber)

    @subscriber
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
        guard = mongo.TransactionGuard(client, settings.database, instance=settings.instance)
        await _wait_for("mongo (recovery, setup)", lambda: _recover_and_setup(guard, db, defn))
        await _wait_for("kafka", lambda: _kafka_preflight(settings))
        producer = make_producer(settings)
        await _wait_for("kafka", producer.start)
        tracer = _tracer(defn.name, settings)
        relay = OutboxRelay(db, producer, service=defn.name, guard=guard, tracer=tracer)
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
            guard=guard,
            acts_on=defn.acts_on,
            dedupes_in_aggregate=defn.dedupes_in_aggregate,
            tracer=tracer,
        )
        holder["runtime"] = rt = Runtime(
            settings, client, db, producer, broker, relay, pipeline, clock, health, guard
        )
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
        tasks += [asyncio.create_task(task(rt), name=task.__name__) for task in defn.background]
        await _wait_for("kafka consumer", broker.start)
        tasks.append(
            asyncio.create_task(
                metrics.report_consumer_lag(defn.name, lambda: subscriber.consumer),
                name="consumer-lag",
            )
        )
        log.info("service.started", port=settings.port, inputs=list(defn.handlers))
        try:
            yield
        finally:
            # Graceful: stop consuming (in-flight batch finishes), flush the outbox, close.
            # Every step is bounded: a dependency that is down must not hang the shutdown
            # (what is not flushed stays in the outbox, what is not committed is redelivered).
            health.stopping = True
            log.info("service.stopping")
            bounds = SHUTDOWN_STEP_SECONDS
            await _bounded("consumer", broker.stop(), bounds["consumer"])
            for task in tasks[1:]:
                task.cancel()
            await _bounded("outbox", relay.flush(), bounds["outbox"])
            tasks[0].cancel()
            await _bounded("tasks", asyncio.gather(*tasks, return_exceptions=True), bounds["tasks"])
            await _bounded("producer", producer.stop(), bounds["producer"])
            await _bounded("mongo", client.close(), bounds["mongo"])
            log.info("service.stopped")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive", "service": defn.name})

    async def readyz(_: Request) -> Response:
        rt = runtime()
        # Both bounded to 1 s and asked at once: the probe answers within a probe's default
        # timeout even while a dependency is down.
        mongo_ok, kafka_ok = await asyncio.gather(mongo.ping(rt.client), _kafka_ok(rt.broker))
        checks = {
            "mongo": mongo_ok,
            "kafka": kafka_ok,
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

    @functools.cache
    def asyncapi_document() -> dict[str, Any]:
        generated = json.loads(spec.to_specification().to_json())
        return asyncapi.describe(
            generated, service=defn.name, inputs=list(defn.handlers), publishes=defn.publishes
        )

    async def asyncapi_json(_: Request) -> Response:
        return JSONResponse(asyncapi_document())

    async def asyncapi_html(_: Request) -> Response:
        return HTMLResponse(asyncapi.page(asyncapi_document()))

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
    app.state.asyncapi_document = asyncapi_document
    app.state.runtime = runtime
    return app


async def _recover_and_setup(
    guard: mongo.TransactionGuard, db: AsyncDatabase[Document], defn: ServiceDefinition
) -> None:
    if await guard.recover():
        log.warning("mongo.orphan_transaction_rolled_back", journal=str(guard.journal))
    log.info("mongo.profile", server=guard.profile.name)
    await inbox.setup_inbox(db)
    # Collections must exist before a transaction first reads them (nx-27017).
    existing = set(await db.list_collection_names())
    for name in ("outbox",):
        if name not in existing:
            await db.create_collection(name)
    if defn.setup is not None:
        await defn.setup(db)


async def _bounded(step: str, work: Awaitable[Any], seconds: float) -> None:
    """Run one shutdown step, giving up (with a log line) after ``seconds``."""
    try:
        await asyncio.wait_for(work, seconds)
    except TimeoutError:
        log.warning("service.stop_step_timed_out", step=step, seconds=seconds)
    except Exception as exc:
        log.warning("service.stop_step_failed", step=step, error=repr(exc)[:300])


class StartupError(Exception):
    """A service cannot start and waiting will not help (credentials, a bug, a bad setting)."""


async def _wait_for(what: str, start: Callable[[], Awaitable[Any]]) -> None:
    """Start a dependency, waiting out transient faults (with a log line per retry); fail
    fast with :class:`StartupError` on anything else."""

    def waiting(exc: Exception) -> bool:
        if not retries.is_transient(exc):
            return False
        log.warning("dependency.waiting", dependency=what, error=repr(exc)[:200])
        return True

    try:
        async for attempt in retries.forever(waiting):
            with attempt:
                await start()
    except Exception as exc:
        reason = f"{what}: {type(exc).__name__}: {exc}"[:500]
        log.error("service.startup_failed", dependency=what, error=reason)
        raise StartupError(reason) from exc


async def _kafka_preflight(settings: Settings) -> None:
    """Open one connection the way the clients will, SASL handshake included.

    aiokafka's clients report every bootstrap failure as "Unable to bootstrap" (transient);
    a direct connection raises what really happened, e.g. SaslAuthenticationFailedError.
    """
    from aiokafka.conn import create_conn

    args = settings.kafka_client_args()
    failures: list[Exception] = []
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await create_conn(
                host.strip("[]"),
                int(port),
                client_id=f"vitrine-{settings.service}",
                request_timeout_ms=10000,
                ssl_context=args.get("ssl_context"),
                security_protocol=args["security_protocol"],
                sasl_mechanism=args.get("sasl_mechanism", "PLAIN"),
                sasl_plain_username=args.get("sasl_plain_username"),
                sasl_plain_password=args.get("sasl_plain_password"),
            )
        except Exception as exc:
            if not retries.is_transient(exc):
                raise
            failures.append(exc)
            continue
        conn.close()
        return
    raise failures[-1]


async def _kafka_ok(broker: KafkaBroker) -> bool:
    try:
        return bool(await broker.ping(timeout=1.0))
    except Exception:
        return False


def run(defn: ServiceDefinition) -> None:
    """Entry point of ``python -m vitrine_<service>``: serve until SIGINT/SIGTERM.

    A setting that is not valid, or a dependency that refuses the service for good (see
    :mod:`vitrine.runtime.retries`), ends the process at start-up with one error line.
    """
    try:
        settings = Settings(service=defn.name)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        configure_logging(defn.name)
        log.error(
            "service.startup_failed",
            error=f"invalid setting VITRINE_{where.upper()}: {first['msg']}",
        )
        raise SystemExit(2) from None
    configure_logging(defn.name, settings.log_format, settings.log_level)
    app = build_app(defn, settings)
    # uvicorn echoes the lifespan's traceback; a StartupError has been said in one line.
    logging.getLogger("uvicorn.error").addFilter(_NoStartupErrorEcho())
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=HTTP_GRACEFUL_SECONDS,
    )
    server = _SecondTickServer(config, on_started=freeze_startup_heap)
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn.run's exit code for a start-up failure


class _SecondTickServer(uvicorn.Server):
    """uvicorn's server with its housekeeping tick once a second instead of every 0.1 s.

    The tick only refreshes the ``Date`` header (once a second anyway) and notices a shutdown
    request; ten wake-ups a second cost an idle service ~0.14 % of a core (measured,
    docs/PERFORMANCE.md "Idle"). A SIGTERM is now noticed within 1 s instead of 0.1 s.
    ``on_started`` runs once, when the app has started and before the first tick.
    """

    def __init__(
        self, config: uvicorn.Config, on_started: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def main_loop(self) -> None:
        if self._on_started is not None:  # uvicorn runs the loop once the lifespan started
            self._on_started()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # on_tick refreshes the header when % 10 == 0
            await asyncio.sleep(1.0)
            should_exit = await self.on_tick(counter)


class _NoStartupErrorEcho(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "StartupError" not in record.getMessage()


__all__ = [
    "CONTENT_TYPE",
    "SHUTDOWN_SECONDS",
    "Runtime",
    "ServiceDefinition",
    "StartupError",
    "build_app",
    "run",
]
