"""Wiring a service's batch handlers: one ``apply(events, uow, state)`` per input topic, each
reaching the service's state through ``store(uow)`` (MongoDB in the service, a dict in the
handler tests), and staging emitted events ahead of the state they describe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from vitrine.contract.envelope import Event
from vitrine.contract.events import EnforcementReported, ReportPhase
from vitrine.contract.events.policies import EnforcingService
from vitrine.runtime.messaging import outbox
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork

S = TypeVar("S")

#: A service's handler for one topic, given the state ``store(uow)`` returns.
Apply = Callable[[list[Event[Any]], UnitOfWork, S], Awaitable[Any]]

__all__ = ["Apply", "bind_table", "report_enforcement", "stage_emitted"]


def bind_table(
    store: Callable[[UnitOfWork], S], table: Mapping[str, Apply[S]]
) -> dict[str, BatchHandler]:
    """The pipeline's handlers per input topic: each ``apply`` of ``table`` called with the
    batch, the unit of work and ``store(uow)``."""

    def bind(apply: Apply[S]) -> BatchHandler:
        async def handler(events: list[Event[Any]], uow: UnitOfWork) -> None:
            await apply(events, uow, store(uow))

        return handler

    return {topic: bind(apply) for topic, apply in table.items()}


async def stage_emitted(uow: UnitOfWork) -> None:
    """Stage what ``uow`` emitted so far (in order) in the outbox and forget it, so the events
    are written before the state they describe (a no-op in memory: no session)."""
    if uow.session is None or not uow.emitted:
        return
    await outbox.stage(uow.db, uow.session, list(uow.emitted))
    uow.emitted.clear()


def report_enforcement(
    uow: UnitOfWork,
    service: EnforcingService,
    policy_id: str,
    phase: ReportPhase,
    affected: int,
    cause: Event[Any],
) -> None:
    """Emit ``enforcement.reported`` on ``compliance.reports``: how many of ``service``'s
    placements the policy's ``phase`` affected. Keyed by phase, so a re-run of the same cause
    reports with the same id."""
    uow.emit(
        "compliance.reports",
        EnforcementReported(policy_id=policy_id, service=service, phase=phase, affected=affected),
        subject=policy_id,
        cause=cause,
        key=f"report:{phase}",
    )
