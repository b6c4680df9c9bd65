"""kill -9 compliance between ``block_new`` and ``enforce_existing`` (real clock, subprocess).

After the restart the second phase fires exactly once, and completion is published once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from vitrine.devstack import free_port

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

RULINGS = "compliance.rulings"
PAST = datetime(2022, 3, 7, tzinfo=UTC)


class Compliance:
    """``python -m vitrine_compliance`` as its own process."""

    def __init__(self, stack: Any, log_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "VITRINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "VITRINE_MONGO_URL": stack.mongo_url,
            "VITRINE_HTTP_PORT": str(self.port),
            "VITRINE_LOG_FORMAT": "json",
            "VITRINE_LOG_LEVEL": "INFO",
        }
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    async def start(self) -> None:
        self.runs += 1
        log = (self.log_dir / f"compliance-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vitrine_compliance"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            while True:
                assert self.proc.poll() is None, f"compliance exited: see {log.name}"
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "compliance never became ready"
                await asyncio.sleep(0.2)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    async def policy(self, pid: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            body: dict[str, Any] = (await http.get(f"/policies/{pid}")).json()
            return body


async def test_kill_9_between_phases_fires_the_second_once_and_completes_once(
    stack: Any, probe: Any, platform: Any, tmp_path: Path
) -> None:
    service = Compliance(stack, tmp_path)
    await service.start()
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
        service.kill9()
        assert datetime.now(UTC) < enforce, "too slow: enforce_existing came due before the kill"
        killed_at = time.monotonic()
        assert (
            probe.events(RULINGS, type="policy.in_force", subject=pid, phase="enforce_existing")
            == []
        )

        await service.start()
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
        phases = [
            r.data["phase"] for r in probe.events(RULINGS, type="policy.in_force", subject=pid)
        ]
        assert phases == ["block_new", "enforce_existing"]
        assert len(probe.events(RULINGS, type="policy.enforcement_completed", subject=pid)) == 1
        assert len(probe.events(RULINGS, type="policy.accepted", subject=pid)) == 1
        body = await service.policy(pid)
        assert body["state"] == "in_force" and body["phase"] == "enforce_existing"
        assert [s["status"] for s in body["schedules"]] == ["fired", "fired"]
        print(f"restart to completion: {time.monotonic() - killed_at:.1f}s")
        await platform.retract(pid)
        await platform.retract(warm)
        await probe.wait_for(RULINGS, type="policy.lifted", subject=warm)
    finally:
        service.stop()
