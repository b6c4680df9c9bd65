"""The batch pipeline every service runs its input through (DESIGN.md §6).

For each consumed batch: decode and validate every record (invalid ones → DLQ), skip events
the inbox has seen, apply the rest in ONE MongoDB transaction together with their outbox
rows and inbox entries, publish dead letters, then return so the offset is committed.

- Transient faults (database or broker down) are retried with backoff for as long as they
  last: never skipped, readiness goes red meanwhile.
- Any other handler error is retried a few times; then the batch is re-run event by event
  so the one bad event goes to the DLQ as ``handler_error`` and the rest are applied.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import stamina
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Tracer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.contract.envelope import Event, InvalidEvent, decode, latest_accepted
from vitrine.contract.events.base import EventData
from vitrine.contract.topics import TOPICS
from vitrine.runtime import metrics, retries, tracing
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import inbox, outbox
from vitrine.runtime.messaging.dlq import dead_letter
from vitrine.runtime.messaging.producer import OutgoingRecord, send_all
from vitrine.runtime.messaging.unit_of_work import Clock, UnitOfWork, system_clock
from vitrine.runtime.mongo import Document, TransactionGuard

log = get_logger(__name__)

#: A service's handler for one or more input topics: applies a batch of their events, in order
#: (``BatchPipeline._calls``).
BatchHandler = Callable[[list[Event[Any]], UnitOfWork], Awaitable[None]]


class TransientError(Exception):
    """Raise from a handler to say "try again later" (e.g. a dependency is unavailable)."""


@dataclass
class Health:
    """What ``/readyz`` reports besides pings: is the pipeline currently able to commit?"""

    pipeline_ok: bool = True
    last_error: str | None = None
    stopping: bool = False


@dataclass
class BatchPipeline:
    """Applies consumed batches for one service; see the module docstring."""

    service: str
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    producer: AIOKafkaProducer
    handlers: dict[str, BatchHandler]
    relay: outbox.OutboxRelay | None = None
    clock: Clock = system_clock
    #: The clock events' ``time`` is checked against (``clock_skew``); real time by default.
    wall_clock: Clock = system_clock
    max_message_bytes: int = 256 * 1024
    max_attempts: int = 3
    health: Health = field(default_factory=Health)
    guard: TransactionGuard | None = None
    #: Per topic, the event types the handlers act on; others are skipped (see ServiceDefinition).
    acts_on: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Topics whose handler dedupes inside its aggregate: no inbox lookup or entry for them.
    dedupes_in_aggregate: frozenset[str] = frozenset()
    #: Spans per consumed record, parented to its ``traceparent`` (None: tracing off).
    tracer: Tracer | None = None
    _data_models: dict[str, dict[str, type[EventData]]] = field(default_factory=dict)
    #: Per event id of the batch being applied, the trace context its effects continue.
    _traces: dict[str, tracing.Carrier] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._data_models = {name: TOPICS[name].types for name in self.handlers}
        if self.guard is None:
            self.guard = TransactionGuard(self.client, self.db.name)

    async def process(self, records: Sequence[Any]) -> None:
        """Apply one batch of aiokafka ``ConsumerRecord``s; returns when effects are durable."""
        started = time.perf_counter()
        dead: list[OutgoingRecord] = []
        valid: list[tuple[Any, Event[Any]]] = []
        consumed: Counter[tuple[str, str]] = Counter()
        # The process's real clock, not ``self.clock`` (tests move that one): clock skew is
        # about the producer's clock against ours.
        latest = latest_accepted(self.wall_clock())
        for record in records:
            models = self._data_models.get(record.topic, {})
            decoded = decode(
                record.value, record.key, models, max_bytes=self.max_message_bytes, latest=latest
            )
            if isinstance(decoded, InvalidEvent):
                dead.append(self._dead(record, decoded.reason, decoded.error))
            else:
                consumed[record.topic, decoded.type] += 1
                wanted = self.acts_on.get(record.topic)
                if wanted is None or decoded.type in wanted:
                    valid.append((record, decoded))
        for (topic_name, type_name), n in consumed.items():  # per batch, not per event
            metrics.CONSUMED.labels(self.service, topic_name, type_name).inc(n)

        fresh = await self._retrying(lambda: self._unseen(valid))
        if fresh:
            with tracing.consume_spans(self.tracer, fresh) as self._traces:
                try:
                    await self._apply_with_retries(fresh)
                except _PermanentFailure:
                    dead += await self._apply_one_by_one(fresh)
            self._traces = {}
        if dead:
            await self._retrying(lambda: send_all(self.producer, dead))
        if self.relay is not None:
            self.relay.wake()
        metrics.BATCH_SIZE.labels(self.service).observe(len(records))
        metrics.HANDLER_SECONDS.labels(self.service).observe(time.perf_counter() - started)

    async def _unseen(self, valid: list[tuple[Any, Event[Any]]]) -> list[tuple[Any, Event[Any]]]:
        """Drop events already applied (inbox) or repeated within this batch."""
        done = await inbox.seen(
            self.db,
            (e.envelope.dedupe_key for r, e in valid if r.topic not in self.dedupes_in_aggregate),
        )
        fresh: list[tuple[Any, Event[Any]]] = []
        for record, event in valid:
            key = event.envelope.dedupe_key
            if key in done:
                metrics.DUPLICATES.labels(self.service, record.topic).inc()
                log.info("event.duplicate", type=event.type, subject=event.subject, id=event.id)
                continue
            done.add(key)
            fresh.append((record, event))
        return fresh

    async def _apply(self, items: list[tuple[Any, Event[Any]]]) -> None:
        """Run the handlers over ``items`` and commit state, outbox and inbox together."""
        assert self.guard is not None
        async with self.guard.transaction() as session:
            uow = UnitOfWork(self.db, session, self.service, self.clock)
            for handler, events in self._calls(items):
                started = time.perf_counter()
                await handler(events, uow)
                _log_handled(self.service, events, time.perf_counter() - started)
            traces = (
                [self._traces.get(e.causationid or "") for _, e in uow.emitted]
                if self._traces
                else None
            )  # each event continues the trace of the record that caused it
            await outbox.stage(self.db, session, uow.emitted, traces)
            await inbox.record(
                self.db,
                session,
                [
                    e.envelope.dedupe_key
                    for r, e in items
                    if r.topic not in self.dedupes_in_aggregate
                ],
            )
        if uow.duplicates:  # found by the handler, in the aggregate
            topics = {id(e): r.topic for r, e in items}
            for event in uow.duplicates:
                metrics.DUPLICATES.labels(self.service, topics.get(id(event), "")).inc()
                log.info("event.duplicate", type=event.type, subject=event.subject, id=event.id)

    def _calls(
        self, items: list[tuple[Any, Event[Any]]]
    ) -> list[tuple[BatchHandler, list[Event[Any]]]]:
        """The batch's events per handler: topic by topic in the order the service lists its
        handlers, each partition's order kept. Topics that share one handler come in one call
        (one load and one save for the batch, not one per topic: catalog's three inputs)."""
        by_topic: dict[str, list[Event[Any]]] = {}
        for record, event in items:
            by_topic.setdefault(record.topic, []).append(event)
        calls: dict[BatchHandler, list[Event[Any]]] = {}
        for topic_name, handler in self.handlers.items():
            if events := by_topic.get(topic_name):
                calls.setdefault(handler, []).extend(events)
        return list(calls.items())

    async def _apply_with_retries(self, items: list[tuple[Any, Event[Any]]]) -> None:
        """Apply ``items``; a handler error that is not transient is retried (with jittered
        backoff) up to ``max_attempts`` times in all, then raised as ``_PermanentFailure``."""

        def retry_handler_error(exc: Exception) -> bool:
            if isinstance(exc, _StoppingError):
                return False
            metrics.FAILED.labels(self.service, "handler").inc()
            log.warning("handler.retry", error=repr(exc)[:500])
            return True

        pending = items
        try:
            async for attempt in stamina.retry_context(
                on=retry_handler_error,
                attempts=self.max_attempts,
                timeout=None,
                wait_initial=0.05,
                wait_max=1.0,
                wait_jitter=0.05,
            ):
                with attempt:
                    if attempt.num > 1:
                        # Another replica may have applied some of them meanwhile (its
                        # transaction won: our inbox insert failed on their keys). Those are
                        # duplicates now, not errors.
                        pending = await self._retrying(functools.partial(self._unseen, pending))
                    if pending:
                        await self._retrying(functools.partial(self._apply, pending))
        except _StoppingError:
            raise
        except Exception as exc:
            raise _PermanentFailure(exc) from exc

    async def _apply_one_by_one(self, items: list[tuple[Any, Event[Any]]]) -> list[OutgoingRecord]:
        """Isolate the events that keep failing: apply each alone, dead-letter the bad ones."""
        dead: list[OutgoingRecord] = []
        for item in items:
            try:
                await self._apply_with_retries([item])
            except _PermanentFailure as failure:
                record, event = item
                log.error(
                    "handler.failed",
                    type=event.type,
                    subject=event.subject,
                    id=event.id,
                    error=repr(failure.cause)[:1000],
                )
                dead.append(self._dead(record, "handler_error", repr(failure.cause)))
        return dead

    async def _retrying(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work``, waiting out transient faults for as long as they last."""

        def waiting(exc: Exception) -> bool:
            if not (retries.is_transient(exc) or isinstance(exc, TransientError)):
                return False
            if self.health.stopping:  # shutting down: leave it for redelivery
                return False
            self.health.pipeline_ok = False
            self.health.last_error = repr(exc)[:300]
            metrics.FAILED.labels(self.service, "transient").inc()
            log.warning("pipeline.waiting", error=repr(exc)[:300])
            return True

        try:
            async for attempt in retries.forever(waiting):
                with attempt:
                    result = await work()
        except Exception as exc:
            if self.health.stopping and (
                retries.is_transient(exc) or isinstance(exc, TransientError)
            ):
                raise _StoppingError from exc
            raise
        self.health.pipeline_ok, self.health.last_error = True, None
        return result

    def _dead(self, record: Any, reason: str, error: str) -> OutgoingRecord:
        metrics.DEAD_LETTERED.labels(self.service, record.topic, reason).inc()
        log.warning(
            "event.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            error=error[:300],
        )
        return dead_letter(record, reason=reason, error=error, service=self.service)


class _StoppingError(Exception):
    """Raised instead of waiting when the service stops: the batch is not acked, so it is
    redelivered after the restart."""


class _PermanentFailure(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


def _log_handled(service: str, events: list[Event[Any]], seconds: float) -> None:
    """One line per event handled, with its correlation id (DESIGN.md §7)."""
    if not logging.getLogger().isEnabledFor(logging.INFO):
        return  # the per-event loop is measurable at 20k events; skip it when filtered anyway
    per_event_ms = round(seconds * 1000 / max(len(events), 1), 3)
    for event in events:
        log.info(
            "event.handled",
            correlationid=event.correlationid,
            type=event.type,
            subject=event.subject,
            id=event.id,
            outcome="applied",
            duration_ms=per_event_ms,
        )
