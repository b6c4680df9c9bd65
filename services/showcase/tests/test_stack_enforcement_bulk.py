"""Enforcement over 20,000 items: bulk writes, measured (seconds and database round trips).

Items are seeded straight into the showcase's database (insert_many), as if creators had
added them over months; then compliance's ``policy.in_force`` (``enforce_existing``) is
published and the service must hold every one of them, announce each once and report once
— with a number of round trips that does not grow with the number of items.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
from pymongo import monitoring

from vitrine.tools.testing.services import running
from vitrine_showcase.domain import policy_hold
from vitrine_showcase.handlers import SWEEP_CHUNK
from vitrine_showcase.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

N = 20_000
PER_CREATOR = 100  # 200 creators x 100 items (a showcase holds at most 500)
ITEMS = "showcase.items"
REPORTS = "compliance.reports"


_COMMIT = ("commitTransaction", "abortTransaction")


class RoundTrips(monitoring.CommandListener):
    """Counts commands sent to the server: those inside a transaction (the handler's own,
    plus outbox/inbox staging and the commit) and all of them (relay included)."""

    def __init__(self) -> None:
        self.active = False
        self.lock = threading.Lock()
        self.in_txn: Counter[str] = Counter()
        self.total: Counter[str] = Counter()

    def reset(self) -> None:
        with self.lock:
            self.in_txn.clear()
            self.total.clear()
            self.active = True

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.active:
            return
        if event.database_name != "showcase" and event.command_name not in _COMMIT:
            return
        cmd = event.command
        coll = cmd.get(event.command_name)
        label = f"{event.command_name}:{coll}" if isinstance(coll, str) else event.command_name
        with self.lock:
            self.total[label] += 1
            if "txnNumber" in cmd:
                self.in_txn[label] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_LISTENER = RoundTrips()
monitoring.register(_LISTENER)  # applies to clients created from now on (the service's)


def _summary(counter: Counter[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))


async def test_enforcement_over_20000_items(stack, probe, world, bulk) -> None:
    u = world.uid()
    plat, pol = f"bulk-{u}", f"pol-bulk-{u}"
    hold = policy_hold(pol)
    seconds = await bulk.insert(bulk.documents(u, plat, N, PER_CREATOR))
    print(f"\n[bulk] seeded {N} items in {seconds:.1f}s")
    async with running(DEFINITION, stack, log_level=os.environ.get("BULK_LOG", "WARNING")):
        _LISTENER.reset()
        started = time.perf_counter()
        await world.in_force(pol, "enforce_existing", [world.disallow(plat)])
        report = await probe.wait_for(REPORTS, subject=pol, phase="enforce_existing", timeout=300)
        reported = time.perf_counter() - started
        suspended = await probe.wait_for(
            ITEMS, type="showcase.item_suspended", policy_id=pol, count=N, timeout=300
        )
        published = time.perf_counter() - started
        in_txn, total = Counter(_LISTENER.in_txn), Counter(_LISTENER.total)
        print(
            f"[bulk] enforce_existing: {N} items; report after {reported:.2f}s, all "
            f"{len(suspended)} item_suspended published after {published:.2f}s\n"
            f"[bulk]   round trips in the enforcement transaction: {sum(in_txn.values())} "
            f"({_summary(in_txn)})\n"
            f"[bulk]   all round trips incl. outbox relay: {sum(total.values())} "
            f"({_summary(total)})"
        )
        assert report[0].data["affected"] == N
        assert len({(r.data["creator_id"], r.data["product_id"]) for r in suspended}) == N
        assert sum(in_txn.values()) < 50  # bulk: bounded, not one per item
        assert in_txn["update:items"] == -(-N // SWEEP_CHUNK)  # one update_many per sweep step
        assert await bulk.count_held(hold) == N

        _LISTENER.reset()
        started = time.perf_counter()
        await world.lifted(pol)
        report = await probe.wait_for(REPORTS, subject=pol, phase="lifted", timeout=300)
        reported = time.perf_counter() - started
        restored = await probe.wait_for(
            ITEMS, type="showcase.item_restored", policy_id=pol, count=N, timeout=300
        )
        published = time.perf_counter() - started
        in_txn, total = Counter(_LISTENER.in_txn), Counter(_LISTENER.total)
        _LISTENER.active = False
        print(
            f"[bulk] lifted: {N} items; report after {reported:.2f}s, all {len(restored)} "
            f"item_restored published after {published:.2f}s\n"
            f"[bulk]   round trips in the lift transaction: {sum(in_txn.values())} "
            f"({_summary(in_txn)})\n"
            f"[bulk]   all round trips incl. outbox relay: {sum(total.values())} "
            f"({_summary(total)})"
        )
        assert report[0].data["affected"] == N
        assert sum(in_txn.values()) < 50
        assert await bulk.count_held(hold) == 0
