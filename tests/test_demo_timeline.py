"""The seed's 2022 timeline, end to end: all six services in-process, the demo played on them.

Every step's expected events must appear on their topics, and nothing listed as ``absent``
(nor any dead letter about the demo's aggregates). Policies are platform-wide, so the demo
gets a fresh embedded stack of its own: other tests' policies (real or fake rulings) must
not change its story.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from vitrine.contract.topics import all_topic_names
from vitrine.tools.demo import DemoResult, Names, Observed, describe, load_timeline, play
from vitrine.tools.devstack import EmbeddedStack, free_port
from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event
from vitrine.tools.testing.services import running
from vitrine.tools.testing.stack import StackInfo


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


def test_narration_lines() -> None:
    names = Names("r0", {"p-vase.r0": "Celadon vase"})

    def line(topic: str, type: str, subject: str, data: dict[str, Any]) -> str | None:
        return describe(Observed(topic, subject, type, data, {}), names)

    assert (
        line(
            "showcase.items",
            "showcase.item_suspended",
            "c-zhou.r0",
            {
                "creator_id": "c-zhou.r0",
                "product_id": "p-vase.r0",
                "reason": "policy",
                "policy_id": "pol-1.r0",
            },
        )
        == "showcase      SUSPENDED 'Celadon vase' in c-zhou's showcase (by pol-1)"
    )
    assert line(
        "compliance.rulings",
        "policy.impact_assessed",
        "pol-1.r0",
        {"policy_id": "pol-1.r0", "items": 1, "offers": 0, "creators": 1, "merchants": 2},
    ) == (
        "compliance    impact of pol-1: it would touch 1 showcase item, 0 offers, 1 creator,"
        " 2 merchants"
    )
    assert (
        line(
            "distribution.commissions",
            "commission.accrued",
            "ord-1.r0",
            {
                "order_id": "ord-1.r0",
                "creator_id": "c-lin.r0",
                "commission_fen": 598,
                "commission_bps": 2000,
                "amount_fen": 2990,
            },
        )
        == "distribution  ACCRUED ¥5.98 for c-lin on order ord-1 (20 % of ¥29.90)"
    )
    assert line("review.decisions", "review.approved", "p-vase.r0", {}) is None


@pytest.fixture(scope="module")
def demo_stack(stack: StackInfo) -> Iterator[StackInfo]:
    """A fresh embedded stack (the session's may hold other tests' policies)."""
    if stack.kind != "embedded":
        yield stack
        return
    with tempfile.TemporaryDirectory(prefix="vitrine-demo-") as tmp:
        embedded = EmbeddedStack(free_port(), free_port(), Path(tmp))
        with embedded:
            yield StackInfo(
                "embedded",
                embedded.kafka_bootstrap,
                embedded.mongo_url,
                embedded,
                kafka_standin=embedded.kafka_standin,
            )


@dataclass
class System:
    """All six services running in-process on the demo's stack, with a probe and publisher."""

    stack: StackInfo
    probe: TopicProbe
    publisher: Publisher
    http: dict[str, httpx.AsyncClient]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def system(demo_stack: StackInfo) -> AsyncIterator[System]:
    from vitrine_catalog.service import DEFINITION as CATALOG
    from vitrine_compliance.service import DEFINITION as COMPLIANCE
    from vitrine_distribution.service import DEFINITION as DISTRIBUTION
    from vitrine_live.service import DEFINITION as LIVE
    from vitrine_review.service import DEFINITION as REVIEW
    from vitrine_showcase.service import DEFINITION as SHOWCASE

    async with AsyncExitStack() as ctx:
        http: dict[str, httpx.AsyncClient] = {}
        for defn in (CATALOG, REVIEW, SHOWCASE, DISTRIBUTION, COMPLIANCE, LIVE):
            _, http[defn.name] = await ctx.enter_async_context(running(defn, demo_stack))
        probe = await TopicProbe(demo_stack.kafka_bootstrap, all_topic_names()).start()
        ctx.push_async_callback(probe.stop)
        publisher = await Publisher(demo_stack.kafka_bootstrap).start()
        ctx.push_async_callback(publisher.stop)
        yield System(demo_stack, probe, publisher, http)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def played(system: System) -> AsyncIterator[tuple[DemoResult, list[str]]]:
    lines: list[str] = []
    run_id = "" if system.stack.embedded is not None else None
    result = await play(
        system.stack.kafka_bootstrap, narrate=lines.append, run_id=run_id, step_timeout=45
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
    # 03-02, 03-31 (policy), 03-31 again as distribution suspends the offers two of those
    # items were taken through (offer_unavailable), 07-30
    assert n("showcase.item_suspended") == 2 + 2 + 2 + 4
    assert n("showcase.item_restored") == 2
    assert n("showcase.item_refused") == 3
    assert n("offer.suspended") == 2 and n("offer.refused") == 1
    assert n("commission.accrued") == 3 and n("commission.refused") == 1
    assert n("commission.settled") == 1 and n("commission.adjusted") == 1
    # 07-04 Lin's session (2 items, JD earbuds refused); 11-29 He's session, whose Mini Shop
    # tray the 11-30 cut-off suspends and where the vase is refused on 12-01
    assert n("live.session_started") == 2 and n("live.session_ended") == 2
    assert n("live.item_added") == 4 and n("live.item_refused") == 2
    assert n("live.item_suspended") == 1 and n("live.item_restored") == 0


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_narration_reads_in_plain_words(played: tuple[DemoResult, list[str]]) -> None:
    _, lines = played
    text = "\n".join(lines)
    for phrase in ("REFUSED", "SUSPENDED", "RESTORED", "ACCRUED", "SETTLED", "LIFTED"):
        assert phrase in text
    assert "shop_required" in text and "source_disallowed" in text


# --- policies across services (after the demo, on the same system) ------------------------------

PAST = datetime(2022, 12, 1, tzinfo=UTC)
RULINGS = "compliance.rulings"
ITEMS = "showcase.items"


class Scene:
    """A creator with a Channels Shop and a listed product from a source no demo rule names."""

    def __init__(self, system: System, source_kind: str) -> None:
        self.system = system
        u = uuid.uuid4().hex[:6]
        self.creator, self.merchant, self.product = f"c-{u}", f"m-{u}", f"p-{u}"
        self.source_kind = source_kind
        self.u = u

    async def send(self, topic: str, type: str, subject: str, data: dict[str, Any]) -> None:
        await self.system.publisher.send(topic, cloud_event(type, subject, data))

    async def build(self) -> None:
        await self.send(
            "accounts.shops",
            "shop.registered",
            self.creator,
            {"account_id": self.creator, "shop_id": f"s-{self.u}", "shop_kind": "channels_shop"},
        )
        await self.send(
            "merchants.products",
            "product.submitted",
            self.product,
            {
                "product_id": self.product,
                "merchant_id": self.merchant,
                "title": f"Alliance goods {self.u}",
                "category": "home",
                "images": ["https://img.vitrine.example/a.jpg"],
                "price_fen": 1000,
                "stock": 5,
                "source": {"kind": self.source_kind},
            },
        )
        probe = self.system.probe
        await probe.wait_for("catalog.products", type="product.listed", subject=self.product)
        await asyncio.sleep(1.0)  # showcase applies the listing and the shop (no output)
        await self.send(
            "creators.showcase",
            "showcase.add_requested",
            self.creator,
            {"creator_id": self.creator, "product_id": self.product},
        )
        await probe.wait_for(ITEMS, type="showcase.item_added", subject=self.creator)

    def policy(self, pid: str, effective: datetime, enforce: datetime | None) -> dict[str, Any]:
        return {
            "policy_id": pid,
            "title": f"No {self.source_kind} on the showcase",
            "effective_at": effective.isoformat(),
            "enforce_existing_at": enforce.isoformat() if enforce else None,
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["showcase"],
                    "sources": [{"kind": self.source_kind}],
                }
            ],
        }

    async def announce(self, data: dict[str, Any]) -> None:
        await self.send("platform.policies", "policy.announced", data["policy_id"], data)

    async def retract(self, pid: str) -> None:
        await self.send("platform.policies", "policy.retracted", pid, {"policy_id": pid})

    def item_events(self, type: str, **data: Any) -> list[Any]:
        return self.system.probe.events(
            ITEMS, type=type, subject=self.creator, product_id=self.product, **data
        )


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_overlapping_policies_restore_only_when_the_last_is_lifted(system: System) -> None:
    scene = Scene(system, "mini_program_alliance")
    await scene.build()
    a, b = f"pol-a-{scene.u}", f"pol-b-{scene.u}"
    await scene.announce(scene.policy(a, PAST, PAST))
    await system.probe.wait_for(ITEMS, type="showcase.item_suspended", policy_id=a)
    await scene.announce(scene.policy(b, PAST, PAST))
    await system.probe.wait_for(RULINGS, type="policy.enforcement_completed", subject=b)
    done_b = system.probe.events(RULINGS, type="policy.enforcement_completed", subject=b)
    assert done_b[0].data["counts"] == {"showcase": 1}  # b holds the item too

    await scene.retract(a)
    await system.probe.wait_for(
        RULINGS, type="policy.enforcement_completed", subject=a, phase="lifted"
    )
    await system.probe.settle(1.0)
    assert scene.item_events("showcase.item_restored") == []  # b still holds it

    await scene.retract(b)
    await system.probe.wait_for(
        ITEMS, type="showcase.item_restored", subject=scene.creator, policy_id=b
    )
    await system.probe.settle(1.0)
    assert len(scene.item_events("showcase.item_restored")) == 1


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_amendment_before_effect_moves_enforcement_earlier(system: System) -> None:
    scene = Scene(system, "mini_shop_alliance")
    await scene.build()
    pid = f"pol-amend-{scene.u}"
    now = datetime.now(UTC)
    await scene.announce(scene.policy(pid, now + timedelta(hours=1), now + timedelta(hours=2)))
    await system.probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    (first,) = system.probe.events(RULINGS, type="policy.impact_assessed", subject=pid)
    assert first.data["items"] >= 1
    soon = datetime.now(UTC) + timedelta(seconds=2)
    await scene.announce(scene.policy(pid, soon, soon))
    (suspended,) = await system.probe.wait_for(
        ITEMS, type="showcase.item_suspended", subject=scene.creator, policy_id=pid, timeout=20
    )
    assert suspended.data["product_id"] == scene.product
    phases = [
        r.data["phase"] for r in system.probe.events(RULINGS, type="policy.in_force", subject=pid)
    ]
    assert phases == ["block_new", "enforce_existing"]
    await scene.retract(pid)
    await system.probe.wait_for(
        ITEMS, type="showcase.item_restored", subject=scene.creator, policy_id=pid
    )


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_retraction_before_effect_touches_nothing(system: System) -> None:
    scene = Scene(system, "mini_shop_alliance")
    await scene.build()
    pid = f"pol-early-{scene.u}"
    soon = datetime.now(UTC) + timedelta(seconds=3)
    await scene.announce(scene.policy(pid, soon, soon))
    await system.probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    await scene.retract(pid)
    await system.probe.wait_for(RULINGS, type="policy.lifted", subject=pid)
    await asyncio.sleep(max((soon - datetime.now(UTC)).total_seconds(), 0) + 1.5)
    await system.probe.settle(1.0)
    assert system.probe.events(RULINGS, type="policy.in_force", subject=pid) == []
    assert scene.item_events("showcase.item_suspended") == []
    body = (await system.http["compliance"].get(f"/policies/{pid}")).json()
    assert body["state"] == "lifted"
    assert [s["status"] for s in body["schedules"]] == ["cancelled", "cancelled"]
