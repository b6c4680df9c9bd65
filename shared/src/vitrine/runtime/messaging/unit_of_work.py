"""What a service's handler gets: its database inside one transaction, and a way to emit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.contract.envelope import CloudEvent, Event, new_event
from vitrine.contract.events.base import EventData
from vitrine.runtime.mongo import Document

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time (UTC); tests inject their own clock instead."""
    return datetime.now(UTC)


@dataclass
class UnitOfWork:
    """One transaction's worth of work.

    Handlers read and write ``db`` passing ``session`` and call :meth:`emit`; the pipeline
    stages emitted events in the outbox and records the inbox in the same transaction.
    """

    db: AsyncDatabase[Document]
    session: AsyncClientSession | None
    service: str
    clock: Clock = system_clock
    emitted: list[tuple[str, CloudEvent]] = field(default_factory=list)
    #: Events a handler found already applied (dedupe inside the aggregate); the pipeline
    #: counts and logs them like inbox duplicates.
    duplicates: list[Event[Any]] = field(default_factory=list)
    _seq: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def source(self) -> str:
        return f"/vitrine/{self.service}"

    def now(self) -> datetime:
        return self.clock()

    def emit(
        self,
        topic: str,
        data: EventData,
        *,
        subject: str,
        cause: Event[Any] | CloudEvent | None,
        type: str | None = None,
        key: str | None = None,
    ) -> CloudEvent:
        """Stage an event caused by ``cause``; its id is derived from the cause (idempotent).

        By default the id depends on the order of emission for that cause; pass ``key`` (unique
        per cause, e.g. the item id) when the same cause may be re-applied in pieces — a bulk
        enforcement re-run after a crash — so each event keeps its id whatever the order.
        """
        seq: int | str
        if key is not None:
            seq = f"key:{key}"
        else:
            cause_id = (cause.id if cause is not None else "") or ""
            seq = self._seq[cause_id]
            self._seq[cause_id] += 1
        event = new_event(
            type or data.event_type,
            subject,
            data,
            source=self.source,
            cause=cause,
            seq=seq,
            time=self.now(),
        )
        self.emitted.append((topic, event))
        return event
