"""pytest fixtures: ``stack`` (one real stack per session), ``probe`` and ``publisher``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from vitrine.contract.topics import all_topic_names
from vitrine.tools.testing.probe import Publisher, TopicProbe
from vitrine.tools.testing.stack import StackInfo, test_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    """The real Kafka + MongoDB stack every integration test talks to."""
    with test_stack() as info:
        yield info


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def probe(stack: StackInfo) -> AsyncIterator[TopicProbe]:
    """Everything published on every topic (and DLQ) during the session."""
    p = await TopicProbe(stack.kafka_bootstrap, all_topic_names()).start()
    yield p
    await p.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def publisher(stack: StackInfo) -> AsyncIterator[Publisher]:
    """Publishes input events as an upstream system would."""
    p = await Publisher(stack.kafka_bootstrap).start()
    yield p
    await p.stop()
