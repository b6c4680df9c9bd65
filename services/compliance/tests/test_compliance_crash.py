"""kill -9 compliance between ``block_new`` and ``enforce_existing`` (real clock, subprocess).

After the restart the second phase fires exactly once, and completion is published once.

"Once" is per event id, the contract's unit (consumers dedupe on it). The outbox relay deletes
a row after the broker acknowledged it, so a kill -9 landing between the two — the test kills
right after the probe reads ``block_new`` — makes the restarted relay send that row again,
with the same id: at least once, not a second firing. A second firing would carry another id.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vitrine.tools.testing.process import ServiceProcess

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

RULINGS = "compliance.rulings"
PAST = datetime(2022, 3, 7, tzinfo=UTC)


async def test_kill_9_between_phases_fires_the_second_once_and_completes_once(
    stack: Any, probe: Any, platform: Any, tmp_path: Path
) -> None:
    service = ServiceProcess.against(stack, "compliance", tmp_path, VITRINE_LOG_LEVEL="INFO")
    await service.start().wait_ready(timeout=60)
    try:
        # Warm-up: the consumer group is joined once a policy comes back accepted.
        warm = f"pol-warm-{platform.uid()}"
        live = platform.third_party_rule(f"t{platform.uid()}", surfaces=["live"])
        await platform.announce(platform.policy(warm, PAST, None, rules=[live]))
        await probe.wait_for(RULINGS, type="policy.accepted", subject=warm, timeout=60)

        pid = f"pol-crash-{platform.uid()}"
        now = datetime.now(UTC)
        effective, enforce = now + timedelta(seconds=1), now + timedelta(seconds=6)
        await platform.announce(platform.policy(pid, effective, enforce))
        await probe.wait_for(
            RULINGS, type="policy.in_force", subject=pid, phase="block_new", timeout=10
        )
        service.kill()
        assert datetime.now(UTC) < enforce, "too slow: enforce_existing came due before the kill"
        killed_at = time.monotonic()
        assert (
            probe.events(RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing")
            == []
        )

        await service.start().wait_ready(timeout=60)
        (second,) = await probe.wait_for(
            RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing", timeout=60
        )
        assert second.data["policy_id"] == pid
        await platform.report(pid, "showcase", "enforce_existing", 5)
        await platform.report(pid, "distribution", "enforce_existing", 2)
        (done,) = await probe.wait_for(
            RULINGS, type="policy.enforcement_completed", subject=pid, timeout=60
        )
        assert done.data["counts"] == {"showcase": 5, "distribution": 2}
        await platform.report(pid, "showcase", "enforce_existing", 5)  # a late duplicate
        await probe.settle(2.0)
        fired: dict[str, set[str]] = {}  # phase → the ids it was published with
        for r in probe.events(RULINGS, type="policy.in_force", subject=pid):
            fired.setdefault(r.data["phase"], set()).add(r.event["id"])
        assert list(fired) == ["block_new", "enforce_existing"]
        assert all(len(ids) == 1 for ids in fired.values()), fired
        for type_ in ("policy.enforcement_completed", "policy.accepted"):
            ids = {r.event["id"] for r in probe.events(RULINGS, type=type_, subject=pid)}
            assert len(ids) == 1, (type_, ids)
        _, body = await service.get_async(f"/policies/{pid}")
        assert body["state"] == "in_force" and body["phase"] == "enforce_existing"
        assert [s["status"] for s in body["schedules"]] == ["fired", "fired"]
        print(f"restart to completion: {time.monotonic() - killed_at:.1f}s")
        await platform.retract(pid)
        await platform.retract(warm)
        await probe.wait_for(RULINGS, type="policy.lifted", subject=warm)
    finally:
        service.stop()
