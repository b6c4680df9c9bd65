"""Faults only a real broker allows (issue 11): Apache Kafka killed or frozen mid-stream.

Each test gets its own embedded Apache Kafka (log on disk) and nx-27017, so killing the broker
does not disturb the session's stack. The catalog + review workload (``workload.py``) has a
known outcome; an upstream publisher retries what the broker did not acknowledge (same event
ids, which the services dedupe). At the end every expected effect is on the topics announced
by exactly one event id, nothing else, and catalog's state matches the script — the broker's
crash lost nothing and doubled nothing, and the services came back by themselves.
Tansu keeps its log in memory (a restart forgets every topic), so these run on Apache Kafka.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from harness import RetryingPublisher, duplicated, effects, fleet
from workload import Workload, observed_state, wait_until

from vitrine.contract.topics import all_topic_names
from vitrine.tools.devstack import EmbeddedStack, choose_broker, free_port
from vitrine.tools.testing.probe import Publisher, TopicProbe
from vitrine.tools.testing.stack import StackInfo

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def own_stack() -> Iterator[StackInfo]:
    """A fresh embedded Apache Kafka + nx-27017 this test may kill."""
    broker, why = choose_broker()
    if broker != "apache":
        pytest.skip(f"needs Apache Kafka (a broker that keeps its log across a crash): {why}")
    with tempfile.TemporaryDirectory(prefix="vitrine-broker-") as tmp:
        embedded = EmbeddedStack(
            free_port(), free_port(), Path(tmp), broker="apache", broker_reason=why
        )
        with embedded:
            yield StackInfo("embedded", embedded.kafka_bootstrap, embedded.mongo_url, embedded)


@pytest_asyncio.fixture(loop_scope="session")
async def rig(own_stack: StackInfo) -> AsyncIterator[tuple[StackInfo, TopicProbe, Any]]:
    probe = await TopicProbe(own_stack.kafka_bootstrap, all_topic_names()).start()
    publisher = await Publisher(own_stack.kafka_bootstrap).start()
    try:
        yield own_stack, probe, RetryingPublisher(publisher)
    finally:
        await publisher.stop()
        await probe.stop()


async def _wait_status(svc: Any, ready: bool, timeout: float) -> float:
    """Seconds until ``/readyz`` says ``ready`` (fails after ``timeout``)."""
    start = time.monotonic()
    while (await asyncio.to_thread(svc.ready)) is not ready:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{svc.name} /readyz never said ready={ready} in {timeout} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - start


async def _check_outcome(work: Workload, probe: TopicProbe, catalog: Any) -> None:
    expected = work.expected()
    try:
        await wait_until(
            lambda: expected <= set(effects(work.records(probe))), 240, "every expected effect"
        )
    except AssertionError as exc:
        missing = sorted(expected - set(effects(work.records(probe))))
        raise AssertionError(f"{exc}: {len(missing)} missing, e.g. {missing[:8]}") from None
    await probe.settle(3.0)
    seen = effects(work.records(probe))
    assert set(seen) == expected, {
        "missing": sorted(expected - set(seen))[:10],
        "unexpected": sorted(set(seen) - expected)[:10],
    }
    assert not duplicated(work.records(probe)), list(duplicated(work.records(probe)).items())[:5]
    for i in range(work.n):
        status, doc = await catalog.get_async(f"/products/{work.pid(i)}")
        assert status == 200, (work.pid(i), status)
        assert observed_state(doc) == work.final_state(i), (work.pid(i), doc)


async def _listed(probe: TopicProbe, work: Workload, at_least: int) -> None:
    await wait_until(
        lambda: (
            sum(
                1
                for r in probe.events("catalog.products", type="product.listed")
                if r.subject.startswith(work.tag)
            )
            >= at_least
        ),
        120,
        f"{at_least} products listed",
        interval=0.1,
    )


@pytest.mark.timeout(600)
async def test_broker_kill_9_mid_stream_loses_and_duplicates_nothing(rig: Any) -> None:
    stack, probe, publisher = rig
    embedded: EmbeddedStack = stack.embedded
    work = Workload(f"bk{uuid.uuid4().hex[:6]}", 300, pause=0.1)
    with fleet(stack, ["catalog", "review"], "broker-kill9") as f:
        await f.start()
        publishing = asyncio.create_task(work.run(publisher, probe, timeout=400))
        await _listed(probe, work, 40)
        embedded.stop_kafka(kill=True)
        # /readyz tells the truth while the broker is gone …
        went_red = await _wait_status(f["catalog"], ready=False, timeout=30)
        await _wait_status(f["review"], ready=False, timeout=30)
        await asyncio.sleep(3)
        embedded.start_kafka()  # same log directory: everything acknowledged is still there
        # … and every service recovers by itself.
        back = max([await _wait_status(f[n], True, 120) for n in ("catalog", "review")])
        await publishing
        print(f"readyz red {went_red:.1f} s after the kill; ready {back:.1f} s after restart")
        await _check_outcome(work, probe, f["catalog"])


@pytest.mark.timeout(600)
async def test_broker_frozen_10_s_mid_stream_loses_and_duplicates_nothing(rig: Any) -> None:
    stack, probe, publisher = rig
    embedded: EmbeddedStack = stack.embedded
    work = Workload(f"bs{uuid.uuid4().hex[:6]}", 300, pause=0.1)
    with fleet(stack, ["catalog", "review"], "broker-sigstop") as f:
        await f.start()
        publishing = asyncio.create_task(work.run(publisher, probe, timeout=400))
        await _listed(probe, work, 40)
        embedded.pause_kafka()  # SIGSTOP: connections stay open, nothing answers
        try:
            went_red = await _wait_status(f["catalog"], ready=False, timeout=9)
            await asyncio.sleep(max(0.0, 10 - went_red))
        finally:
            embedded.resume_kafka()
        await _wait_status(f["catalog"], ready=True, timeout=120)
        await _wait_status(f["review"], ready=True, timeout=120)
        await publishing
        await _check_outcome(work, probe, f["catalog"])
