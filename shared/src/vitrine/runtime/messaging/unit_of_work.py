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
    #: Per (cause, type, subject): how many such events this cause emitted so far.
    _seq: dict[tuple[Any, ...], int] = field(default_factory=lambda: defaultdict(int))

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
        """Stage an event caused by ``cause``; its id derives from the cause and the event's
        type and subject (:func:`vitrine.contract.ids.output_event_id`), so re-processing the
        cause mints the same ids.

        Several events of one cause with the same type and subject are told apart by their
        order of emission; pass ``key`` (unique per cause, e.g. the item id) when the same
        cause may be re-applied in pieces — a bulk enforcement re-run after a crash — so each
        event keeps its id whatever the order.
        """
        type = type or data.event_type
        seq: int | str
        if key is not None:
            seq = key
        else:
            envelope = cause.envelope if isinstance(cause, Event) else cause
            counter = (envelope.identity if envelope is not None else None, type, subject)
            seq = self._seq[counter]
            self._seq[counter] += 1
        event = new_event(
            type,
            subject,
            data,
            source=self.source,
            cause=cause,
            seq=seq,
            time=self.now(),
        )
        self.emitted.append((topic, event))
        return event
