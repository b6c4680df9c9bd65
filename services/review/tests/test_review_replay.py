"""Replay (DESIGN.md §6 event time): review re-consuming ``catalog.products`` from the beginning
into an EMPTY database (fresh consumer group) publishes the same decisions — ids, causation,
data — as the run that consumed them live.

Automated verdicts, a price jump escalated, a superseded version — and a reviewer's verdict,
with the replay reading ``review.manual`` to the end before ``catalog.products``: the verdict
is consumed before the escalation it answers, held, and applied when its version's request
arrives, with the ids and causation of the live run.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from vitrine.tools.testing.handlers import as_cloud_event, review_requested
from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event
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
    manual = f"manual-{uid}"
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
                requested(manual, version=2, price_fen=3000, live_version=1, live_price_fen=1000),
            ],
        )
        subjects = (fine, banned, jump, twice, manual)
        await until(
            lambda: all(outputs(probe, OUTPUTS, subjects).values()), "the scenario's decisions"
        )
        # the reviewer answers the escalation (live, after it)
        decided = {"product_id": manual, "version": 2, "verdict": "approve", "reviewer_id": "r"}
        await publisher.send(
            "review.manual", cloud_event("review.manual_decided", manual, decided, source="/ops")
        )
        await until(
            lambda: len(outputs(probe, OUTPUTS, [manual])[manual]) == 2, "the manual verdict"
        )
        await probe.settle()
    first = outputs(probe, OUTPUTS, subjects)
    assert [o[1] for o in first[fine]] == ["review.approved"]
    assert [o[1] for o in first[jump]] == ["review.escalated"]
    assert [r["code"] for r in first[banned][0][3]["reasons"]] == ["invalid_price", "banned_term"]

    assert [o[1] for o in first[manual]] == ["review.escalated", "review.approved"]

    replayed = await replay(
        DEFINITION,
        stack,
        probe,
        first,
        topics=OUTPUTS,
        run=f"b_{uid}",
        reads_first=("review.manual",),  # the verdict before its escalation
    )
    assert replayed == first
