"""What a service's handler gets: its database inside one transaction, and a way to emit."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.contract.envelope import CloudEvent, Event, new_event
from vitrine.contract.events.base import EventData
from vitrine.runtime.mongo import Document

Clock = Callable[[], datetime]
D = TypeVar("D", bound=EventData)


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


# --- in memory -----------------------------------------------------------------------------------

#: The in-memory unit of work's default time: fixed, so handler tests are deterministic.
FIXED_TIME = datetime(2022, 7, 1, 4, 0, tzinfo=UTC)


class _NoDatabase:
    """Stands in for ``db`` in memory: any use says which repository to use instead."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"InMemoryUnitOfWork has no database (db.{name}): give the handler its service's "
            "in-memory repository"
        )

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(f"[{name!r}]")


def _no_database() -> AsyncDatabase[Document]:
    return cast("AsyncDatabase[Document]", _NoDatabase())


@dataclass
class InMemoryUnitOfWork(UnitOfWork):
    """The unit of work of handler tests: no database, no Kafka, a fixed clock.

    It *is* a :class:`UnitOfWork` — ``emit`` derives ids exactly as in production — but its
    ``db`` refuses every use, so a handler must reach its state through the in-memory
    repository it is given. Emitted events are kept in ``emitted``; :meth:`events` returns
    them as their typed models (re-validated against the contract, so an output that would
    not decode downstream fails the test). Move time with :meth:`advance`.
    """

    db: AsyncDatabase[Document] = field(default_factory=lambda: _no_database())
    session: AsyncClientSession | None = None
    service: str = "test"
    at: datetime = FIXED_TIME

    def __post_init__(self) -> None:
        if self.clock is system_clock:
            self.clock = lambda: self.at

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward (``advance(hours=1)``); the new time."""
        self.at += timedelta(**delta)
        return self.at

    def events(self, topic: str | None = None, type: str | None = None) -> list[EventData]:
        """The emitted events' data (optionally of one topic / type), in order, typed."""
        from vitrine.contract.events import EVENT_TYPES_BY_TOPIC

        out: list[EventData] = []
        for t, event in self.emitted:
            if (topic is None or t == topic) and (type is None or event.type == type):
                model = EVENT_TYPES_BY_TOPIC[t][event.type]
                out.append(model.model_validate_json(json.dumps(event.data), strict=True))
        return out

    def clear(self) -> None:
        """Forget what was emitted and counted (between two batches of one test)."""
        self.emitted.clear()
        self.duplicates.clear()


def incoming(data: D, subject: str, *, source: str = "/tests", id: str | None = None) -> Event[D]:
    """An input event as the pipeline hands it to a handler (valid, typed), for tests."""
    envelope = new_event(data.event_type, subject, data, source=source)
    if id is not None:
        envelope = envelope.model_copy(update={"id": id})
    return Event(envelope, data)
