"""kill -9 in the middle of enforcing a policy over 20,000 items, then restart.

The service runs as its own process (``python -m vitrine_showcase``) against the session's
stack. It is SIGKILLed twice: first while the enforcement transaction stages events and writes
holds chunk by chunk (after its log says the first chunk is staged), then, after a restart,
while the outbox relay is publishing the suspensions. A third start finishes the work. At the end:

- every matching item holds the policy exactly once (database);
- each suspended item was announced under exactly ONE event id: duplicates of the same id
  (at-least-once relay output, deduped by consumers on the id) are allowed, two different
  ids for the same (creator_id, product_id) are not;
- exactly one ``enforcement.reported`` id for the policy, saying 20,000.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from typing import Any

import pytest

from vitrine.tools.testing.process import ServiceProcess
from vitrine_showcase.domain import policy_hold

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

N = 20_000
ITEMS = "showcase.items"
REPORTS = "compliance.reports"


@pytest.mark.timeout(900)
async def test_kill9_mid_enforcement_then_restart(stack, probe, world, bulk, tmp_path) -> None:
    u = world.uid()
    plat, pol = f"kill-{u}", f"pol-kill-{u}"
    docs = bulk.documents(u, plat, N)
    await bulk.insert(docs)
    service = ServiceProcess.against(stack, "showcase", tmp_path, VITRINE_LOG_LEVEL="INFO")

    def suspensions() -> list[Any]:
        return list(probe.events(ITEMS, type="showcase.item_suspended", policy_id=pol))

    notes: list[str] = []
    try:
        # 1. killed while the enforcement transaction stages events and writes holds chunk
        #    by chunk: part of it is done, nothing is committed
        await service.start().wait_ready()
        await world.in_force(pol, "enforce_existing", [world.disallow(plat)])
        await service.wait_logged("enforcement.staged", pol)
        await asyncio.sleep(random.uniform(0.0, 1.0))
        applied = service.logged("enforcement.applied", pol)
        service.kill()
        notes.append(
            f"run 1 killed {'after' if applied else 'during'} the holds update, "
            f"{len(suspensions())} suspensions published"
        )

        # 2. killed while the relay publishes (as soon as suspensions start to appear)
        await service.start().wait_ready()
        deadline = time.monotonic() + 180
        while not suspensions() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        service.kill()
        notes.append(f"run 2 killed with {len(suspensions())} suspensions published")

        # 3. finishes
        await service.start().wait_ready()
        await probe.wait_for(REPORTS, subject=pol, timeout=300)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if len({(r.data["creator_id"], r.data["product_id"]) for r in suspensions()}) >= N:
                break
            await asyncio.sleep(0.5)
        await probe.settle(3.0)
    finally:
        service.stop()
    print("\n[kill] " + "; ".join(notes))

    # every matching item held by the policy exactly once
    hold = policy_hold(pol)
    holds = await bulk.holds([d["_id"] for d in docs])
    assert len(holds) == N
    assert all(h.count(hold) == 1 for h in holds.values())

    # one event id per suspended item (same-id duplicates are at-least-once output)
    ids_by_item: dict[tuple[str, str], set[str]] = defaultdict(set)
    records = suspensions()
    for r in records:
        ids_by_item[(r.data["creator_id"], r.data["product_id"])].add(r.event["id"])
    expected = {(d["creator_id"], d["product_id"]) for d in docs}
    assert set(ids_by_item) == expected
    twice = {item: ids for item, ids in ids_by_item.items() if len(ids) != 1}
    assert not twice, (
        f"{len(twice)} items announced under different ids, e.g. {next(iter(twice.items()))}"
    )
    print(f"[kill] {len(records)} item_suspended records for {len(ids_by_item)} items")

    # one report
    reports = probe.events(REPORTS, subject=pol)
    assert len({r.event["id"] for r in reports}) == 1
    assert {r.data["affected"] for r in reports} == {N}
    assert {r.data["phase"] for r in reports} == {"enforce_existing"}
    print(f"[kill] {len(reports)} enforcement.reported record(s), one id")
