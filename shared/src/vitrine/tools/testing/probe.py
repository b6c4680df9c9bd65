"""Watch output topics and publish input events, as an upstream system or operator would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from vitrine.contract.envelope import CONTENT_TYPE

JSON = dict[str, Any]


@dataclass
class Seen:
    """One record read from a topic."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes
    _parsed: JSON | None = field(default=None, repr=False)

    @property
    def event(self) -> JSON:
        """The record's JSON (parsed once; raises ValueError when it is not JSON)."""
        if self._parsed is None:
            self._parsed = json.loads(self.value)
        return self._parsed

    @property
    def type(self) -> str:
        return str(self.event.get("type"))

    @property
    def subject(self) -> str:
        return str(self.event.get("subject"))

    @property
    def data(self) -> JSON:
        data: JSON = self.event.get("data", {})
        return data


@dataclass
class TopicProbe:
    """Reads whole topics from the beginning in the background (no consumer group)."""

    bootstrap: str
    topics: Iterable[str]
    records: list[Seen] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> TopicProbe:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        parts = []
        for t in self.topics:
            for p in self._consumer.partitions_for_topic(t) or await self._partitions(t):
                parts.append(TopicPartition(t, p))
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run())
        return self

    async def _partitions(self, topic: str, timeout: float = 10.0) -> set[int]:
        """The topic's partitions; a topic just created may take a few metadata rounds to
        appear (reading only partition 0 of it would miss most of its records)."""
        assert self._consumer is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self._consumer._client.force_metadata_update()
            found = self._consumer.partitions_for_topic(topic)
            if found or asyncio.get_running_loop().time() > deadline:
                return found or {0}
            await asyncio.sleep(0.2)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            for recs in batch.values():
                for r in recs:
                    self.records.append(
                        Seen(
                            r.topic,
                            r.partition,
                            r.offset,
                            r.key.decode("utf-8", "replace") if r.key else None,
                            {k: v.decode("utf-8", "replace") for k, v in r.headers},
                            r.value or b"",
                        )
                    )
            if batch:
                self._changed.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    def events(
        self,
        topic: str | None = None,
        *,
        type: str | None = None,
        subject: str | None = None,
        **data: Any,
    ) -> list[Seen]:
        """Records seen so far matching topic, type, subject and ``data`` fields."""
        out = []
        for r in self.records:
            if topic and r.topic != topic:
                continue
            if topic and topic.endswith(".dlq"):
                if subject and r.key != subject:
                    continue
                out.append(r)
                continue
            try:
                ev = r.event
            except ValueError:
                continue
            if type and ev.get("type") != type:
                continue
            if subject and ev.get("subject") != subject:
                continue
            if any(ev.get("data", {}).get(k) != v for k, v in data.items()):
                continue
            out.append(r)
        return out

    async def wait_for(
        self,
        topic: str,
        *,
        count: int = 1,
        timeout: float = 30.0,
        where: Callable[[Seen], bool] | None = None,
        **filters: Any,
    ) -> list[Seen]:
        """Wait until at least ``count`` matching records were seen; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.events(topic, **filters) if where is None or where(r)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out waiting for {count} x {topic} {filters}: saw {len(found)}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def settle(self, seconds: float = 1.5) -> None:
        """Wait until nothing new arrived for ``seconds`` (to check that nothing else comes)."""
        last = -1
        while last != len(self.records):
            last = len(self.records)
            await asyncio.sleep(seconds)


def cloud_event(
    type: str,
    subject: str,
    data: JSON,
    *,
    source: str = "/tests",
    id: str | None = None,
    time: datetime | None = None,
) -> JSON:
    """A CloudEvent dict as an upstream system would publish it."""
    return {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "subject": subject,
        "time": (time or datetime.now(UTC)).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


class Publisher:
    """Publishes CloudEvents (or raw bytes) keyed by subject, acks=all."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=1024 * 1024
        )

    async def start(self) -> Publisher:
        await self._producer.start()
        return self

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, event: JSON) -> JSON:
        await self._producer.send_and_wait(
            topic,
            json.dumps(event).encode(),
            key=event["subject"].encode(),
            headers=[("content-type", CONTENT_TYPE.encode())],
        )
        return event

    async def send_many(self, topic: str, events: list[JSON]) -> None:
        futures = [
            await self._producer.send(
                topic,
                json.dumps(e).encode(),
                key=e["subject"].encode(),
                headers=[("content-type", CONTENT_TYPE.encode())],
            )
            for e in events
        ]
        await asyncio.gather(*futures)

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        await self._producer.send_and_wait(topic, value, key=key, headers=headers or [])
