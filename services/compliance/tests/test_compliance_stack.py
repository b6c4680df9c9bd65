"""Compliance against the real stack (Kafka + MongoDB), with a movable clock.

One compliance instance serves the module; its clock is real time plus an offset the tests
move forward, so near-future schedules are proven without sleeping until they are due.
Every policy here disallows a platform invented for the test, so no other test's goods are
touched, and policies left pending are retracted at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from vitrine.tools.testing.services import running
from vitrine_compliance.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

RULINGS = "compliance.rulings"
PAST = datetime(2022, 3, 7, tzinfo=UTC)


@dataclass
class MovableClock:
    """Real time plus an offset that tests move forward (never sleep until the due time)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=seconds)
        return self()


class Service:
    def __init__(self, app: Any, http: httpx.AsyncClient, clock: Any) -> None:
        self.app, self.http, self.clock = app, http, clock

    @property
    def db(self) -> Any:
        return self.app.state.runtime().db

    async def policy(self, pid: str) -> dict[str, Any]:
        resp = await self.http.get(f"/policies/{pid}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def wait_state(self, pid: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            resp = await self.http.get(f"/policies/{pid}")
            if resp.status_code == 200 and resp.json()["state"] == state:
                body: dict[str, Any] = resp.json()
                return body
            assert time.monotonic() < deadline, f"{pid} never reached {state}: {resp.text}"
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service(stack: Any) -> AsyncIterator[Service]:
    clock = MovableClock()
    async with running(DEFINITION, stack, clock=clock) as (app, http):
        yield Service(app, http, clock)


def in_force(probe: Any, pid: str) -> list[str]:
    return [r.data["phase"] for r in probe.events(RULINGS, type="policy.in_force", subject=pid)]


# --- validation --------------------------------------------------------------------------------


async def test_invalid_announcements_are_rejected_with_reason_codes(
    service: Service, probe: Any, platform: Any
) -> None:
    now = service.clock()
    cases = {
        "empty_rule": platform.policy(f"pol-e-{platform.uid()}", now, None, rules=[]),
        "unknown_rule": platform.policy(
            f"pol-u-{platform.uid()}", now, None, rules=[{"kind": "ban", "surfaces": ["live"]}]
        ),
        "invalid_schedule": platform.policy(
            f"pol-s-{platform.uid()}", now, now - timedelta(days=1)
        ),
    }
    late = platform.policy(f"pol-a-{platform.uid()}", PAST, PAST)
    late["announced_at"] = (PAST + timedelta(days=1)).isoformat()
    cases["invalid_schedule/announced_at"] = late
    for data in cases.values():
        await platform.announce(data)
    for name, data in cases.items():
        pid = data["policy_id"]
        (rejected,) = await probe.wait_for(RULINGS, type="policy.rejected", subject=pid)
        assert [r["code"] for r in rejected.data["reasons"]] == [name.split("/")[0]]
        assert rejected.data["reasons"][0]["policy_id"] == pid
        body = await service.wait_state(pid, "rejected")
        assert body["last_rejection"][0]["code"] == name.split("/")[0]
        assert body["schedules"] == []
    await probe.settle(1.0)
    for data in cases.values():
        pid = data["policy_id"]
        assert probe.events(RULINGS, type="policy.accepted", subject=pid) == []
        assert probe.events(RULINGS, type="policy.in_force", subject=pid) == []


# --- impact ------------------------------------------------------------------------------------


async def test_impact_counts_items_offers_creators_merchants_from_projections(
    service: Service, probe: Any, platform: Any
) -> None:
    u = platform.uid()
    plat = f"t{u}"
    third = {"kind": "third_party_platform", "platform": plat}
    m1, m2 = f"m1-{u}", f"m2-{u}"
    products = {
        f"p1-{u}": (m1, third),
        f"p2-{u}": (m2, third),
        f"p3-{u}": (m1, {"kind": "channels_shop"}),
    }
    for pid, (merchant, source) in products.items():
        await platform.fact(
            "catalog.products",
            "product.listed",
            pid,
            {
                "product_id": pid,
                "merchant_id": merchant,
                "version": 1,
                "source": source,
                "title": "Goods",
                "price_fen": 100,
            },
        )
    items = [
        (f"c1-{u}", f"p1-{u}"),
        (f"c1-{u}", f"p2-{u}"),
        (f"c2-{u}", f"p1-{u}"),
        (f"c2-{u}", f"p3-{u}"),
        (f"c3-{u}", f"p2-{u}"),
    ]
    for pos, (creator, pid) in enumerate(items):
        await platform.fact(
            "showcase.items",
            "showcase.item_added",
            creator,
            {"creator_id": creator, "product_id": pid, "position": pos},
        )
    # c3's item gets suspended (already off) and one of c1's is removed: neither counts.
    await platform.fact(
        "showcase.items",
        "showcase.item_suspended",
        f"c3-{u}",
        {"creator_id": f"c3-{u}", "product_id": f"p2-{u}", "reason": "policy"},
    )
    await platform.fact(
        "showcase.items",
        "showcase.item_removed",
        f"c1-{u}",
        {"creator_id": f"c1-{u}", "product_id": f"p2-{u}"},
    )
    for oid, pid, merchant in [
        (f"o1-{u}", f"p1-{u}", m1),
        (f"o2-{u}", f"p2-{u}", m2),
        (f"o3-{u}", f"p3-{u}", m1),
    ]:
        await platform.fact(
            "distribution.offers",
            "offer.activated",
            oid,
            {
                "offer_id": oid,
                "product_id": pid,
                "merchant_id": merchant,
                "commission_bps": 1000,
                "plan": "general",
                "effective_at": datetime.now(UTC).isoformat(),
            },
        )
    # Wait until the projections hold all of it (they have no output of their own).
    deadline = time.monotonic() + 20
    while True:
        n_items = await service.db["items"].count_documents({"_id": {"$regex": f"-{u}$"}})
        n_suspended = await service.db["items"].count_documents(
            {"status": "suspended", "creator_id": f"c3-{u}"}
        )
        n_offers = await service.db["offers"].count_documents({"product_id": {"$regex": u}})
        n_products = await service.db["products"].count_documents({"merchant_id": {"$regex": u}})
        if (n_items, n_suspended, n_offers, n_products) == (4, 1, 3, 3):
            break
        assert time.monotonic() < deadline, (n_items, n_suspended, n_offers, n_products)
        await asyncio.sleep(0.1)

    far = service.clock() + timedelta(days=30)
    pid = f"pol-impact-{u}"
    await platform.announce(platform.policy(pid, far, far, rules=[platform.third_party_rule(plat)]))
    (assessed,) = await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    # items: c1/p1, c2/p1 (c1/p2 removed, c3/p2 suspended, c2/p3 not third-party)
    # offers: o1, o2; creators: c1, c2; merchants: m1 (items+offer), m2 (offer)
    assert {k: assessed.data[k] for k in ("items", "offers", "creators", "merchants")} == {
        "items": 2,
        "offers": 2,
        "creators": 2,
        "merchants": 2,
    }
    body = await service.policy(pid)
    assert body["impact"]["items"] == 2 and body["impact"]["unknown_products"] == 0

    # Exempting m2 spares its offer; the amendment is re-assessed.
    amended = platform.policy(
        pid, far, far, rules=[platform.third_party_rule(plat)], exemptions={"merchant_ids": [m2]}
    )
    await platform.announce(amended)
    assessed = await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid, count=2)
    assert {k: assessed[-1].data[k] for k in ("items", "offers", "creators", "merchants")} == {
        "items": 2,
        "offers": 1,
        "creators": 2,
        "merchants": 1,
    }
    order = [r.type for r in probe.events(RULINGS, subject=pid)]
    assert order == ["policy.accepted", "policy.impact_assessed"] * 2
    await platform.retract(pid)
    await service.wait_state(pid, "lifted")


# --- scheduling --------------------------------------------------------------------------------


async def test_an_idle_scheduler_is_woken_by_the_commit_that_writes_a_schedule(
    service: Service, probe: Any, platform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With nothing pending the scheduler sleeps IDLE_SLEEP (no query twice a second on an idle
    # service); a commit must wake it. A minute's idle sleep makes a missing wake-up plain.
    from vitrine_compliance import repository, scheduler

    assert await service.db[repository.SCHEDULES].count_documents({"status": "pending"}) == 0
    monkeypatch.setattr(scheduler, "IDLE_SLEEP", 60.0)
    await asyncio.sleep(scheduler.MAX_SLEEP + 5.5)  # the poll now sleeps for a minute
    pid = f"pol-wake-{platform.uid()}"
    data = platform.policy(pid, PAST, PAST + timedelta(days=24))
    data["announced_at"] = (PAST - timedelta(days=3)).isoformat()
    await platform.announce(data)
    await probe.wait_for(
        RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing", timeout=40
    )
    await platform.retract(pid)


async def test_block_new_then_enforce_existing_fire_once_each_in_order(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-sched-{platform.uid()}"
    base = service.clock()
    effective, enforce = base + timedelta(seconds=60), base + timedelta(seconds=120)
    await platform.announce(platform.policy(pid, effective, enforce))
    await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    body = await service.wait_state(pid, "scheduled")
    assert [(s["phase"], s["status"]) for s in body["schedules"]] == [
        ("block_new", "pending"),
        ("enforce_existing", "pending"),
    ]
    await probe.settle(1.0)
    assert in_force(probe, pid) == []  # not due yet

    service.clock.advance(61)
    await probe.wait_for(RULINGS, type="policy.in_force", subject=pid, phase="block_new")
    body = await service.wait_state(pid, "in_force")
    assert body["phase"] == "block_new"
    await probe.settle(1.0)
    assert in_force(probe, pid) == ["block_new"]

    service.clock.advance(60)
    await probe.wait_for(RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing")
    await probe.settle(1.5)
    assert in_force(probe, pid) == ["block_new", "enforce_existing"]
    events = probe.events(RULINGS, type="policy.in_force", subject=pid)
    assert events[0].data["rules"][0]["kind"] == "disallow_source"
    assert events[0].data["effective_at"] and events[1].data["enforce_existing_at"]
    assert events[0].headers["ce-type"] == "policy.in_force"
    body = await service.policy(pid)
    assert [s["status"] for s in body["schedules"]] == ["fired", "fired"]
    assert body["enforcement"]["phases"]["enforce_existing"]["waiting_for"] == [
        "showcase",
        "distribution",
    ]
    # The rulings of one policy are correlated with its announcement.
    (announced,) = probe.events("platform.policies", subject=pid)
    assert {r.event["correlationid"] for r in probe.events(RULINGS, subject=pid)} == {
        announced.event["id"]
    }
    await platform.retract(pid)


async def test_times_in_the_past_fire_at_once_in_order(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-past-{platform.uid()}"
    data = platform.policy(pid, PAST, PAST + timedelta(days=24))
    data["announced_at"] = (PAST - timedelta(days=3)).isoformat()
    started = time.monotonic()
    await platform.announce(data)
    await probe.wait_for(RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing")
    assert time.monotonic() - started < 10
    await probe.settle(1.0)
    assert [r.type for r in probe.events(RULINGS, subject=pid)] == [
        "policy.accepted",
        "policy.impact_assessed",
        "policy.in_force",
        "policy.in_force",
    ]
    assert in_force(probe, pid) == ["block_new", "enforce_existing"]
    (accepted,) = probe.events(RULINGS, type="policy.accepted", subject=pid)
    assert accepted.data["effective_at"].startswith("2022-03-07")
    await platform.retract(pid)


async def test_amendment_before_effect_reschedules(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-amend-{platform.uid()}"
    base = service.clock()
    await platform.announce(
        platform.policy(pid, base + timedelta(seconds=300), base + timedelta(seconds=600))
    )
    await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    # Amended: earlier, and existing goods left alone (no enforce_existing).
    amended = platform.policy(pid, base + timedelta(seconds=30), None, title="Amended title")
    await platform.announce(amended)
    await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid, count=2)
    body = await service.wait_state(pid, "scheduled")
    assert body["revision"] == 2 and body["title"] == "Amended title"
    assert [(s["phase"], s["status"], s["revision"]) for s in body["schedules"]] == [
        ("block_new", "pending", 2),
        ("enforce_existing", "cancelled", 1),
    ]
    service.clock.advance(31)
    (fired,) = await probe.wait_for(RULINGS, type="policy.in_force", subject=pid)
    assert fired.data["phase"] == "block_new"
    assert fired.data.get("enforce_existing_at") is None
    service.clock.advance(600)  # past the original enforce_existing_at: nothing more fires
    await asyncio.sleep(1.0)
    await probe.settle(1.0)
    assert in_force(probe, pid) == ["block_new"]

    # After effect an amendment is refused and changes nothing.
    await platform.announce(platform.policy(pid, base, None, title="Too late"))
    (rejected,) = await probe.wait_for(RULINGS, type="policy.rejected", subject=pid)
    assert [r["code"] for r in rejected.data["reasons"]] == ["already_in_force"]
    body = await service.policy(pid)
    assert body["state"] == "in_force" and body["title"] == "Amended title"
    await platform.retract(pid)


async def test_retraction_before_effect_cancels_the_schedules(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-retract-early-{platform.uid()}"
    base = service.clock()
    await platform.announce(
        platform.policy(pid, base + timedelta(seconds=30), base + timedelta(seconds=60))
    )
    await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    await platform.retract(pid, "announcement deleted")
    (lifted,) = await probe.wait_for(RULINGS, type="policy.lifted", subject=pid)
    assert lifted.data["reason"] == "announcement deleted"
    body = await service.wait_state(pid, "lifted")
    assert [s["status"] for s in body["schedules"]] == ["cancelled", "cancelled"]
    assert "lifted" not in body["enforcement"]["phases"]  # nothing enforced, no report due
    service.clock.advance(120)
    await asyncio.sleep(1.0)
    await probe.settle(1.0)
    assert in_force(probe, pid) == []
    # A lifted policy id cannot be announced again.
    await platform.announce(platform.policy(pid, base, None))
    (rejected,) = await probe.wait_for(RULINGS, type="policy.rejected", subject=pid)
    assert rejected.data["reasons"][0]["code"] == "policy_lifted"


async def test_retraction_after_effect_lifts_and_collects_restoration_reports(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-retract-late-{platform.uid()}"
    base = service.clock()
    await platform.announce(platform.policy(pid, PAST, base + timedelta(seconds=60)))
    await probe.wait_for(RULINGS, type="policy.in_force", subject=pid, phase="block_new")
    await platform.retract(pid, "deleted a few days later")
    await probe.wait_for(RULINGS, type="policy.lifted", subject=pid)
    body = await service.wait_state(pid, "lifted")
    assert [(s["phase"], s["status"]) for s in body["schedules"]] == [
        ("block_new", "fired"),
        ("enforce_existing", "cancelled"),
    ]
    assert body["enforcement"]["phases"]["lifted"]["waiting_for"] == ["showcase", "distribution"]
    service.clock.advance(120)
    await platform.report(pid, "showcase", "lifted", 4)
    await platform.report(pid, "distribution", "lifted", 1)
    (done,) = await probe.wait_for(RULINGS, type="policy.enforcement_completed", subject=pid)
    assert done.data == {
        "policy_id": pid,
        "phase": "lifted",
        "counts": {"showcase": 4, "distribution": 1},
    }
    await probe.settle(1.0)
    assert in_force(probe, pid) == ["block_new"]


# --- enforcement -------------------------------------------------------------------------------


async def test_completion_once_both_services_reported(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-done-{platform.uid()}"
    await platform.announce(platform.policy(pid, PAST, PAST))
    await probe.wait_for(RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing")
    await platform.report(pid, "showcase", "block_new", 0)  # recorded, completes nothing
    await platform.report(pid, "showcase", "enforce_existing", 7)
    await probe.settle(1.0)
    assert probe.events(RULINGS, type="policy.enforcement_completed", subject=pid) == []
    body = await service.policy(pid)
    progress = body["enforcement"]["phases"]["enforce_existing"]
    assert progress["reported"] == {"showcase": 7} and progress["waiting_for"] == ["distribution"]

    await platform.report(pid, "distribution", "enforce_existing", 3)
    (done,) = await probe.wait_for(RULINGS, type="policy.enforcement_completed", subject=pid)
    assert done.data["phase"] == "enforce_existing"
    assert done.data["counts"] == {"showcase": 7, "distribution": 3}
    await platform.report(pid, "distribution", "enforce_existing", 3)  # a repeat report
    await probe.settle(1.0)
    assert len(probe.events(RULINGS, type="policy.enforcement_completed", subject=pid)) == 1
    body = await service.policy(pid)
    assert body["enforcement"]["phases"]["enforce_existing"]["completed_at"]
    await platform.retract(pid)


async def test_live_only_policy_waits_for_lives_report(
    service: Service, probe: Any, platform: Any
) -> None:
    pid = f"pol-live-{platform.uid()}"
    rule = platform.third_party_rule(f"t{platform.uid()}", surfaces=["live"])
    await platform.announce(platform.policy(pid, PAST, PAST, rules=[rule]))
    await probe.wait_for(
        RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing", timeout=30
    )
    await probe.settle()
    assert probe.events(RULINGS, type="policy.enforcement_completed", subject=pid) == []
    await platform.report(pid, "live", "enforce_existing", 3)
    (done,) = await probe.wait_for(RULINGS, type="policy.enforcement_completed", subject=pid)
    assert done.data["counts"] == {"live": 3} and done.data["phase"] == "enforce_existing"
    await platform.retract(pid)
    await probe.wait_for(RULINGS, type="policy.lifted", subject=pid)
    await platform.report(pid, "live", "lifted", 3)
    done2 = await probe.wait_for(RULINGS, type="policy.enforcement_completed", subject=pid, count=2)
    assert done2[-1].data["phase"] == "lifted"


async def test_http_lists_policies_by_state(service: Service, platform: Any) -> None:
    resp = await service.http.get("/policies", params={"state": "lifted", "limit": 1000})
    assert resp.status_code == 200
    assert all(p["state"] == "lifted" for p in resp.json()["policies"])
    assert (await service.http.get("/policies", params={"state": "bogus"})).status_code == 400
    assert (await service.http.get("/policies/nope")).status_code == 404


async def test_a_firing_that_fails_before_commit_fires_once_later(
    service: Service, probe: Any, platform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash inside the firing transaction (after marking, before commit) loses nothing."""
    import types

    from vitrine.runtime.messaging import outbox
    from vitrine_compliance import scheduler

    failures: list[str] = []

    async def failing_stage(*args: Any, **kwargs: Any) -> None:
        failures.append("x")
        raise RuntimeError("simulated crash before commit")

    monkeypatch.setattr(scheduler, "outbox", types.SimpleNamespace(stage=failing_stage))
    pid = f"pol-atomic-{platform.uid()}"
    base = service.clock()
    await platform.announce(platform.policy(pid, base + timedelta(seconds=30), None))
    await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pid)
    service.clock.advance(31)
    deadline = time.monotonic() + 10
    while not failures:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    body = await service.policy(pid)
    assert body["state"] == "scheduled" and body["schedules"][0]["status"] == "pending"
    monkeypatch.setattr(scheduler, "outbox", outbox)
    await probe.wait_for(RULINGS, type="policy.in_force", subject=pid)
    await probe.settle(1.0)
    assert in_force(probe, pid) == ["block_new"]
    await platform.retract(pid)
