"""Replay from the beginning (DESIGN.md §6 event time): a service re-consuming its input topics
from offset 0 into an EMPTY database, with a new consumer group, must publish the same events
— same ids, same causation, same data — as the run that consumed them live.

A replay test runs a scenario through the service while it consumes, records what it published
about the scenario's subjects (:func:`outputs`), then calls :func:`replay`: a second instance
(fresh database, fresh group) reads every input from the beginning, in whatever interleaving
the broker gives it, and its outputs about those subjects must repeat the first run's,
subject by subject and in order. Output envelopes' ``time`` is when they were emitted and is
not compared. ``first`` forces the interleaving a race between topics would give: the replay
reads those input topics to the end before it reads the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from vitrine.contract.envelope import Event
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.service import ServiceDefinition
from vitrine.tools.testing.probe import TopicProbe
from vitrine.tools.testing.services import running
from vitrine.tools.testing.stack import StackInfo

#: What is compared of one output event: id, type, causation id and data.
Output = tuple[str, str, str | None, Any]


def outputs(
    probe: TopicProbe, topics: Iterable[str], subjects: Iterable[str]
) -> dict[str, list[Output]]:
    """Per subject, what was published about it on ``topics``, in partition order (one
    subject is one key, so one partition per topic; topics are listed one after another)."""
    wanted = set(subjects)
    out: dict[str, list[Output]] = {s: [] for s in wanted}
    for topic in topics:
        for r in probe.events(topic):
            if r.key in wanted:
                e = r.event
                out[r.key].append((e["id"], e["type"], e.get("causationid"), e["data"]))
    return out


async def until(
    pred: Callable[[], bool], what: str, timeout: float = 90.0, show: Callable[[], Any] = str
) -> None:
    """Poll ``pred`` until it holds; past ``timeout`` seconds fail naming ``what`` and
    ``show()``."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {show()}")
        await asyncio.sleep(0.2)


async def replay(
    definition: ServiceDefinition,
    stack: StackInfo,
    probe: TopicProbe,
    first: dict[str, list[Output]],
    *,
    topics: Iterable[str],
    run: str,
    timeout: float = 120.0,
    reads_first: Iterable[str] = (),
) -> dict[str, list[Output]]:
    """Run ``definition`` again from the beginning of its inputs into an empty database
    (``<name>_<run>``, group ``<name>-<run>``); wait until every subject of ``first`` has
    twice its outputs (then for the topics to settle, so an extra event would show), and
    return the replay's own outputs — the ones after the first run's.

    ``reads_first``: input topics the replay consumes to the end (as far as the subjects'
    events go) before it starts on the others — the interleaving a lagging topic gives."""
    topics = tuple(topics)
    name = definition.name
    where: dict[str, Any] = {"mongo_db": f"{name}_{run}", "consumer_group": f"{name}-{run}"}

    def seen() -> dict[str, list[Output]]:
        return outputs(probe, topics, first)

    if early := tuple(reads_first):
        await _read_first(definition, stack, probe, early, set(first), where, timeout)
    async with running(definition, stack, **where):
        await until(
            lambda: all(len(v) >= 2 * len(first[s]) for s, v in seen().items()),
            "the replay's outputs",
            timeout=timeout,
            show=seen,
        )
        await probe.settle()
    return {s: v[len(first[s]) :] for s, v in seen().items()}


async def _read_first(
    definition: ServiceDefinition,
    stack: StackInfo,
    probe: TopicProbe,
    early: tuple[str, ...],
    subjects: set[str],
    where: dict[str, Any],
    timeout: float,
) -> None:
    """Run ``definition`` on the ``early`` input topics alone (same database and group as the
    replay) until it has handled every event about ``subjects`` on them."""
    handled: set[str] = set()

    def tracked(handler: BatchHandler) -> BatchHandler:
        async def handle(events: list[Event[Any]], uow: UnitOfWork) -> None:
            await handler(events, uow)
            handled.update(e.id for e in events)

        return handle

    alone = dataclasses.replace(
        definition, handlers={t: tracked(definition.handlers[t]) for t in early}
    )
    wanted = {r.event["id"] for t in early for r in probe.events(t) if r.key in subjects}
    async with running(alone, stack, **where):
        await until(
            lambda: wanted <= handled,
            f"the replay to read {', '.join(early)} first",
            timeout=timeout,
            show=lambda: sorted(wanted - handled),
        )
        await probe.settle()
