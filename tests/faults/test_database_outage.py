"""The database stops for 10 s in the middle of the workload (issue 7; embedded stack only).

nx-27017 is killed (SIGKILL) and restarted on the same data directory after 10 s. While it is
down every service must say so on ``/readyz`` (503) and keep its place: no offset committed
for work that is not durable, nothing skipped. Afterwards readiness comes back (200) and the
workload's outcome is exactly the one expected: every effect once, none twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from harness import Fleet, duplicated, effects, fleet
from workload import Workload, observed_state, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

OUTAGE_SECONDS = 10.0


async def watch_readiness(f: Fleet, seen: dict[str, list[int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, svc in f.services.items():
            # /readyz pings the database with the client's 5 s server-selection timeout, so a
            # probe must wait longer than that to see the 503 rather than its own timeout.
            status, _ = await asyncio.to_thread(svc.get, "/readyz", 8.0)
            if not seen[name] or seen[name][-1] != status:
                seen[name].append(status)
        await asyncio.sleep(0.25)


async def test_a_10_second_database_outage_loses_and_skips_nothing(
    stack: Any, probe: Any, publisher: Any
) -> None:
    if stack.embedded is None:
        pytest.skip("stopping the database needs the embedded stack")
    names = ["catalog", "review"]
    work = Workload(f"db{uuid.uuid4().hex[:6]}", 400, chunk=20, pause=0.3)
    readiness: dict[str, list[int]] = {n: [] for n in names}
    with fleet(stack, names, "db-outage") as f:
        await f.start()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_readiness(f, readiness, stop))
        running = asyncio.create_task(work.run(publisher, probe, timeout=400))
        mongo_down = False
        try:
            await asyncio.sleep(2.0)  # mid-workload
            started = time.monotonic()
            mongo_down = True
            await asyncio.to_thread(stack.embedded.stop_mongo, True)
            await wait_until(
                lambda: all(503 in readiness[n] for n in names), OUTAGE_SECONDS + 5, "readyz 503"
            )
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
            await asyncio.to_thread(stack.embedded.start_mongo)
            mongo_down = False
            await wait_until(lambda: all(f[n].ready() for n in names), 120, "readyz 200 again")
            await running
        finally:
            if mongo_down:  # never leave the session's database stopped
                await asyncio.to_thread(stack.embedded.start_mongo)
            stop.set()
            await asyncio.gather(watcher, return_exceptions=True)
            if not running.done():
                running.cancel()

        expected = work.expected()
        await wait_until(
            lambda: expected <= set(effects(work.records(probe))), 300, "every expected effect"
        )
        await probe.settle(3.0)
        print(f"readiness transitions: {readiness}")
        for n in names:
            assert readiness[n][0] == 200 and 503 in readiness[n] and readiness[n][-1] == 200, (
                n,
                readiness[n],
            )
        seen = effects(work.records(probe))
        assert set(seen) == expected, {
            "missing": sorted(expected - set(seen))[:10],
            "unexpected": sorted(set(seen) - expected)[:10],
        }
        assert not duplicated(work.records(probe))
        for i in range(work.n):
            status, doc = await f["catalog"].get_async(f"/products/{work.pid(i)}")
            assert status == 200 and observed_state(doc) == work.final_state(i), (
                work.pid(i),
                doc,
            )
