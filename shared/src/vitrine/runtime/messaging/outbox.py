"""Transactional outbox and its relay.

Events are staged in the same MongoDB transaction as the state change that caused them, as
one document per batch of up to ``EVENTS_PER_ROW`` events (one write instead of hundreds: on
nx-27017 the per-document cost dominates); the relay — the only thing that publishes a
service's events — sends rows in ``_id`` order with acks=all, then deletes them. A crash
between send and delete resends rows whose event ids consumers have already seen, so nothing
is lost and nothing looks new twice.
Unlike eShop's outbox, failed sends are retried until they succeed.

Where the relay gets rows: reading them back costs seconds on nx-27017 for a large batch, so
rows staged inside a ``TransactionGuard`` transaction are handed to the relay when it commits
(under the guard's lock, so the relay never also reads them from the database) and sent from
an in-memory queue. The database is read instead — only for rows older than that queue, so
nothing is sent twice — until it holds none ("catch-up"): at start (rows a previous process
left), after a failure, when the queue outgrows its bound (it is then dropped), and once per
idle poll as a safety net (rows staged outside a guard, or by another replica).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import time
import weakref
import zlib
from collections import Counter, deque
from collections.abc import Sequence

import stamina
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Tracer
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.contract.envelope import CONTENT_TYPE, CloudEvent
from vitrine.runtime import metrics, retries
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.producer import OutgoingRecord, send_all
from vitrine.runtime.mongo import Document, TransactionGuard
from vitrine.runtime.tracing import TRACE_HEADERS, Carrier, current_carrier, publish_spans

OUTBOX = "outbox"
log = get_logger(__name__)


class _Sequence:
    """Monotonic, sortable row ids: nanosecond clock, never going backwards in a process."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = itertools.count()

    def next(self) -> str:
        self._last = max(time.time_ns(), self._last + 1)
        return f"{self._last:020d}"


_ids = _Sequence()


def event_headers(event: CloudEvent) -> list[tuple[str, bytes]]:
    """Headers a tail can filter on without parsing the body (Eventuate's habit)."""
    return _headers(event.type, event.subject, event.id, event.correlationid or "")


def _headers(type_: str, subject: str, id_: str, correlationid: str) -> list[tuple[str, bytes]]:
    headers = [
        ("content-type", _CONTENT_TYPE),
        ("ce-type", type_.encode()),
        ("ce-subject", subject.encode()),
        ("ce-id", id_.encode()),
    ]
    if correlationid:
        headers.append(("ce-correlationid", correlationid.encode()))
    return headers


_CONTENT_TYPE = CONTENT_TYPE.encode()


#: Events per outbox document, and bytes of event JSON per document: far below MongoDB's
#: 16 MiB limit whatever the events' size.
EVENTS_PER_ROW = 500
BYTES_PER_ROW = 4 * 1024 * 1024


def _lines(topic: str, event: CloudEvent, trace: Carrier | None = None) -> tuple[str, str]:
    """An event as two lines: what the relay needs for the record's key and headers, and the
    record's value. Compact JSON never contains a raw newline, so ``\n`` separates them.

    The meta line is ``[topic, subject, type, id, correlationid]``, plus ``traceparent`` and
    ``tracestate`` when the event was staged inside a trace (rows without them stay as
    before, so rows staged by an earlier release read the same).
    """
    fields = [topic, event.subject, event.type, event.id, event.correlationid or ""]
    if trace and trace.get("traceparent"):
        fields += [trace["traceparent"], trace.get("tracestate", "")]
    return json.dumps(fields), event.to_json().decode()


def outbox_rows(
    events: Sequence[tuple[str, CloudEvent]],
    traces: Sequence[Carrier | None] | None = None,
) -> list[Document]:
    """Rows for ``(topic, event)`` pairs; ``_id`` orders rows in the order they were staged.
    ``traces`` (aligned with ``events``) gives each event's trace context, if any.

    A row keeps its events as ONE string (meta line, value line, …) rather than a list of
    sub-documents: nx-27017 converts every field of every sub-document, and measured with
    20,000 events the string form is ~10× cheaper to insert and ~20× cheaper to read back.
    These rows hold the text; :func:`stored` is what the database gets.
    """
    rows: list[Document] = []
    lines: list[str] = []
    size = 0
    for i, (topic, event) in enumerate(events):
        meta, value = _lines(topic, event, traces[i] if traces is not None else None)
        lines += (meta, value)
        size += len(meta) + len(value)
        if len(lines) >= 2 * EVENTS_PER_ROW or size >= BYTES_PER_ROW:
            rows.append(_row(lines))
            lines, size = [], 0
    if lines:
        rows.append(_row(lines))
    return rows


def _row(lines: list[str]) -> Document:
    return {"_id": _ids.next(), "n": len(lines) // 2, "events": "\n".join(lines)}


def stored(row: Document) -> Document:
    """``row`` as the database keeps it: its events' text zlib-compressed (level 1), ~17×
    smaller for catalog's events. On nx-27017 a 500-event row then costs ~5× less to insert
    and to delete (0.011 → 0.002 ms of its CPU per event, measured), for ~1 µs of ours per
    event; on mongod it is 17× less oplog and journal."""
    events = row["events"]
    if not isinstance(events, str):
        return row
    return {**row, "events": zlib.compress(events.encode(), 1)}


#: Rows staged per open transaction (session), taken by the relay when it commits. Weak: a
#: transaction that aborts leaves nothing behind once its session is gone.
_staged: weakref.WeakKeyDictionary[AsyncClientSession, list[tuple[str, Document]]] = (
    weakref.WeakKeyDictionary()
)
#: Rows handed over per transaction at most. A bulk transaction (a policy enforced on 50,000
#: items) would otherwise keep every row it staged in memory until it commits, only for the
#: relay to drop them (its memory queue holds far fewer): past this, the session is marked
#: overflowed and the relay reads those rows from the table instead (P4, PERFORMANCE.md).
HANDED_ROWS_MAX = 1_000
_overflowed: weakref.WeakSet[AsyncClientSession] = weakref.WeakSet()


async def stage(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    events: Sequence[tuple[str, CloudEvent]],
    traces: Sequence[Carrier | None] | None = None,
) -> None:
    """Write ``(topic, event)`` pairs to the outbox inside the caller's transaction.

    Each event keeps a trace context, sent as its ``traceparent`` header: ``traces`` (one
    per event) if given, else the caller's current span (none when tracing is off).
    """
    if not events:
        return
    if traces is None:
        current = current_carrier()
        traces = [current] * len(events) if current else None
    rows = outbox_rows(events, traces)
    await db[OUTBOX].insert_many([stored(row) for row in rows], session=session)
    if session.in_transaction:  # the relay gets the text: nothing to decompress
        if session in _overflowed:
            return
        handed = _staged.setdefault(session, [])
        if len(handed) + len(rows) > HANDED_ROWS_MAX:
            del _staged[session]
            _overflowed.add(session)
            return
        handed.extend((db.name, row) for row in rows)


def records(row: Document) -> list[OutgoingRecord]:
    """The Kafka records of one outbox row, in order."""
    stored = row["events"]
    if isinstance(stored, bytes):  # as the database keeps it (see ``stored``)
        stored = zlib.decompress(stored).decode()
    if not isinstance(stored, str):  # rows staged by a release before the string form
        return [
            OutgoingRecord(
                e["topic"],
                e["key"].encode(),
                bytes(e["value"]),
                [(k, bytes(v)) for k, v in e["headers"]],
            )
            for e in stored
        ]
    lines = stored.split("\n")
    out: list[OutgoingRecord] = []
    for i in range(0, len(lines), 2):
        topic, key, type_, id_, correlationid, *trace = json.loads(lines[i])
        headers = _headers(type_, key, id_, correlationid)
        if trace:
            headers += [(k, v.encode()) for k, v in zip(TRACE_HEADERS, trace, strict=False) if v]
        out.append(OutgoingRecord(topic, key.encode(), lines[i + 1].encode(), headers))
    return out


class OutboxRelay:
    """Publishes outbox rows in ``_id`` order; see the module docstring for where rows come from."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        producer: AIOKafkaProducer,
        *,
        service: str,
        batch_size: int = 20,
        # Rows committed under the guard wake the relay at once; the idle read of the table
        # only finds rows staged outside it or left by a dead replica. Each read is a query on
        # an idle database: once every 5 s, not every second (idle CPU, docs/PERFORMANCE.md).
        idle_poll_seconds: float = 5.0,
        guard: TransactionGuard | None = None,
        memory_rows: int = 200,
        memory_bytes: int = 32 * 1024 * 1024,
        tracer: Tracer | None = None,
    ) -> None:
        self._db = db
        self._tracer = tracer
        self._producer = producer
        self._service = service
        self._batch_size = batch_size
        self._idle = idle_poll_seconds
        self._memory_rows = memory_rows
        self._memory_bytes = memory_bytes
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        # Shared with the service's transactions: never read rows of an uncommitted batch.
        self._lock = guard.lock if guard is not None else asyncio.Lock()
        # One drain at a time (``flush`` may overlap the loop's last drain).
        self._draining = asyncio.Lock()
        #: Rows handed over at commit, not yet sent, in ``_id`` order.
        self._memory: deque[Document] = deque()
        #: The database holds no row older than the memory queue that this relay was not
        #: handed; False at start, after a failure or an overflow: read the database first.
        self._caught_up = False
        self._next_check = 0.0
        self._stopping = False
        self.healthy = True
        if guard is not None:
            guard.after_commit(self._committed)

    def wake(self) -> None:
        """Something was staged: publish now rather than at the next poll."""
        self._wake.set()

    def queued(self) -> int:
        """Rows held in memory, waiting to be sent (for tests and operators)."""
        return len(self._memory)

    def _committed(self, session: AsyncClientSession) -> None:
        """Guard listener: take the rows ``session`` staged (its transaction just committed)."""
        if session in _overflowed:  # too many to hand over: the relay reads the table
            _overflowed.discard(session)
            self._fall_back()
            self._wake.set()
            return
        rows = [row for name, row in _staged.pop(session, ()) if name == self._db.name]
        if not rows:
            return
        for row in rows:
            self._queued_bytes += _size(row)
            if self._memory and self._memory[-1]["_id"] > row["_id"]:
                bisect.insort(self._memory, row, key=_row_id)  # a safeguard: ids grow
            else:
                self._memory.append(row)
        if (
            len(self._memory) > self._memory_rows or self._queued_bytes > self._memory_bytes
        ):  # they are in the database anyway
            self._fall_back()
        self._wake.set()

    def _fall_back(self) -> None:
        """Forget the memory queue; the next drains read the database until caught up."""
        self._memory.clear()
        self._queued_bytes = 0
        self._caught_up = False

    async def drain_once(self) -> int:
        """Publish the oldest rows (up to ``batch_size`` rows); returns how many events."""
        async with self._draining:
            try:
                return await self._drain()
            except BaseException:
                self._fall_back()  # the rows are still in the database
                raise

    async def _drain(self) -> int:
        loop = asyncio.get_running_loop()
        from_db = False
        async with self._lock:
            rows: list[Document] = []
            if (
                not self._caught_up
                or loop.time() >= self._next_check
                or (self._stopping and not self._memory)
            ):
                # Only rows older than the memory queue: the queued ones are sent from memory.
                query = {"_id": {"$lt": self._memory[0]["_id"]}} if self._memory else {}
                rows = await self._db[OUTBOX].find(query).sort("_id", 1).to_list(self._batch_size)
                from_db = bool(rows)
                self._caught_up = not rows
                if self._caught_up:
                    self._next_check = loop.time() + self._idle
            if not rows:
                while self._memory and len(rows) < self._batch_size:
                    rows.append(self._memory.popleft())
                    self._queued_bytes -= _size(rows[-1])
        if not rows:
            metrics.OUTBOX_BACKLOG.labels(self._service).set(0)
            return 0
        outgoing = [record for row in rows for record in records(row)]
        with publish_spans(self._tracer, outgoing) as traced:
            await send_all(self._producer, traced)
        async with self._lock:
            await self._db[OUTBOX].delete_many({"_id": {"$in": [r["_id"] for r in rows]}})
        published = Counter((r.topic, _type(r)) for r in outgoing)
        for (topic, type_name), n in published.items():
            metrics.PUBLISHED.labels(self._service, topic, type_name).inc(n)
        if not from_db:
            metrics.OUTBOX_BACKLOG.labels(self._service).set(len(self._memory))
        elif len(rows) == self._batch_size:
            metrics.OUTBOX_BACKLOG.labels(self._service).set(
                await self._db[OUTBOX].estimated_document_count()
            )
        return len(outgoing)

    async def run(self) -> None:
        """Relay forever; on errors (broker or database down) wait and retry, never skip."""
        while not self._stopping:
            self._wake.clear()  # before reading: a commit during the drain re-arms it
            published = await self._drain_retrying(timeout=None)
            self.healthy = True
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle)

    async def _drain_retrying(self, timeout: float | None) -> int:
        """``drain_once``, retried with jittered backoff on any failure (the rows stay and are
        sent again); gives up after ``timeout`` seconds if given."""

        def retry(exc: Exception) -> bool:
            self.healthy = False
            log.warning("outbox.relay_retry", error=repr(exc)[:300])
            return True

        async for attempt in stamina.retry_context(
            on=retry, attempts=None, timeout=timeout, **retries.BACKOFF
        ):
            with attempt:
                return await self.drain_once()
        raise AssertionError("unreachable")

    async def flush(self, timeout: float = 10.0) -> None:
        """Publish everything staged so far (graceful shutdown), then stop the loop."""
        self._stopping = True  # from now on, an empty memory queue is confirmed in the database
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(Exception):  # given up: logged below
            while (left := deadline - loop.time()) > 0:
                if await self._drain_retrying(timeout=left) == 0:
                    return
        log.warning("outbox.flush_incomplete", note="rows stay in the outbox for next start")


def _type(record: OutgoingRecord) -> str:
    return next((v.decode() for k, v in record.headers if k == "ce-type"), "")


def _row_id(row: Document) -> str:
    return str(row["_id"])


def _size(row: Document) -> int:
    """Roughly the memory a queued row holds (its events' text)."""
    events = row["events"]
    return len(events) if isinstance(events, str | bytes) else 1024 * len(events)


async def pending(db: AsyncDatabase[Document]) -> list[OutgoingRecord]:
    """Records not yet published, in order (for tests and operators)."""
    rows = await db[OUTBOX].find({}).sort("_id", 1).to_list(None)
    return [record for row in rows for record in records(row)]
