"""An idle service's consumer waits for events instead of waking to look (docs/PERFORMANCE.md
"Idle CPU"): the subscriber blocks in ``getmany`` and aiokafka's fetch routine is woken by
what it acts on, with a long bound."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from faststream.kafka import KafkaBroker

from vitrine.runtime.messaging.fetch_wait import wait_long_when_whole
from vitrine.runtime.messaging.subscriber import WaitingBatchSubscriber, wait_in_poll
from vitrine.runtime.service import build_app
from vitrine.runtime.settings import Settings
from vitrine_catalog.service import DEFINITION


class Consumer:
    """What the subscriber asks of aiokafka's consumer: ``getmany``."""

    def __init__(self, *batches: dict[str, list[str]], waits: float = 0.0) -> None:
        self.batches = list(batches)
        self.calls: list[tuple[int, int | None]] = []
        self.waits = waits  # seconds the first poll waits (0: records were prefetched)

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> Any:
        if self.waits and not self.calls:
            await asyncio.sleep(self.waits)
        self.calls.append((timeout_ms, max_records))
        return self.batches.pop(0)


@pytest.fixture
def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []

    async def sleep(seconds: float) -> None:
        taken.append(seconds)

    monkeypatch.setattr(anyio, "sleep", sleep)
    return taken


async def test_faststreams_own_batch_loop_naps_after_an_empty_poll(naps: list[float]) -> None:
    # What the subclass exists for: if FastStream stops napping, it is no longer needed.
    subscriber = KafkaBroker().subscriber("t", batch=True, batch_timeout_ms=200)
    assert await subscriber.get_msg(Consumer({})) == ()
    assert naps == [0.2]


async def test_the_waiting_subscriber_polls_again_at_once_and_hands_over_every_record(
    naps: list[float],
) -> None:
    subscriber = wait_in_poll(
        KafkaBroker().subscriber("t", batch=True, batch_timeout_ms=5000, max_records=7)
    )
    consumer = Consumer({}, {"t-0": ["a", "b"], "t-1": ["c"]})
    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == ("a", "b", "c")
    assert consumer.calls == [(5000, 7), (5000, 7)]
    assert naps == []


async def test_prefetched_records_are_gathered_with_what_piled_up_behind_them() -> None:
    subscriber = wait_in_poll(
        KafkaBroker().subscriber("t", batch=True, batch_timeout_ms=5000, max_records=7),
        gather_ms=5,
    )
    consumer = Consumer({"t-0": ["a", "b"]}, {"t-0": ["c"], "t-1": ["d"]})
    assert await subscriber.get_msg(consumer) == ("a", "b", "c", "d")
    assert consumer.calls == [(5000, 7), (5, 5)]  # the second poll only fills the batch


async def test_fresh_records_are_not_held_back_to_gather() -> None:
    subscriber = wait_in_poll(
        KafkaBroker().subscriber("t", batch=True, batch_timeout_ms=5000, max_records=7),
        gather_ms=5,
    )
    consumer = Consumer({"t-0": ["a"]}, {"t-0": ["never asked for"]}, waits=0.01)
    assert await subscriber.get_msg(consumer) == ("a",)
    assert consumer.calls == [(5000, 7)]


async def test_a_full_batch_is_not_gathered_onto() -> None:
    subscriber = wait_in_poll(
        KafkaBroker().subscriber("t", batch=True, batch_timeout_ms=5000, max_records=2),
        gather_ms=5,
    )
    consumer = Consumer({"t-0": ["a", "b"]}, {"t-0": ["c"]})
    assert await subscriber.get_msg(consumer) == ("a", "b")
    assert consumer.calls == [(5000, 2)]


def test_only_a_batch_subscriber_can_wait_in_its_poll() -> None:
    with pytest.raises(TypeError):
        wait_in_poll(KafkaBroker().subscriber("t"))


def test_a_services_consumer_waits_long_and_its_fetch_routine_is_woken_by_events() -> None:
    app = build_app(DEFINITION, Settings(service="catalog"))
    (subscriber,) = app.state.broker.subscribers
    assert isinstance(subscriber, WaitingBatchSubscriber)
    assert (subscriber.gather_ms, subscriber.idle_fetch_wait_ms) == (5, 3000)
    assert subscriber.batch_timeout_ms == 5000
    assert subscriber._connection_args["consumer_timeout_ms"] == 1000  # aiokafka's: 200
    assert subscriber._connection_args["fetch_max_wait_ms"] == 500  # Kafka's, latency bound


def test_on_tansu_the_consumer_neither_gathers_nor_waits_long() -> None:
    # Tansu parks a fetch for its whole wait: a 5 ms second poll would only add 5 ms.
    app = build_app(DEFINITION, Settings(service="catalog", kafka_standin="tansu"))
    (subscriber,) = app.state.broker.subscribers
    assert isinstance(subscriber, WaitingBatchSubscriber)
    assert (subscriber.gather_ms, subscriber.idle_fetch_wait_ms) == (0, 20)
    assert subscriber._connection_args["fetch_max_wait_ms"] == 20


def test_poll_wait_0_keeps_faststreams_loop() -> None:
    app = build_app(DEFINITION, Settings(service="catalog", poll_wait_ms=0))
    (subscriber,) = app.state.broker.subscribers
    assert type(subscriber) is not WaitingBatchSubscriber
    assert subscriber.batch_timeout_ms == 200


def test_wrapping_twice_or_shorter_changes_nothing() -> None:
    class Fetcher:
        _fetch_max_wait_ms = 500

        def _get_actions_per_node(self, assignment: Any) -> Any:
            return ([], {}, 0, False, [])

    class Consumer:
        _fetcher = Fetcher()

    consumer = Consumer()
    original = consumer._fetcher._get_actions_per_node
    wait_long_when_whole(consumer, 100)  # not longer than its own wait: left alone
    assert consumer._fetcher._get_actions_per_node == original
    other = Consumer()
    other._fetcher = Fetcher()
    wait_long_when_whole(other, 20_000)
    wrapped = other._fetcher._get_actions_per_node
    wait_long_when_whole(other, 20_000)
    assert other._fetcher._get_actions_per_node is wrapped
    wait_long_when_whole(object(), 20_000)  # not started: no fetcher, nothing to do
