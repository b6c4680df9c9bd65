"""What a domain function decides: the new state, the events to publish, or why it refuses.

Every service's pure domain returns one shape, :class:`Decision`, so every handler reads the
same way (cosmicpython's "aggregate returns events, the handler commits and publishes")::

    # domain.py (pure: no I/O, no clock, no uow)
    def withdraw(product: Product | None, cmd: ProductWithdrawn) -> Decision[Product | None]:
        if product is None:
            return Decision.ignore(None, "unknown_product")
        if product.merchant_id != cmd.merchant_id:
            refusal = ProductRefused(product_id=..., reasons=[reason], ...)
            return Decision.refuse(product, [reason], Emit(refusal, product.product_id))
        new = replace(product, listed=False)
        return Decision(new, [Emit(ProductDelisted(...), new.product_id)])

    # handlers.py (thin)
    decision = domain.withdraw(products.get(pid), event.data)
    decision.emit(uow, cause=event)        # every Emit, refusal events included
    if decision.changed:                   # not refused, not ignored
        products[pid] = decision.state     # ...saved in bulk after the batch

- ``state``: the aggregate after the decision (the one passed in when nothing changed).
- ``emits``: the events to publish, each an :class:`Emit` — the ``data`` model, its
  ``subject`` (== Kafka key, the aggregate id), its ``topic`` (defaults to the one topic the
  contract allows that model on) and an optional per-item ``key`` (see
  :meth:`vitrine.runtime.messaging.unit_of_work.UnitOfWork.emit`: pass it when one cause
  emits per-item events that a re-run could emit in another order, e.g. bulk enforcement).
- ``refused``: the reasons a valid request is not allowed (DESIGN.md §3 refusals). The state
  is unchanged; the refusal *event* (``product.refused``, ``offer.refused``…) is among
  ``emits`` — a refusal is published, never dead-lettered.
- ``ignored``: a stable code for "nothing to do" (a stale or duplicate input); logged, not
  published, not recorded as applied.

It lives in the runtime because it is the interface between a service's domain and the
runtime that applies it — it never crosses a service boundary, unlike ``vitrine.contract``
— and it imports nothing but the contract, so a domain module that uses it stays pure.
Service-specific extras (review's audit entries, compliance's schedule changes) stay on the
service's own state or beside the decision, not on this type.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from vitrine.contract.envelope import CloudEvent, Event
from vitrine.contract.events import EVENT_TYPES_BY_TOPIC
from vitrine.contract.events.base import EventData, Reason

#: The aggregate (or aggregates) a decision is about; covariant like any frozen container.
S = TypeVar("S", covariant=True)
T = TypeVar("T")


@functools.cache
def _topics_by_model() -> dict[type[EventData], str]:
    table: dict[type[EventData], str] = {}
    for topic, models in EVENT_TYPES_BY_TOPIC.items():
        for model in models.values():
            table.setdefault(model, topic)
    return table


def topic_of(model: type[EventData]) -> str:
    """The topic the contract allows ``model`` on (each data model belongs to one topic)."""
    try:
        return _topics_by_model()[model]
    except KeyError:
        raise ValueError(f"{model.__name__} is on no topic of the contract") from None


@dataclass(frozen=True, slots=True)
class Emit:
    """One event to publish: its data model, subject (== Kafka key) and topic.

    ``topic`` defaults to the contract's topic for ``type(data)``; ``key`` makes the output
    id depend on the item rather than on the order of emission (see the module docstring).
    """

    data: EventData
    subject: str
    topic: str = ""
    key: str | None = None

    def __post_init__(self) -> None:
        if not self.topic:
            object.__setattr__(self, "topic", topic_of(type(self.data)))


class Emitter(Protocol):
    """Where decisions are published: the unit of work (real or in-memory)."""

    def emit(
        self,
        topic: str,
        data: EventData,
        *,
        subject: str,
        cause: Event[Any] | CloudEvent | None,
        type: str | None = None,
        key: str | None = None,
    ) -> CloudEvent: ...


@dataclass(frozen=True, slots=True)
class Decision(Generic[S]):
    """The new ``state``, the events to ``emits``, the ``refused`` reasons or why ``ignored``."""

    state: S
    emits: Sequence[Emit] = ()
    refused: Sequence[Reason] = ()
    ignored: str | None = None

    @staticmethod
    def ignore(state: T, why: str) -> Decision[T]:
        """Nothing to do (stale, duplicate, unknown): ``state`` stays, nothing is published."""
        return Decision(state, ignored=why)

    @staticmethod
    def refuse(state: T, reasons: Iterable[Reason], *emits: Emit) -> Decision[T]:
        """A valid request that is not allowed; ``emits`` carry the refusal event(s)."""
        return Decision(state, emits, tuple(reasons))

    @property
    def changed(self) -> bool:
        """Whether the state is to be saved (and the input recorded as applied)."""
        return not self.refused and self.ignored is None

    @property
    def events(self) -> list[EventData]:
        """The data models of :attr:`emits`, in order (handy in tests)."""
        return [e.data for e in self.emits]

    def emit(self, uow: Emitter, *, cause: Event[Any] | CloudEvent | None) -> list[CloudEvent]:
        """Stage every :attr:`emits` in ``uow``, caused by ``cause``, in order."""
        return [
            uow.emit(e.topic, e.data, subject=e.subject, cause=cause, key=e.key) for e in self.emits
        ]
