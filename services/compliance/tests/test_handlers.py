"""Compliance's handlers over an in-memory store: rulings, schedules, impact from the
projections, reports — real dispatch, no Kafka, no MongoDB (the middle test tier)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import pytest

from vitrine.contract.events import (
    EnforcementReported,
    EventData,
    ItemAdded,
    ItemRefused,
    ItemSuspended,
    PolicyAccepted,
    PolicyAnnounced,
    PolicyEnforcementCompleted,
    PolicyImpactAssessed,
    PolicyLifted,
    PolicyRejected,
    PolicyRetracted,
    ProductListed,
    ShopClosed,
    ShopRegistered,
    Source,
)
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME
from vitrine.tools.testing.handlers import run_batch
from vitrine_compliance import domain, repository
from vitrine_compliance.handlers import make_handlers
from vitrine_compliance.repository import InMemoryStore

pytestmark = pytest.mark.handlers

NO_3P = {
    "kind": "disallow_source",
    "surfaces": ["showcase"],
    "sources": [{"kind": "third_party_platform"}],
}


def announced(pid: str = "pol-1", **over: Any) -> PolicyAnnounced:
    data: dict[str, Any] = {
        "policy_id": pid,
        "title": "No third-party goods",
        "effective_at": (FIXED_TIME + timedelta(days=3)).isoformat(),
        "enforce_existing_at": (FIXED_TIME + timedelta(days=27)).isoformat(),
        "rules": [NO_3P],
        **over,
    }
    return PolicyAnnounced.model_validate(data, strict=False)


async def run(store: InMemoryStore, topic: str, *data: EventData, subject: str = "") -> Any:
    handlers = make_handlers(lambda _: store)
    return await run_batch(
        handlers, topic, *data, service="compliance", subject=subject, fields=KEYS
    )


#: What compliance's inputs are keyed by, first present first.
KEYS = ("policy_id", "product_id", "account_id", "offer_id")


def listed(pid: str, kind: str) -> ProductListed:
    return ProductListed(
        product_id=pid,
        merchant_id="m-1",
        version=1,
        source=Source(kind=kind, platform="jd" if kind == "third_party_platform" else None),  # type: ignore[arg-type]
        title="t",
        price_fen=100,
    )


async def test_announcement_is_accepted_scheduled_and_assessed_from_the_projections() -> None:
    store = InMemoryStore()
    await run(
        store,
        "catalog.products",
        listed("p-3p", "third_party_platform"),
        listed("p-ok", "channels_shop"),
    )
    await run(
        store,
        "showcase.items",
        ItemAdded(creator_id="c-1", product_id="p-3p", position=0),
        ItemAdded(creator_id="c-2", product_id="p-ok", position=0),
        ItemRefused(creator_id="c-3", product_id="p-3p", reasons=[]),
        subject="c-1",
    )
    assert set(store.projections[repository.ITEMS]) == {"c-1|p-3p", "c-2|p-ok"}

    uow = await run(store, "platform.policies", announced())
    accepted, impact = uow.events("compliance.rulings")
    assert isinstance(accepted, PolicyAccepted) and isinstance(impact, PolicyImpactAssessed)
    assert (impact.items, impact.creators, impact.assessed_at) == (1, 1, FIXED_TIME)
    assert store.policies["pol-1"].state == "scheduled"
    assert {k: (s["phase"], s["status"]) for k, s in store.schedules.items()} == {
        "pol-1:block_new": ("block_new", "pending"),
        "pol-1:enforce_existing": ("enforce_existing", "pending"),
    }


async def test_invalid_announcement_is_rejected_with_reasons_and_nothing_scheduled() -> None:
    store = InMemoryStore()
    uow = await run(store, "platform.policies", announced(rules=[]))
    [rejected] = uow.events()
    assert isinstance(rejected, PolicyRejected) and rejected.reasons[0].code == "empty_rule"
    assert store.schedules == {} and store.policies["pol-1"].state == "rejected"


async def test_retraction_cancels_pending_schedules_and_lifts() -> None:
    store = InMemoryStore()
    await run(store, "platform.policies", announced())
    uow = await run(store, "platform.policies", PolicyRetracted(policy_id="pol-1", reason="oops"))
    assert [type(e) for e in uow.events()] == [PolicyLifted]
    assert {s["status"] for s in store.schedules.values()} == {"cancelled"}
    again = await run(store, "platform.policies", PolicyRetracted(policy_id="pol-1"))
    assert again.emitted == []  # already lifted: ignored


async def test_reports_complete_a_phase_once_every_enforcer_reported() -> None:
    store = InMemoryStore()
    rule = {**NO_3P, "surfaces": ["showcase", "distribution"]}
    await run(store, "platform.policies", announced(rules=[rule]))
    # fire both phases through the domain, as the scheduler would
    fired = domain.fire(store.policies["pol-1"], "enforce_existing", FIXED_TIME).state.policy
    assert fired is not None
    store.policies["pol-1"] = fired

    def report(service: Literal["showcase", "distribution"]) -> EnforcementReported:
        return EnforcementReported(
            policy_id="pol-1", service=service, phase="enforce_existing", affected=2
        )

    first = await run(store, "compliance.reports", report("showcase"))
    assert first.emitted == []
    second = await run(store, "compliance.reports", report("distribution"), report("showcase"))
    [done] = second.events()
    assert isinstance(done, PolicyEnforcementCompleted)
    assert done.counts == {"showcase": 2, "distribution": 2}


async def test_projections_fold_in_order_and_ignore_what_they_never_saw() -> None:
    store = InMemoryStore()
    await run(
        store,
        "showcase.items",
        ItemSuspended(creator_id="c-9", product_id="p-9", reason="policy", policy_id="pol-1"),
        ItemAdded(creator_id="c-1", product_id="p-1", position=0),
        ItemSuspended(creator_id="c-1", product_id="p-1", reason="policy", policy_id="pol-1"),
        subject="c-1",
    )
    assert store.projections[repository.ITEMS] == {
        "c-1|p-1": {
            "_id": "c-1|p-1",
            "creator_id": "c-1",
            "product_id": "p-1",
            "offer_id": None,
            "status": "suspended",
            "suspended_reason": "policy",
        }
    }
    await run(
        store,
        "accounts.shops",
        ShopRegistered(account_id="a-1", shop_id="s-1", shop_kind="channels_shop"),
        ShopRegistered(account_id="a-1", shop_id="s-2", shop_kind="mini_program"),
        ShopClosed(account_id="a-1", shop_id="s-1"),
        ShopClosed(account_id="a-2", shop_id="s-1"),
    )
    accounts = store.projections[repository.ACCOUNTS]
    assert [s["shop_id"] for s in accounts["a-1"]["shops"]] == ["s-2"] and "a-2" not in accounts


async def test_impact_counts_items_of_open_live_carts_for_rules_on_live() -> None:
    from vitrine.contract.events import (
        LiveItemAdded,
        LiveItemRemoved,
        LiveItemSuspended,
        LiveSessionEnded,
    )

    store = InMemoryStore()
    await run(store, "catalog.products", listed("p-3p", "third_party_platform"))
    await run(store, "catalog.products", listed("p-3q", "third_party_platform"))
    cart = [
        LiveItemAdded(creator_id="c-1", session_id="s-1", product_id="p-3p", position=0),
        LiveItemAdded(creator_id="c-1", session_id="s-1", product_id="p-3q", position=1),
        LiveItemAdded(creator_id="c-2", session_id="s-2", product_id="p-3p", position=0),
        LiveItemAdded(creator_id="c-3", session_id="s-3", product_id="p-3p", position=0),
        LiveItemSuspended(creator_id="c-3", session_id="s-3", product_id="p-3p", reason="sold_out"),
        LiveItemAdded(creator_id="c-4", session_id="s-4", product_id="p-3p", position=0),
        LiveItemRemoved(creator_id="c-4", session_id="s-4", product_id="p-3p"),
    ]
    await run(store, "live.rooms", *cart, subject="c-1")
    ended = LiveSessionEnded(creator_id="c-2", session_id="s-2", items=1)
    await run(store, "live.rooms", ended, subject="c-2")
    assert set(store.projections[repository.CART_ITEMS]) == {"s-1|p-3p", "s-1|p-3q", "s-3|p-3p"}
    assert set(store.projections[repository.LIVE_SESSIONS]) == {"s-1", "s-3", "s-4"}

    on_live = {**NO_3P, "surfaces": ["live"]}
    uow = await run(store, "platform.policies", announced(rules=[on_live]))
    _, impact = uow.events("compliance.rulings")
    assert isinstance(impact, PolicyImpactAssessed)
    # s-1's two active items; s-3's is suspended, s-2 ended, s-4's was removed
    assert (impact.items, impact.cart_items, impact.creators) == (0, 2, 1)
    uow = await run(store, "platform.policies", announced("pol-2"))  # showcase only
    _, impact = uow.events("compliance.rulings")
    assert isinstance(impact, PolicyImpactAssessed) and impact.cart_items == 0
