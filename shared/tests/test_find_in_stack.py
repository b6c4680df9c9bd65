"""``mongo.find_in`` against the real database: one round trip for any number of ids (no
``getMore`` past the server's default first batch of 101), none for no ids."""

from __future__ import annotations

import uuid

import pytest
from pymongo import AsyncMongoClient, monitoring

from vitrine.runtime import mongo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_find_in_is_one_round_trip_for_many_ids_and_none_for_no_ids(stack) -> None:
    commands = Commands()
    client: AsyncMongoClient[mongo.Document] = AsyncMongoClient(
        stack.mongo_url, event_listeners=[commands], tz_aware=True
    )
    try:
        coll = mongo.database(client, f"findin_{uuid.uuid4().hex[:8]}")["products"]
        await coll.insert_many([{"_id": f"p-{i:04d}", "n": i} for i in range(300)])
        wanted = [*(f"p-{i:04d}" for i in range(250)), "p-missing"]

        commands.names.clear()
        found = await mongo.find_in(coll, wanted)
        assert sorted(d["_id"] for d in found) == wanted[:250]
        assert commands.names == ["find"]  # all 250 in the first reply

        commands.names.clear()
        assert await mongo.find_in(coll, []) == []
        assert commands.names == []

        # A field with several matches per value still returns every match (getMore as needed).
        await coll.insert_many([{"_id": f"q-{i:04d}", "group": "g"} for i in range(150)])
        assert len(await mongo.find_in(coll, ["g"], field="group")) == 150
    finally:
        await client.close()
