"""Durable scheduling of ``policy.in_force`` (a background task of the compliance service).

Schedules are documents in ``schedules`` (``_id`` = ``"{policy_id}:{phase}"``), written in the
same transaction as the acceptance that creates them. This task polls for pending schedules
that are due (``due_at <= clock()``) and fires each one in ONE transaction that

1. re-reads the schedule and finds it still ``pending`` (else another firing won),
2. marks it ``fired`` and moves the policy to ``in_force``,
3. stages the ``policy.in_force`` event (and, for a phase nobody has to report on, the
   ``policy.enforcement_completed``) in the outbox,

then wakes the outbox relay. A crash before the commit leaves the schedule pending and the
outbox empty, so it fires after restart; a crash after the commit leaves it fired and the
event in the outbox, which the relay sends. Nothing fires twice, and the ids of a firing are
derived from the schedule and the policy's revision, so even a refire would carry the same
ids. A time in the past is simply due: it fires at the next poll. The poll interval is
min(time to the next due schedule, 0.5 s), measured on the injectable clock; with nothing
pending it is 5 s, and every commit of the service wakes the poll (a schedule is only ever
written in a transaction): an idle compliance reads nothing twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from vitrine.contract.envelope import CloudEvent
from vitrine.contract.events import EventData, dump
from vitrine.contract.ids import output_event_id
from vitrine.runtime import retries
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import outbox
from vitrine.runtime.service import Runtime
from vitrine_compliance import domain, repository
from vitrine_compliance.handlers import OUTPUT

log = get_logger(__name__)
SOURCE = "/vitrine/compliance"
#: Longest sleep between polls (the clock may be moved by tests or be wrong by a bit).
MAX_SLEEP = 0.5
#: Longest sleep with no schedule pending: a commit wakes the poll before that, so this only
#: bounds how late a schedule written by another replica (or by hand) is seen.
IDLE_SLEEP = 5.0


def ruling(data: EventData, policy: domain.Policy, key: str, seq: int, at: datetime) -> CloudEvent:
    """A ruling caused by a schedule: a deterministic id, correlated with the announcement."""
    cause = policy.cause
    event_id = output_event_id(
        source=SOURCE,
        type=data.event_type,
        subject=policy.policy_id,
        cause=("schedule", key),
        key=seq,
    )
    return CloudEvent(
        specversion="1.0",
        id=event_id,
        source=SOURCE,
        type=data.event_type,
        subject=policy.policy_id,
        time=at,
        correlationid=cause.correlationid if cause else event_id,
        causationid=cause.id if cause else None,
        data=dump(data),
    )


async def fire(rt: Runtime, schedule: dict[str, Any]) -> bool:
    """Fire one due schedule in one transaction; False when it was no longer pending.

    ``rt.guard.transaction()`` takes turns with the pipeline's batch transactions: nx-27017
    (the embedded MongoDB) runs every session on one SQLite connection, so two concurrent
    transactions would commit each other's partial writes. mongod does not need it.
    """
    return await _fire(rt, schedule)


async def _fire(rt: Runtime, schedule: dict[str, Any]) -> bool:
    sid, pid, phase = schedule["_id"], schedule["policy_id"], schedule["phase"]
    now = rt.clock()
    async with rt.guard.transaction() as session:
        current = await rt.db[repository.SCHEDULES].find_one({"_id": sid}, session=session)
        if current is None or current["status"] != "pending" or current["due_at"] > now:
            return False
        policies = await repository.load_policies(rt.db, [pid], session)
        decision = domain.fire(policies.get(pid), phase, now)
        await rt.db[repository.SCHEDULES].update_one(
            {"_id": sid},
            {
                "$set": {
                    "status": "fired" if decision.changed else "cancelled",
                    "fired_at": now,
                    "note": decision.ignored,
                }
            },
            session=session,
        )
        if decision.changed and decision.state.policy is not None:
            policy = decision.state.policy
            key = f"{sid}:{current.get('revision', 0)}"
            events = [
                (OUTPUT, ruling(data, policy, key, seq, now))
                for seq, data in enumerate(decision.events)
            ]
            await outbox.stage(rt.db, session, events)
            await repository.save_policies(rt.db, [policy], {}, session)
            # A phase fired here makes an earlier pending phase moot (fired with it).
            await rt.db[repository.SCHEDULES].update_many(
                {
                    "_id": {"$in": [repository.schedule_id(pid, p) for p in policy.fired]},
                    "status": "pending",
                },
                {"$set": {"status": "fired", "fired_at": now}},
                session=session,
            )
    if decision.changed:
        log.info("policy.phase_fired", policy_id=pid, phase=phase, due_at=str(current["due_at"]))
    else:
        log.info("policy.schedule_dropped", policy_id=pid, phase=phase, why=decision.ignored)
    rt.relay.wake()
    return decision.changed


async def fire_due(rt: Runtime) -> int:
    """Fire every schedule due now, earliest first; returns how many fired."""
    fired = 0
    while True:
        due = await repository.due_schedules(rt.db, rt.clock())
        if not due:
            return fired
        for schedule in due:
            if await fire(rt, schedule):
                fired += 1


async def poll(rt: Runtime) -> datetime | None:
    """Fire what is due; when the next schedule is due (``None``: none pending).

    One query when nothing is due (the earliest pending schedule); the due ones are read only
    when it is due.
    """
    upcoming = await repository.next_due(rt.db)
    if upcoming is not None and upcoming <= rt.clock():
        await fire_due(rt)
        upcoming = await repository.next_due(rt.db)
    return upcoming


def _waiting(exc: Exception) -> bool:
    """Every failure is waited out (stamina's backoff with jitter): a schedule is never
    skipped, and a transient fault (database unavailable) heals by itself. Anything else is
    logged as an error each time, so it is seen, and retried like the rest."""
    if retries.is_transient(exc):
        log.warning("scheduler.retry", error=repr(exc)[:300])
    else:
        log.error("scheduler.failed", error=repr(exc)[:300])
    return True


async def run(rt: Runtime) -> None:
    """Poll and fire until cancelled; database faults are waited out, never skipped.

    Sleeps until the earliest pending schedule is due (at most :data:`MAX_SLEEP`), or
    :data:`IDLE_SLEEP` with nothing pending, and wakes at every commit of this service (a new
    schedule may be in it).
    """
    committed = asyncio.Event()
    rt.guard.after_commit(lambda _session: committed.set())
    while True:
        committed.clear()  # before reading: a commit from now on wakes the next sleep
        async for attempt in retries.forever(_waiting):
            with attempt:
                upcoming = await poll(rt)
        delay = IDLE_SLEEP
        if upcoming is not None:
            delay = min(max((upcoming - rt.clock()).total_seconds(), 0.0), MAX_SLEEP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(committed.wait(), delay)
