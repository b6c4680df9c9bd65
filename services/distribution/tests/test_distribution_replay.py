"""Replay (DESIGN.md §6 event time): re-consuming the same input topics from the beginning into
an EMPTY database reproduces the same output events — same ids, same data.

A scenario runs through distribution while it consumes (an order consumed before its offer,
a cut, a refund, an offer that never arrives, a delisting); then a second distribution, with a
fresh database and a fresh consumer group, reads every input topic from the beginning, in
whatever interleaving the broker gives it. The outputs about the scenario's subjects must be
the same, subject by subject, in the same order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event
from vitrine.tools.testing.services import running
from vitrine_distribution.config import DistributionConfig
from vitrine_distribution.service import make_definition

#: Offers consumed before their product wait for it (off by default): exact replays.
DEFINITION = make_definition(DistributionConfig(product_wait_hours=24))

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

OUTPUTS = ("distribution.offers", "distribution.commissions")
Output = tuple[str, str, str | None, Any]  # id, type, causationid, data


def outputs(probe: TopicProbe, subjects: Iterable[str]) -> dict[str, list[Output]]:
    """Per scenario subject, what distribution published about it, in partition order."""
    wanted = set(subjects)
    out: dict[str, list[Output]] = {s: [] for s in wanted}
    for topic in OUTPUTS:
        for r in probe.events(topic):
            if r.key in wanted:
                e = r.event
                out[r.key].append((e["id"], e["type"], e.get("causationid"), e["data"]))
    return out


async def until(
    pred: Callable[[], bool], what: str, timeout: float = 90.0, show: Callable[[], Any] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {show()}")
        await asyncio.sleep(0.2)


async def order_status(http: httpx.AsyncClient, order_id: str) -> str | None:
    resp = await http.get(f"/orders/{order_id}")
    return resp.json().get("status") if resp.status_code == 200 else None


async def test_a_replay_into_an_empty_database_emits_the_same_events(
    stack: Any, probe: TopicProbe, publisher: Publisher
) -> None:
    uid = uuid.uuid4().hex[:8]
    merchant, pid, oid, creator = f"m-{uid}", f"p-{uid}", f"o-{uid}", f"c-{uid}"
    held, prompt, ghost = f"ord-held-{uid}", f"ord-prompt-{uid}", f"ord-ghost-{uid}"
    now = datetime.now(UTC).replace(microsecond=0)
    listed = {
        "product_id": pid,
        "merchant_id": merchant,
        "version": 1,
        "source": {"kind": "channels_shop"},
        "title": "Tea cup",
        "price_fen": 1990,
    }

    def paid(order: str, offer: str, paid_at: datetime, amount: int = 10_001) -> Any:
        data = {
            "order_id": order,
            "product_id": pid,
            "merchant_id": merchant,
            "amount_fen": amount,
            "creator_id": creator,
            "offer_id": offer,
            "paid_at": paid_at.isoformat(),
        }
        return cloud_event("order.paid", order, data, source="/orders", time=paid_at)

    def offer(bps: int, at: datetime) -> Any:
        data = {
            "offer_id": oid,
            "product_id": pid,
            "merchant_id": merchant,
            "commission_bps": bps,
            "plan": "general",
        }
        return cloud_event("offer.published", oid, data, source="/merchants", time=at)

    first_group = f"distribution-a-{uid}"
    async with running(DEFINITION, stack, mongo_db=f"dist_a_{uid}", consumer_group=first_group) as (
        _,
        http,
    ):
        await publisher.send(
            "catalog.products",
            cloud_event(
                "product.listed",
                pid,
                listed,
                source="/vitrine/catalog",
                time=now - timedelta(hours=2),
            ),
        )
        # consumed before its offer: held, and its completion waits with it
        await publisher.send("orders.lifecycle", paid(held, oid, now - timedelta(minutes=30)))
        await publisher.send(
            "orders.lifecycle",
            cloud_event("order.completed", held, {"order_id": held}, source="/orders", time=now),
        )
        deadline = time.monotonic() + 90
        while await order_status(http, held) != "held":
            assert time.monotonic() < deadline, "the order was never held"
            await asyncio.sleep(0.2)
        # its offer, published (by its own time) an hour before the order was paid
        await publisher.send("merchants.offers", offer(1000, now - timedelta(hours=1)))
        # a cut published later; an order after the offer, partly refunded
        await publisher.send("merchants.offers", offer(600, now - timedelta(minutes=10)))
        await publisher.send("orders.lifecycle", paid(prompt, oid, now - timedelta(minutes=5)))
        await publisher.send(
            "orders.lifecycle",
            cloud_event(
                "order.refunded",
                prompt,
                {"order_id": prompt, "refund_fen": 4_000},
                source="/orders",
                time=now,
            ),
        )
        # an offer that never comes: paid two days before the offers' event time
        await publisher.send(
            "orders.lifecycle", paid(ghost, f"o-ghost-{uid}", now - timedelta(days=2))
        )
        await publisher.send(
            "catalog.products",
            cloud_event(
                "product.delisted",
                pid,
                {"product_id": pid, "merchant_id": merchant, "reason": "withdrawn"},
                source="/vitrine/catalog",
                time=now,
            ),
        )
        expected = {
            oid: ["offer.activated", "offer.activated", "offer.suspended"],
            held: ["commission.accrued", "commission.settled"],
            prompt: ["commission.accrued", "commission.adjusted"],
            ghost: ["commission.refused"],
        }
        await until(
            lambda: {s: [o[1] for o in v] for s, v in outputs(probe, expected).items()} == expected,
            "the scenario's outputs",
        )
    first = outputs(probe, expected)
    ghost_refusal = first[ghost][0][3]
    assert [r["code"] for r in ghost_refusal["reasons"]] == ["offer_unknown"]
    held_accrual = first[held][0][3]
    assert held_accrual["commission_bps"] == 1000  # the rate at paid_at, not the later cut

    # the replay: an empty database, a new group reading every input from the beginning
    async with running(
        DEFINITION, stack, mongo_db=f"dist_b_{uid}", consumer_group=f"distribution-b-{uid}"
    ):
        await until(
            lambda: all(
                len(v) >= 2 * len(expected[s]) for s, v in outputs(probe, expected).items()
            ),
            "the replay's outputs",
            timeout=120,
            show=lambda: outputs(probe, expected),
        )
        await probe.settle()
    replayed = outputs(probe, expected)
    for subject, events in first.items():
        assert replayed[subject] == events + events, subject
