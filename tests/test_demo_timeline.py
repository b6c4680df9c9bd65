"""The seed's 2022 timeline, end to end: all five services in-process, the demo played on them.

Every step's expected events must appear on their topics, and nothing listed as ``absent``
(nor any dead letter about the demo's aggregates). Policies are platform-wide, so the demo
gets a fresh embedded stack of its own: other tests' policies (real or fake rulings) must
not change its story.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio

from vitrine.demo import DemoResult, load_timeline, play
from vitrine.devstack import EmbeddedStack, free_port
from vitrine.testing.services import running
from vitrine.testing.stack import StackInfo


def test_timeline_is_valid_and_tells_the_seed_story() -> None:
    timeline = load_timeline()
    assert len(timeline.steps) >= 15
    assert timeline.policy_ids == [
        "pol-2022-03-02-third-party",
        "pol-2022-03-07-self-operated",
        "pol-2022-07-21-channels-shop",
        "pol-2022-11-30-mini-shop",
    ]
    events = [e for s in timeline.steps for _, e in s.events]
    assert all(e["time"].startswith("2022-") and e["time"].endswith("+08:00") for e in events)
    kinds = {e["data"]["shop_kind"] for e in events if e["type"] == "shop.registered"}
    assert kinds == {"channels_shop", "wechat_mini_shop", "mini_program"}
    suffixed = load_timeline(run_id="r0")
    assert all(s.endswith(".r0") for s in suffixed.subjects)


@pytest.fixture(scope="module")
def demo_stack(stack: StackInfo) -> Iterator[StackInfo]:
    """A fresh embedded stack (the session's may hold other tests' policies)."""
    if stack.kind != "embedded":
        yield stack
        return
    with tempfile.TemporaryDirectory(prefix="vitrine-demo-") as tmp:
        embedded = EmbeddedStack(free_port(), free_port(), Path(tmp))
        with embedded:
            yield StackInfo("embedded", embedded.kafka_bootstrap, embedded.mongo_url, embedded)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def played(demo_stack: StackInfo) -> AsyncIterator[tuple[DemoResult, list[str]]]:
    from vitrine_catalog.service import DEFINITION as CATALOG
    from vitrine_compliance.service import DEFINITION as COMPLIANCE
    from vitrine_distribution.service import DEFINITION as DISTRIBUTION
    from vitrine_review.service import DEFINITION as REVIEW
    from vitrine_showcase.service import DEFINITION as SHOWCASE

    lines: list[str] = []
    async with AsyncExitStack() as services:
        for defn in (CATALOG, REVIEW, SHOWCASE, DISTRIBUTION, COMPLIANCE):
            await services.enter_async_context(running(defn, demo_stack))
        run_id = "" if demo_stack.embedded is not None else None
        result = await play(
            demo_stack.kafka_bootstrap, narrate=lines.append, run_id=run_id, step_timeout=45
        )
        yield result, lines
    print("\n".join(lines))


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_every_step_answers_as_expected(played: tuple[DemoResult, list[str]]) -> None:
    result, lines = played
    assert result.ok, "\n".join([*result.problems(), "", *lines])
    assert result.count("dead_letter") == 0


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_the_story_in_numbers(played: tuple[DemoResult, list[str]]) -> None:
    result, _ = played

    def n(type: str) -> int:
        return result.count(type)

    assert n("product.listed") == 7 and n("product.rejected") == 1
    assert n("policy.accepted") == 4 and n("policy.rejected") == 0
    assert n("policy.in_force") == 7  # 3 policies x 2 phases + block_new of the shop rule
    assert n("policy.lifted") == 1
    assert n("policy.enforcement_completed") == 4  # 3 x enforce_existing + 1 lifted
    assert n("showcase.item_suspended") == 2 + 2 + 4
    assert n("showcase.item_restored") == 2
    assert n("showcase.item_refused") == 3
    assert n("offer.suspended") == 2 and n("offer.refused") == 1
    assert n("commission.accrued") == 3 and n("commission.refused") == 1
    assert n("commission.settled") == 1 and n("commission.adjusted") == 1


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_narration_reads_in_plain_words(played: tuple[DemoResult, list[str]]) -> None:
    _, lines = played
    text = "\n".join(lines)
    for phrase in ("REFUSED", "SUSPENDED", "RESTORED", "ACCRUED", "SETTLED", "LIFTED"):
        assert phrase in text
    assert "shop_required" in text and "source_disallowed" in text
