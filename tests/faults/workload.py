"""A mixed catalog + review workload whose correct outcome is known in advance.

Product ``i`` follows the script of category ``i % 5``; a second step is published only once
the first one's ``product.listed`` is seen, so the expected outcome does not depend on timing:

| category | step 1 | step 2 (after listed v1) | expected effects |
|---|---|---|---|
| listed | valid v1 | — | requested, approved, listed v1 |
| rejected | v1 with a banned term | — | requested, review.rejected, product.rejected v1 |
| resubmitted | valid v1 | valid v2 | … listed v1, requested, approved, listed v2 |
| withdrawn | valid v1 | withdrawn | … listed v1, delisted |
| escalated | valid v1 | v2 at 3× the price | … listed v1, requested v2, escalated v2 |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vitrine.tools.testing.probe import TopicProbe, cloud_event

CATEGORIES = ("listed", "rejected", "resubmitted", "withdrawn", "escalated")
OUTPUTS = ("catalog.products", "review.decisions")


def product(pid: str, merchant: str, n: int, *, title: str | None = None, price: int = 1990):
    return {
        "product_id": pid,
        "merchant_id": merchant,
        "title": title or f"Porcelain bowl {n}",
        "category": "kitchen",
        "images": [f"https://img.example.com/{pid}.jpg"],
        "price_fen": price,
        "stock": 3,
        "source": {"kind": "channels_shop"},
    }


@dataclass
class Workload:
    """``n`` products under ``tag``; publish with :meth:`run`, check with :meth:`expected`."""

    tag: str
    n: int
    chunk: int = 20
    pause: float = 0.25
    step2_sent: set[str] = field(default_factory=set)
    done_publishing: bool = False

    def pid(self, i: int) -> str:
        return f"{self.tag}-p{i:05d}"

    def merchant(self, i: int) -> str:
        return f"{self.tag}-m{i % 13}"

    def category(self, i: int) -> str:
        return CATEGORIES[i % len(CATEGORIES)]

    def step1(self, i: int) -> tuple[str, dict[str, Any]]:
        pid, m = self.pid(i), self.merchant(i)
        if self.category(i) == "rejected":
            return "product.submitted", product(pid, m, i, title=f"最佳 bowl {i}")
        return "product.submitted", product(pid, m, i)

    def step2(self, i: int) -> tuple[str, dict[str, Any]] | None:
        pid, m, cat = self.pid(i), self.merchant(i), self.category(i)
        if cat == "resubmitted":
            return "product.submitted", product(pid, m, i, price=2100)
        if cat == "withdrawn":
            return "product.withdrawn", {"product_id": pid, "merchant_id": m}
        if cat == "escalated":
            return "product.submitted", product(pid, m, i, price=5970)
        return None

    async def run(self, publisher: Any, probe: TopicProbe, timeout: float = 300.0) -> None:
        """Publish step 1 in chunks; publish each step 2 once its product is listed."""
        deadline = time.monotonic() + timeout
        for start in range(0, self.n, self.chunk):
            batch = [self.step1(i) for i in range(start, min(self.n, start + self.chunk))]
            await publisher.send_many(
                "merchants.products", [cloud_event(t, d["product_id"], d) for t, d in batch]
            )
            await self._step2(publisher, probe)
            await asyncio.sleep(self.pause)
        waiting = {i for i in range(self.n) if self.step2(i) is not None}
        while len(self.step2_sent) < len(waiting):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.step2_sent)}/{len(waiting)} step-2 sent")
            await self._step2(publisher, probe)
            await asyncio.sleep(0.2)
        self.done_publishing = True

    async def _step2(self, publisher: Any, probe: TopicProbe) -> None:
        listed = {
            r.subject
            for r in probe.events("catalog.products", type="product.listed")
            if r.subject.startswith(self.tag) and r.data.get("version") == 1
        }
        due = []
        for i in range(self.n):
            pid = self.pid(i)
            if pid in listed and pid not in self.step2_sent and (s := self.step2(i)) is not None:
                due.append(cloud_event(s[0], pid, s[1]))
                self.step2_sent.add(pid)
        if due:
            await publisher.send_many("merchants.products", due)

    def expected(self) -> set[tuple[str, ...]]:
        """Every output effect the workload must cause, exactly once."""
        out: set[tuple[str, ...]] = set()
        for i in range(self.n):
            pid, cat = self.pid(i), self.category(i)

            def add(type_: str, version: int, pid: str = pid) -> None:
                out.add((type_, pid, f"product_id={pid}", f"version={version}"))

            add("product.review_requested", 1)
            if cat == "rejected":
                add("review.rejected", 1)
                add("product.rejected", 1)
                continue
            add("review.approved", 1)
            add("product.listed", 1)
            if cat == "resubmitted":
                add("product.review_requested", 2)
                add("review.approved", 2)
                add("product.listed", 2)
            elif cat == "withdrawn":
                add("product.delisted", 1)
            elif cat == "escalated":
                add("product.review_requested", 2)
                add("review.escalated", 2)
        return out

    def final_state(self, i: int) -> dict[str, Any]:
        """What catalog's ``GET /products/{id}`` must say at the end."""
        cat = self.category(i)
        return {
            "listed": cat in ("listed", "resubmitted", "escalated"),
            "live": {"resubmitted": 2, "rejected": None}.get(cat, 1),
            "draft": 2 if cat == "escalated" else None,
        }

    def records(self, probe: TopicProbe) -> list[Any]:
        return [
            r
            for topic in OUTPUTS
            for r in probe.events(topic)
            if (r.key or "").startswith(self.tag)
        ]


def observed_state(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "listed": doc.get("listed"),
        "live": (doc.get("live") or {}).get("number"),
        "draft": (doc.get("draft") or {}).get("number"),
    }


async def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


# --- money on top of the catalog workload: offers, paid and completed orders ------------------

AMOUNT_FEN, BPS, COMMISSION_FEN = 9900, 1050, 1040
MONEY = ("distribution.offers", "distribution.commissions")


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

    async def run(self, f: Any, publisher: Any, probe: Any, timeout: float = 600) -> None:
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
