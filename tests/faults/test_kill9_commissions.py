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
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Fleet, duplicated, effects, fleet, killer
from workload import Workload, wait_until

from vitrine.tools.testing.probe import cloud_event

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

SEED = int(os.environ.get("VITRINE_FAULT_SEED", "7")) + 1
AMOUNT_FEN, BPS, COMMISSION_FEN = 9900, 1050, 1040
MONEY = ("distribution.offers", "distribution.commissions")
SERVICES = ("catalog", "review", "showcase", "distribution", "compliance")


class Money:
    """Offers and orders for the workload's listed products, each step once its cause is seen."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.products = [i for i in range(work.n) if work.category(i) == "listed"]
        self.offered: set[int] = set()
        self.ordered: set[int] = set()

    def offer_id(self, i: int) -> str:
        return f"{self.work.pid(i)}-o"

    def order_id(self, i: int) -> str:
        return f"{self.work.pid(i)}-ord"

    def creator(self, i: int) -> str:
        return f"{self.work.tag}-c{i % 17}"

    async def run(self, f: Fleet, publisher: Any, probe: Any, timeout: float = 600) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.ordered) < len(self.products):
            if loop.time() > deadline:
                raise TimeoutError(f"{len(self.ordered)}/{len(self.products)} orders placed")
            listed = {
                r.subject
                for r in probe.events("catalog.products", type="product.listed")
                if r.subject.startswith(self.work.tag)
            }
            active = {
                r.subject
                for r in probe.events("distribution.offers", type="offer.activated")
                if r.subject.startswith(self.work.tag)
            }
            for i in self.products:
                pid, m = self.work.pid(i), self.work.merchant(i)
                if i not in self.offered and pid in listed:
                    # distribution must know the product is listed, or the offer is refused
                    status, doc = await f["distribution"].get_async(f"/products/{pid}")
                    if status == 200 and doc.get("listed"):
                        data = {
                            "offer_id": self.offer_id(i),
                            "product_id": pid,
                            "merchant_id": m,
                            "commission_bps": BPS,
                            "plan": "general",
                            "creator_ids": [],
                        }
                        await publisher.send(
                            "merchants.offers",
                            cloud_event("offer.published", self.offer_id(i), data),
                        )
                        self.offered.add(i)
                elif i not in self.ordered and self.offer_id(i) in active:
                    oid = self.order_id(i)
                    paid = {
                        "order_id": oid,
                        "product_id": pid,
                        "merchant_id": m,
                        "amount_fen": AMOUNT_FEN,
                        "creator_id": self.creator(i),
                        "offer_id": self.offer_id(i),
                        "paid_at": datetime.now(UTC).isoformat(),
                    }
                    await publisher.send_many(
                        "orders.lifecycle",
                        [
                            cloud_event("order.paid", oid, paid),
                            cloud_event("order.completed", oid, {"order_id": oid}),
                        ],
                    )
                    self.ordered.add(i)
            await asyncio.sleep(0.3)

    def expected(self) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for i in self.products:
            pid, off, order, creator = (
                self.work.pid(i),
                self.offer_id(i),
                self.order_id(i),
                self.creator(i),
            )
            out.add(("offer.activated", off, f"product_id={pid}", f"offer_id={off}"))
            for t in ("commission.accrued", "commission.settled"):
                out.add((t, order, f"creator_id={creator}", f"offer_id={off}", f"order_id={order}"))
        return out

    def records(self, probe: Any) -> list[Any]:
        tag = self.work.tag
        return [r for t in MONEY for r in probe.events(t) if (r.key or "").startswith(tag)]


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
