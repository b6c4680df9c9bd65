"""A transaction cut short by kill -9 must leave no trace, on nx-27017 as on MongoDB."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest

from vitrine import mongo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

CHILD = r"""
import asyncio, sys
from vitrine import mongo

async def main(url, db_name, state_dir):
    client = mongo.connect(url, app_name="child")
    guard = mongo.TransactionGuard(client, db_name, state_dir)
    await guard.db["inbox"].insert_one({"_id": "exists"})
    async with guard.transaction() as session:
        await guard.db["effects"].insert_one({"_id": "partial"}, session=session)
        print("in-transaction", flush=True)
        await asyncio.sleep(60)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_killed_transaction_is_rolled_back_on_restart(stack, tmp_path) -> None:
    db_name = f"guard_{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, stack.mongo_url, db_name, str(tmp_path)],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    line = await asyncio.to_thread(child.stdout.readline)
    assert line.strip() == b"in-transaction"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    client = mongo.connect(stack.mongo_url, app_name="restarted")
    guard = mongo.TransactionGuard(client, db_name, str(tmp_path))
    await guard.recover()
    async with guard.transaction() as session:  # a later commit must not commit the orphan
        await guard.db["effects"].insert_one({"_id": "later"}, session=session)
    assert await guard.db["effects"].find_one({"_id": "partial"}) is None
    assert await guard.db["effects"].find_one({"_id": "later"}) is not None
    await client.close()
