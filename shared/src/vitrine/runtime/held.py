"""Inputs held until what they answer arrives (DESIGN.md §6 event time; docs/DECISIONS.md
"Event time, bounded waits and replays").

A service that consumes two topics reads them in whatever interleaving the broker gives it; a
replay from the beginning reads them in another one. An input that answers something not
consumed yet (review's verdict before catalog's submission, a reviewer's verdict before
review's escalation) is therefore *held* — stored with its envelope, not answered — and applied
when what it answers arrives, caused by its own envelope, so its outputs carry the ids an
in-order consumer mints. The wait ends in event time: when the awaited topic's watermark (the
latest event ``time`` consumed from it) passes the held input's ``time`` + the wait, the input
is given up as a stale one would be.

One store per service: a collection of held inputs (``_id`` = dedupe key; the aggregate they
wait on, their ``time``, envelope and data) and a ``watermarks`` document for the awaited topic
(``ms``: epoch milliseconds — nx-27017 stores a ``$max``-upserted date as a string — and
``held``: how many inputs are held, so a batch of the awaited topic looks for none when there
are none).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING, DeleteOne, ReplaceOne, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from vitrine.contract.envelope import CloudEvent, Event
from vitrine.contract.events import EVENT_TYPES_BY_TOPIC
from vitrine.runtime.mongo import Document

WATERMARKS = "watermarks"


@dataclass(frozen=True)
class Watermark:
    """The awaited topic's event-time clock and how many inputs wait on it."""

    time: datetime | None
    held: int = 0


@dataclass(frozen=True)
class Held:
    """One input to hold: the event and the aggregate (product id) it waits on."""

    event: Event[Any]
    topic: str
    aggregate: str


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def held_document(held: Held, seq: int) -> Document:
    """A held input: what rebuilds it with the same envelope (ids and causation), its wait."""
    envelope = held.event.envelope
    return {
        "_id": envelope.dedupe_key,
        "aggregate": held.aggregate,
        "topic": held.topic,
        "time": envelope.time,
        "seq": seq,
        "event": envelope.model_dump(
            mode="json", include={"source", "id", "subject", "type", "time", "correlationid"}
        ),
        "data": held.event.data.model_dump(mode="json"),
    }


def to_event(doc: Document) -> Event[Any]:
    """The held input as the pipeline handed it over (same envelope: same output ids)."""
    envelope = CloudEvent(specversion="1.0", **doc["event"], data=doc["data"])
    model = EVENT_TYPES_BY_TOPIC[doc["topic"]][envelope.type]
    return Event(envelope, model.model_validate(doc["data"]))


class HeldInputs(Protocol):
    """Where a service keeps the inputs it holds, and the awaited topic's watermark."""

    async def advance(self, time: datetime) -> Watermark:
        """Move the watermark to ``time`` if later; the watermark after."""
        ...

    async def watermark(self) -> Watermark:
        """The watermark as it stands."""
        ...

    async def due(self, aggregates: Iterable[str], before: datetime | None) -> list[Held]:
        """The held inputs waiting on these aggregates or stamped before ``before``, oldest
        first."""
        ...

    async def keep(self, held: Sequence[Held], done: Iterable[str]) -> None:
        """Hold ``held``; forget the inputs with dedupe keys ``done`` (applied or given up)."""
        ...


class MongoHeldInputs:
    """:class:`HeldInputs` in ``collection`` of this batch's transaction, waiting on
    ``awaits`` (the topic whose watermark ends the wait)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        session: AsyncClientSession | None,
        *,
        collection: str,
        awaits: str,
    ) -> None:
        self.db, self.session, self.collection, self.awaits = db, session, collection, awaits

    async def advance(self, time: datetime) -> Watermark:
        doc = await self.db[WATERMARKS].find_one_and_update(
            {"_id": self.awaits},
            {"$max": {"ms": _ms(time)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        return Watermark(_time((doc or {}).get("ms")), int((doc or {}).get("held", 0)))

    async def watermark(self) -> Watermark:
        doc = await self.db[WATERMARKS].find_one({"_id": self.awaits}, session=self.session)
        return Watermark(_time((doc or {}).get("ms")), int((doc or {}).get("held", 0)))

    async def due(self, aggregates: Iterable[str], before: datetime | None) -> list[Held]:
        clauses: list[Document] = [{"aggregate": {"$in": sorted(set(aggregates))}}]
        if before is not None:
            clauses.append({"time": {"$lt": before}})
        cursor = self.db[self.collection].find({"$or": clauses}, session=self.session)
        docs = [doc async for doc in cursor]
        docs.sort(key=lambda d: (d["time"], d["seq"]))
        return [Held(to_event(d), d["topic"], d["aggregate"]) for d in docs]

    async def keep(self, held: Sequence[Held], done: Iterable[str]) -> None:
        forget = set(done)
        base = int(datetime.now(UTC).timestamp() * 1_000_000)  # arrival order among ties
        ops: list[ReplaceOne[Document] | DeleteOne] = [
            ReplaceOne(
                {"_id": h.event.envelope.dedupe_key}, held_document(h, base + i), upsert=True
            )
            for i, h in enumerate(held)
            if h.event.envelope.dedupe_key not in forget
        ]
        ops += [DeleteOne({"_id": key}) for key in sorted(forget)]
        if not ops:
            return
        await self.db[self.collection].bulk_write(ops, ordered=False, session=self.session)
        count = await self.db[self.collection].count_documents({}, session=self.session)
        await self.db[WATERMARKS].update_one(
            {"_id": self.awaits}, {"$set": {"held": count}}, upsert=True, session=self.session
        )


@dataclass
class InMemoryHeldInputs:
    """:class:`HeldInputs` in a dict, for handler tests (kept across batches)."""

    held: dict[str, tuple[Held, int]] = field(default_factory=dict)
    latest: datetime | None = None
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    async def advance(self, time: datetime) -> Watermark:
        if self.latest is None or time > self.latest:
            self.latest = time
        return await self.watermark()

    async def watermark(self) -> Watermark:
        return Watermark(self.latest, len(self.held))

    async def due(self, aggregates: Iterable[str], before: datetime | None) -> list[Held]:
        wanted = set(aggregates)
        found = [
            (h.event.time, seq, h)
            for h, seq in self.held.values()
            if h.aggregate in wanted or (before is not None and h.event.time < before)
        ]
        return [h for _, _, h in sorted(found, key=lambda t: (t[0], t[1]))]

    async def keep(self, held: Sequence[Held], done: Iterable[str]) -> None:
        forget = set(done)
        for h in held:
            key = h.event.envelope.dedupe_key
            if key not in forget:
                self.held[key] = (h, next(self._seq))
        for key in forget:
            self.held.pop(key, None)


class Waiting:
    """One batch's view of the held inputs (a handler's bookkeeping): the ones due, the ones
    to hold, the ones done; :meth:`close` writes what changed.

    ``awaited`` are the times of the awaited topic's events in this batch (empty for a batch
    of another topic): they move the watermark, and only then are held inputs looked up — for
    ``aggregates`` (to release) and past their wait (to give up).
    """

    def __init__(self, store: HeldInputs, wait: timedelta) -> None:
        self.store, self.wait = store, wait
        self.mark: Watermark | None = None
        self.cutoff: datetime | None = None
        self.due: list[Held] = []
        self.new: list[Held] = []
        self.done: list[str] = []

    @classmethod
    async def open(
        cls,
        store: HeldInputs,
        wait: timedelta,
        awaited: Iterable[datetime],
        aggregates: Iterable[str],
    ) -> Waiting:
        """The batch's view; reads (and moves) the watermark only for the awaited topic."""
        waiting = cls(store, wait)
        times = list(awaited)
        if times:
            waiting.mark = await store.advance(max(times))
            if waiting.mark.time is not None:
                waiting.cutoff = waiting.mark.time - wait
            if waiting.mark.held:
                waiting.due = await store.due(aggregates, waiting.cutoff)
        return waiting

    def release(self, aggregate: str, version: int) -> list[Event[Any]]:
        """The held inputs on ``aggregate`` naming ``version`` or an older one (oldest
        first): they can be decided now, and are done."""
        out = [h for h in self.due if h.aggregate == aggregate and h.event.data.version <= version]
        return self._done(out)

    async def hold(self, event: Event[Any], topic: str, aggregate: str) -> bool:
        """Hold ``event``, unless the awaited topic's watermark already passed its wait
        (``False``: give it up now, as the in-order consumer would have)."""
        if self.mark is None:
            self.mark = await self.store.watermark()
        if self.mark.time is not None and event.time < self.mark.time - self.wait:
            return False
        self.new.append(Held(event, topic, aggregate))
        return True

    def expired(self) -> list[Event[Any]]:
        """The due inputs not released whose wait is over; they are done."""
        cutoff = self.cutoff
        return self._done([h for h in self.due if cutoff is not None and h.event.time < cutoff])

    def _done(self, out: list[Held]) -> list[Event[Any]]:
        if out:
            gone = {id(h) for h in out}
            self.due = [h for h in self.due if id(h) not in gone]
            self.done += [h.event.envelope.dedupe_key for h in out]
        return [h.event for h in out]

    async def close(self) -> None:
        """Write the inputs held and forget the ones done (nothing when nothing changed)."""
        if self.new or self.done:
            await self.store.keep(self.new, self.done)


async def setup(db: AsyncDatabase[Document], collection: str) -> None:
    """Create the held inputs' collection and the watermarks up front (outside any
    transaction: nx-27017 cannot start one on a collection that does not exist yet), with
    the indexes :meth:`MongoHeldInputs.due` reads by."""
    existing = set(await db.list_collection_names())
    for name in (collection, WATERMARKS):
        if name not in existing:
            with contextlib.suppress(CollectionInvalid, OperationFailure):  # a racing replica
                await db.create_collection(name)
    await db[collection].create_index([("aggregate", ASCENDING)])
    await db[collection].create_index([("time", ASCENDING)])
