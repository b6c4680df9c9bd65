"""Replay (DESIGN.md §6 event time): review re-consuming ``catalog.products`` from the beginning
into an EMPTY database (fresh consumer group) publishes the same decisions — ids, causation,
data — as the run that consumed them live.

What ``catalog.products`` alone drives is covered (automated verdicts, a price jump escalated,
a superseded version). A manual verdict (``review.manual``) is not: consumed before the
escalation it answers, it is ignored (``not_escalated``), so a replay that reads
``review.manual`` ahead of ``catalog.products`` decides differently — a known limit.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from vitrine.tools.testing.handlers import as_cloud_event, review_requested
from vitrine.tools.testing.probe import Publisher, TopicProbe
from vitrine.tools.testing.replay import outputs, replay, until
from vitrine.tools.testing.services import running
from vitrine_review.config import ReviewConfig
from vitrine_review.service import make_definition

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

DEFINITION = make_definition(ReviewConfig(banned_terms=["miracle"]))
OUTPUTS = ("review.decisions",)


def requested(pid: str, version: int = 1, **over: Any) -> dict[str, Any]:
    data = review_requested(
        pid, version, **{"merchant_id": f"m-{pid}", "title": f"Cup {pid}", **over}
    )
    return as_cloud_event(data, source="/vitrine/catalog")


async def test_a_replay_into_an_empty_database_emits_the_same_decisions(
    stack: Any, probe: TopicProbe, publisher: Publisher
) -> None:
    uid = uuid.uuid4().hex[:8]
    fine, banned, jump, twice = (f"{k}-{uid}" for k in ("fine", "banned", "jump", "twice"))
    skus = [
        {"sku_id": "white", "price_fen": 1000, "stock": 1},
        {"sku_id": "black", "price_fen": -1, "stock": 1},
    ]
    async with running(DEFINITION, stack, mongo_db=f"review_a_{uid}", consumer_group=f"r-a-{uid}"):
        await publisher.send_many(
            "catalog.products",
            [
                requested(fine),
                requested(banned, title="Miracle cup", skus=skus),
                requested(jump, version=3, price_fen=3000, live_version=2, live_price_fen=1000),
                requested(twice),  # superseded by version 2 before or after its verdict
                requested(twice, version=2, title="Miracle mug"),
            ],
        )
        subjects = (fine, banned, jump, twice)
        await until(
            lambda: all(outputs(probe, OUTPUTS, subjects).values()), "the scenario's decisions"
        )
        await probe.settle()
    first = outputs(probe, OUTPUTS, subjects)
    assert [o[1] for o in first[fine]] == ["review.approved"]
    assert [o[1] for o in first[jump]] == ["review.escalated"]
    assert [r["code"] for r in first[banned][0][3]["reasons"]] == ["invalid_price", "banned_term"]

    replayed = await replay(DEFINITION, stack, probe, first, topics=OUTPUTS, run=f"b_{uid}")
    assert replayed == first
