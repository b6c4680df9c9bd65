"""kill -9 each service in turn, at random moments, during a mixed workload (issue 7).

Services run as subprocesses (``python -m vitrine_<name>``); a killer task picks a random
moment, SIGKILLs the next service in rotation (no graceful shutdown, no outbox flush), waits
a random moment more, and restarts it. The workload (``workload.py``) has a known outcome; at
the end every expected effect must be on the output topics announced by exactly ONE event id
(a resend of the same id is harmless: consumers dedupe on it), nothing else may appear, and
catalog's HTTP state must match the workload's script product by product.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from typing import Any

import pytest
from harness import duplicated, effects, fleet, killer
from workload import Workload, observed_state, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

SEED = int(os.environ.get("VITRINE_FAULT_SEED", "7"))
PRODUCTS = int(os.environ.get("VITRINE_FAULT_PRODUCTS", "600"))


@pytest.mark.timeout(900)
async def test_kill_9_each_service_in_turn_loses_and_duplicates_nothing(
    stack: Any, probe: Any, publisher: Any
) -> None:
    # catalog and review carry the workload; the others follow catalog.products (projections)
    # and are killed in the same rotation.
    names = ["catalog", "review", "showcase", "distribution", "compliance"]
    rng = random.Random(SEED)
    work = Workload(f"k9{uuid.uuid4().hex[:6]}", PRODUCTS)
    kills: list[str] = []
    with fleet(stack, names, "kill9") as f:
        await f.start()
        stop = asyncio.Event()
        killing = asyncio.create_task(killer(f, names, rng, stop, kills))
        try:
            await work.run(publisher, probe, timeout=400)
            # Keep killing until every service died at least once and six kills happened.
            await wait_until(
                lambda: (
                    (
                        all(f[n].kills >= 1 for n in names)
                        and sum(f[n].kills for n in names) >= max(6, len(names))
                    )
                    or killing.done()
                ),
                300,
                "kills",
            )
        finally:
            stop.set()
            await asyncio.gather(killing, return_exceptions=True)
        if killing.done() and killing.exception():
            raise killing.exception()  # type: ignore[misc]
        for n in names:  # the last restart may still be coming up
            await f[n].wait_ready()
        expected = work.expected()
        await wait_until(
            lambda: expected <= set(effects(work.records(probe))), 300, "every expected effect"
        )
        await probe.settle(3.0)

        print(f"seed {SEED}, {PRODUCTS} products, {len(kills)} kills:\n  " + "\n  ".join(kills))
        seen = effects(work.records(probe))
        assert set(seen) == expected, {
            "missing": sorted(expected - set(seen))[:10],
            "unexpected": sorted(set(seen) - expected)[:10],
        }
        assert not duplicated(work.records(probe)), list(duplicated(work.records(probe)).items())[
            :5
        ]
        for i in range(work.n):
            status, doc = await f["catalog"].get_async(f"/products/{work.pid(i)}")
            assert status == 200, (work.pid(i), status)
            assert observed_state(doc) == work.final_state(i), (work.pid(i), doc)
        assert all(f[n].kills >= 1 for n in names)
        # The projections of catalog.products kept by the other services lost nothing either.
        for name in ("showcase", "distribution"):
            if name not in names:
                continue
            for i in range(work.n):
                status, doc = await f[name].get_async(f"/products/{work.pid(i)}")
                listed = work.final_state(i)["listed"]
                assert (status == 200 and doc["listed"] is listed) or (
                    status == 404 and work.category(i) == "rejected"
                ), (name, work.pid(i), status, doc)
