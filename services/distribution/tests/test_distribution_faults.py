"""kill -9 mid-stream: the service runs as its own process (``python -m vitrine_distribution``)
against the real stack, is SIGKILLed while it works through an order stream, and restarted.

Nothing may be lost (every order's commission ends where a closed-form expectation says) and
nothing doubled: one accrual event id per order, ledgers exact. The same event id published
twice (the outbox resending rows after the crash) is fine: consumers dedupe on ids.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from vitrine.tools.testing.probe import TopicProbe, cloud_event
from vitrine.tools.testing.process import ServiceProcess
from vitrine_distribution.domain import commission_for

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

OFFERS, COMMISSIONS = "distribution.offers", "distribution.commissions"


def _expected(amount: int, refunds: list[int], completes: int, bps: int) -> Counter[str]:
    refunded = min(amount, sum(refunds))
    accrued = commission_for(amount, bps)
    final = 0 if amount > 0 and refunded >= amount else commission_for(amount - refunded, bps)
    return Counter(
        {
            "accrued_fen": accrued,
            "cancelled_fen": accrued - final,
            "settled_fen": final if completes else 0,
            "pending_fen": 0 if completes else final,
        }
    )


async def test_kill_9_mid_stream_loses_and_doubles_nothing(
    stack, probe: TopicProbe, publisher, tmp_path
) -> None:
    uid = uuid.uuid4().hex[:8]
    merchant, pid, oid, creator = f"m-{uid}", f"p-{uid}", f"o-{uid}", f"c-{uid}"
    bps, n = 1111, 400
    # many small transactions: the kill lands mid-stream
    service = ServiceProcess.against(
        stack, "distribution", tmp_path, VITRINE_BATCH_MAX_RECORDS="25"
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as http:
        with service:  # stopped on exit
            await service.start().wait_ready()
            listed = {
                "product_id": pid,
                "merchant_id": merchant,
                "version": 1,
                "source": {"kind": "channels_shop"},
                "title": "Tea",
                "price_fen": 1990,
            }
            await publisher.send(
                "catalog.products",
                cloud_event("product.listed", pid, listed, source="/vitrine/catalog"),
            )
            deadline = time.monotonic() + 30
            while (await http.get(f"/products/{pid}")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            offer = {
                "offer_id": oid,
                "product_id": pid,
                "merchant_id": merchant,
                "commission_bps": bps,
                "plan": "general",
            }
            await publisher.send("merchants.offers", cloud_event("offer.published", oid, offer))
            activated = await probe.wait_for(
                OFFERS, type="offer.activated", subject=oid, timeout=30
            )
            paid_at = datetime.fromisoformat(activated[0].data["effective_at"]) + timedelta(
                seconds=1
            )

            rng = random.Random(uid)
            per_order: list[list[dict[str, Any]]] = []
            expected: Counter[str] = Counter()
            for i in range(n):
                order_id = f"ord{i}-{uid}"
                amount = rng.randint(1, 500_000)
                refunds = [rng.randint(1, amount // 2 + 1) for _ in range(rng.choice([0, 0, 1, 2]))]
                completes = rng.choice([0, 1, 1])
                events = [
                    cloud_event(
                        "order.paid",
                        order_id,
                        {
                            "order_id": order_id,
                            "product_id": pid,
                            "merchant_id": merchant,
                            "amount_fen": amount,
                            "creator_id": creator,
                            "offer_id": oid,
                            "paid_at": paid_at.isoformat(),
                        },
                        source="/orders",
                    )
                ]
                events += [
                    cloud_event(
                        "order.refunded",
                        order_id,
                        {"order_id": order_id, "refund_fen": r},
                        source="/orders",
                    )
                    for r in refunds
                ]
                events += [
                    cloud_event(
                        "order.completed", order_id, {"order_id": order_id}, source="/orders"
                    )
                    for _ in range(completes)
                ]
                rng.shuffle(events)  # some arrive before their payment
                per_order.append(events)
                expected += _expected(amount, refunds, completes, bps)
            # interleave orders, keeping each order's own sequence
            stream: list[dict[str, Any]] = []
            queues = [list(evs) for evs in per_order]
            while any(queues):
                q = rng.choice([q for q in queues if q])
                stream.append(q.pop(0))
            half = len(stream) * 2 // 3
            await publisher.send_many("orders.lifecycle", stream[:half])
            await probe.wait_for(
                COMMISSIONS,
                count=60,
                timeout=60,
                where=lambda r: r.data.get("creator_id") == creator,
            )
            service.kill()  # kill -9, mid-stream
        seen_at_kill = len(probe.events(COMMISSIONS, creator_id=creator))
        await publisher.send_many("orders.lifecycle", stream[half:])

        with service:  # same port, same log
            await service.start().wait_ready()
            want = {
                k: expected[k]
                for k in ("accrued_fen", "cancelled_fen", "settled_fen", "pending_fen")
            }
            deadline = time.monotonic() + 120
            totals: dict[str, int] = {}
            while time.monotonic() < deadline:
                body = (await http.get(f"/creators/{creator}/ledger")).json()
                totals = body["totals"]
                if {k: totals[k] for k in want} == want and body["accruals"] == n:
                    break
                await asyncio.sleep(0.25)
            await probe.settle()
            body = (await http.get(f"/creators/{creator}/ledger")).json()
            assert {k: body["totals"][k] for k in want} == want, (body["totals"], want)
            assert body["accruals"] == n
            payable = (await http.get(f"/merchants/{merchant}/payable")).json()
            assert payable["payable_fen"] == want["settled_fen"]
            assert payable["pending_fen"] == want["pending_fen"]

    published = probe.events(COMMISSIONS, creator_id=creator)
    assert seen_at_kill < len({r.event["id"] for r in published}), "the kill was not mid-stream"
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in published:
        ids[(r.subject, r.type)].add(r.event["id"])
    accrued_orders = {subject for subject, type_ in ids if type_ == "commission.accrued"}
    assert len(accrued_orders) == n
    for (subject, type_), event_ids in ids.items():
        if type_ in ("commission.accrued", "commission.settled", "commission.cancelled"):
            assert len(event_ids) == 1, f"{subject} has {len(event_ids)} distinct {type_} events"
    # the published events alone (deduplicated by id) add up to the ledger
    unique = {r.event["id"]: r for r in published}.values()
    accrued_sum = sum(r.data["commission_fen"] for r in unique if r.type == "commission.accrued")
    assert accrued_sum == want["accrued_fen"]
