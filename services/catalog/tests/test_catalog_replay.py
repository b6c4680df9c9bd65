"""Replay (DESIGN.md §6 event time): catalog re-consuming ``merchants.products`` from the
beginning into an EMPTY database (fresh consumer group) publishes the same events — ids,
causation, data — as the run that consumed them live.

Drafts, a second submission, a refused stock update and a stranger's submission, a cancelled
audit — and review's verdicts, with the replay reading ``review.decisions`` to the end before
``merchants.products``: each verdict is consumed before the submission it answers, held, and
applied when the submission arrives, with the ids and causation of the live run. Platform
actions (``platform.actions``) are not covered.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from vitrine.tools.testing.handlers import as_cloud_event, product_submitted
from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event
from vitrine.tools.testing.replay import outputs, replay, until
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

OUTPUTS = ("catalog.products",)


def submitted(pid: str, merchant: str, **over: Any) -> dict[str, Any]:
    return as_cloud_event(product_submitted(pid, merchant, **over), source="/merchants")


def verdict(type_: str, pid: str, **data: Any) -> dict[str, Any]:
    return cloud_event(
        type_, pid, {"product_id": pid, "version": 1, **data}, source="/vitrine/review"
    )


def command(type_: str, pid: str, merchant: str, **data: Any) -> dict[str, Any]:
    data |= {"product_id": pid, "merchant_id": merchant}
    return cloud_event(type_, pid, data, source="/merchants")


async def test_a_replay_into_an_empty_database_emits_the_same_events(
    stack: Any, probe: TopicProbe, publisher: Publisher
) -> None:
    uid = uuid.uuid4().hex[:8]
    merchant = f"m-{uid}"
    draft, resubmitted, cancelled = (f"{k}-{uid}" for k in ("draft", "again", "cancel"))
    listed, rejected = f"listed-{uid}", f"rejected-{uid}"
    async with running(DEFINITION, stack, mongo_db=f"catalog_a_{uid}", consumer_group=f"c-a-{uid}"):
        await publisher.send_many(
            "merchants.products",
            [
                submitted(draft, merchant),
                command("product.stock_updated", draft, merchant, sku_id="default", stock=3),
                submitted(draft, f"other-{uid}"),  # not the owner
                submitted(resubmitted, merchant),
                submitted(resubmitted, merchant, price_fen=2990),
                submitted(cancelled, merchant),
                command("product.audit_cancelled", cancelled, merchant),
                submitted(listed, merchant),
                submitted(rejected, merchant),
            ],
        )
        # review answers once catalog asked it (live, the verdicts come after the submissions)
        reviewed = (listed, rejected)
        await until(lambda: all(outputs(probe, OUTPUTS, reviewed).values()), "the review requests")
        await publisher.send_many(
            "review.decisions",
            [
                verdict("review.approved", listed),
                verdict("review.rejected", rejected, reasons=[{"code": "banned_term"}]),
            ],
        )
        subjects = (draft, resubmitted, cancelled, listed, rejected)
        await until(
            lambda: all(len(v) >= 2 for v in outputs(probe, OUTPUTS, subjects).values()),
            "the scenario's events",
            show=lambda: outputs(probe, OUTPUTS, subjects),
        )
        await probe.settle()
    first = outputs(probe, OUTPUTS, subjects)
    refusals = [o[3] for o in first[draft] if o[1] == "product.refused"]
    assert [r["reasons"][0]["code"] for r in refusals] == [
        "product_not_listed",
        "not_product_owner",
    ]

    assert [o[1] for o in first[listed]] == ["product.review_requested", "product.listed"]
    assert [o[1] for o in first[rejected]] == ["product.review_requested", "product.rejected"]

    replayed = await replay(
        DEFINITION,
        stack,
        probe,
        first,
        topics=OUTPUTS,
        run=f"b_{uid}",
        reads_first=("review.decisions",),  # every verdict before its submission
    )
    assert replayed == first
