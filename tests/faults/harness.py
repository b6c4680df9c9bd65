"""Fault-suite helpers: a fleet of service subprocesses, a random killer, effect accounting.

The subprocess itself is ``vitrine.tools.testing.process.ServiceProcess`` (shared with the
services' own kill tests); what is here is specific to this suite: several services at once,
killed in rotation, and their output grouped into effects. Logs go to
``.data/fault-logs/<test>/<service>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrine.tools.testing.process import ServiceProcess

LOGS = Path(__file__).resolve().parents[2] / ".data" / "fault-logs"


@dataclass
class Fleet:
    """The services of one test, by name."""

    services: dict[str, ServiceProcess]

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    async def start(self) -> Fleet:
        for s in self.services.values():
            s.start()
        await asyncio.gather(*(s.wait_ready() for s in self.services.values()))
        return self

    def stop(self) -> None:
        for s in self.services.values():
            s.stop()


@contextlib.contextmanager
def fleet(stack: Any, names: list[str], test: str, **env: str) -> Iterator[Fleet]:
    """Services ``names`` as subprocesses against ``stack``; always stopped at the end."""
    log_dir = LOGS / test
    f = Fleet({n: ServiceProcess.against(stack, n, log_dir, **env) for n in names})
    try:
        yield f
    finally:
        f.stop()


async def killer(
    f: Fleet, names: list[str], rng: random.Random, stop: asyncio.Event, log: list[str]
) -> None:
    """Kill and restart the services in rotation at random moments until ``stop``."""
    turn = 0
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        victim = f[names[turn % len(names)]]
        turn += 1
        victim.kill()
        down = rng.uniform(0.0, 1.5)
        log.append(f"{time.strftime('%X')} kill -9 {victim.name}, restart after {down:.1f} s")
        await asyncio.sleep(down)
        await victim.restart()


# --- reading what the services published -------------------------------------------------------


def effect_key(record: Any) -> tuple[str, ...]:
    """What makes an output event one effect: its type, subject and the ids in its data."""
    data = record.data
    ids = tuple(
        f"{k}={data[k]}"
        for k in (
            "product_id",
            "version",
            "creator_id",
            "offer_id",
            "order_id",
            "policy_id",
            "phase",
            "service",
        )
        if k in data
    )
    return (record.type, record.subject, *ids)


def effects(records: list[Any]) -> dict[tuple[str, ...], set[str]]:
    """Output records grouped by effect → the distinct event ids that announced it.

    The same id seen twice is a harmless resend (consumers dedupe on it); two ids for one
    effect is a duplicated effect.
    """
    out: dict[tuple[str, ...], set[str]] = {}
    for r in records:
        out.setdefault(effect_key(r), set()).add(r.event["id"])
    return out


def duplicated(records: list[Any]) -> dict[tuple[str, ...], set[str]]:
    return {k: ids for k, ids in effects(records).items() if len(ids) > 1}


class RetryingPublisher:
    """An upstream publisher that retries what the broker did not acknowledge, with the same
    event ids (at-least-once, as a real upstream system must be across a broker outage)."""

    def __init__(self, publisher: Any, timeout: float = 180.0) -> None:
        self.publisher = publisher
        self.timeout = timeout
        self.retries = 0

    async def send(self, topic: str, event: dict[str, Any]) -> dict[str, Any]:
        await self._retrying(lambda: self.publisher.send(topic, event))
        return event

    async def send_many(self, topic: str, events: list[dict[str, Any]]) -> None:
        await self._retrying(lambda: self.publisher.send_many(topic, events))

    async def _retrying(self, send: Any) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                await asyncio.wait_for(send(), 20)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                await asyncio.sleep(0.5)
