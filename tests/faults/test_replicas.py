"""Two replicas of every service in one consumer group, restarted one by one under load.

How Vitrine scales out (docs/SCALING.md): more replicas in a service's consumer group, each
owning some partitions; a rolling restart moves partitions between replicas mid-stream
(rebalances while batches are in flight). Money must still move exactly once: one
``offer.activated`` per offer, one accrual and one settlement per order, one answer per
catalog request, and each creator's ledger exactly the sum of its orders' commissions.

On nx-27017 the two replicas of a service share one database whose transactions are not
isolated from each other (one SQLite connection for every session). A partition's events are
only ever handled by one replica at a time and each replica writes its own aggregates, which
is what this test exercises; what nx-27017 cannot give is isolation between two transactions
touching the same documents (on mongod: a write conflict, retried as a transient error).
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from typing import Any

import pytest
from harness import LOGS, Fleet, duplicated, effects
from workload import COMMISSION_FEN, Money, Workload, wait_until

from vitrine.tools.testing.process import ServiceProcess

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

SERVICES = ("catalog", "review", "showcase", "distribution", "compliance")


def replicated_fleet(stack: Any, test: str) -> Fleet:
    """Replica 0 under the service's name, replica 1 as ``name#1``."""
    procs: dict[str, ServiceProcess] = {}
    for name in SERVICES:
        for replica in (0, 1):
            svc = ServiceProcess.against(stack, name, LOGS / test)
            svc.replica = replica
            procs[svc.label] = svc
    return Fleet(procs)


async def rolling_restarts(
    f: Fleet, rng: random.Random, stop: asyncio.Event, log: list[str]
) -> None:
    """Restart every process in turn (SIGTERM: graceful), waiting until each is ready again."""
    while not stop.is_set():
        for label, svc in f.services.items():
            if stop.is_set():
                return
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            await asyncio.to_thread(svc.stop)
            await svc.restart()
            log.append(f"restarted {label}")


@pytest.mark.timeout(900)
async def test_two_replicas_rolling_restart_moves_money_exactly_once(
    stack: Any, probe: Any, publisher: Any
) -> None:
    rng = random.Random(11)
    work = Workload(f"rr{uuid.uuid4().hex[:6]}", 150)
    money = Money(work)
    restarts: list[str] = []
    f = replicated_fleet(stack, "replicas")
    try:
        await f.start()
        stop = asyncio.Event()
        rolling = asyncio.create_task(rolling_restarts(f, rng, stop, restarts))
        try:
            await asyncio.gather(work.run(publisher, probe, 600), money.run(f, publisher, probe))
            await wait_until(
                lambda: len(restarts) >= len(f.services) or rolling.done(), 400, "one full round"
            )
        finally:
            stop.set()
            await asyncio.gather(rolling, return_exceptions=True)
        if rolling.done() and rolling.exception():
            raise rolling.exception()  # type: ignore[misc]
        for svc in f.services.values():
            await svc.wait_ready()
        expected = money.expected()
        await wait_until(
            lambda: expected <= set(effects(money.records(probe))), 300, "every commission"
        )
        await wait_until(
            lambda: work.expected() <= set(effects(work.records(probe))), 300, "every answer"
        )
        await probe.settle(3.0)
        print(f"{len(money.products)} orders, {len(restarts)} restarts")
        seen = effects(money.records(probe))
        assert set(seen) == expected, {
            "missing": sorted(expected - set(seen))[:10],
            "unexpected": sorted(set(seen) - expected)[:10],
        }
        assert not duplicated(money.records(probe)), list(duplicated(money.records(probe)))[:5]
        assert set(effects(work.records(probe))) == work.expected()
        assert not duplicated(work.records(probe))
        # Exact ledgers: each creator's settled total is the sum of its orders' commissions.
        orders_of = collections.Counter(money.creator(i) for i in money.products)
        for creator, n in orders_of.items():
            status, doc = await f["distribution"].get_async(f"/creators/{creator}/ledger")
            assert status == 200, (creator, status, doc)
            assert doc["totals"]["settled_fen"] == n * COMMISSION_FEN, (creator, doc["totals"])
            assert doc["totals"]["accrued_fen"] == n * COMMISSION_FEN, (creator, doc["totals"])
    finally:
        f.stop()
