"""kill -9 rotation while money moves: offers, paid orders, settlements (issue 7).

On top of the catalog + review workload, every *listed* product gets an offer once
distribution knows it is listed, and an order (paid, then completed) once the offer is active.
All five services are killed in turn meanwhile. Each offer must be activated once, each order
accrue exactly one commission of ``round_half_up(9900 × 1050 / 10000)`` = 1040 fen and settle
once: no lost, no duplicated money, whatever was killed when.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from typing import Any

import pytest
from harness import duplicated, effects, fleet, killer
from workload import COMMISSION_FEN, Money, Workload, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

SEED = int(os.environ.get("VITRINE_FAULT_SEED", "7")) + 1
SERVICES = ("catalog", "review", "showcase", "distribution", "compliance")


@pytest.mark.timeout(900)
async def test_kill_9_while_money_moves_loses_and_duplicates_no_commission(
    stack: Any, probe: Any, publisher: Any
) -> None:
    rng = random.Random(SEED)
    work = Workload(f"km{uuid.uuid4().hex[:6]}", 250)
    money = Money(work)
    names = list(SERVICES)
    kills: list[str] = []
    with fleet(stack, names, "kill9-money") as f:
        await f.start()
        stop = asyncio.Event()
        killing = asyncio.create_task(killer(f, names, rng, stop, kills))
        try:
            await asyncio.gather(work.run(publisher, probe, 600), money.run(f, publisher, probe))
            await wait_until(
                lambda: all(f[n].kills >= 1 for n in names) or killing.done(), 300, "kills"
            )
        finally:
            stop.set()
            await asyncio.gather(killing, return_exceptions=True)
        if killing.done() and killing.exception():
            raise killing.exception()  # type: ignore[misc]
        for n in names:
            await f[n].wait_ready()
        expected = money.expected()
        await wait_until(
            lambda: expected <= set(effects(money.records(probe))), 300, "every commission"
        )
        await probe.settle(3.0)
        print(f"seed {SEED}, {len(money.products)} orders, kills:\n  " + "\n  ".join(kills))
        seen = effects(money.records(probe))
        assert set(seen) == expected, {
            "missing": sorted(expected - set(seen))[:10],
            "unexpected": sorted(set(seen) - expected)[:10],
        }
        assert not duplicated(money.records(probe)), list(duplicated(money.records(probe)))[:5]
        assert not duplicated(work.records(probe))
        for r in probe.events("distribution.commissions", type="commission.accrued"):
            if r.subject.startswith(work.tag):
                assert r.data["commission_fen"] == COMMISSION_FEN, r.data
