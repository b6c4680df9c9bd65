"""A transaction cut short by kill -9 must leave no trace, on nx-27017 as on MongoDB."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest

from vitrine.runtime import mongo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

CHILD = r"""
import asyncio, sys
from vitrine.runtime import mongo

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


async def test_after_commit_listeners_run_only_after_a_commit_under_the_lock(
    stack, tmp_path
) -> None:
    client = mongo.connect(stack.mongo_url, app_name="listeners")
    guard = mongo.TransactionGuard(client, f"guard_{uuid.uuid4().hex[:8]}", str(tmp_path))
    await guard.db["inbox"].insert_one({"_id": "exists"})
    calls: list[tuple[object, bool, bool]] = []
    guard.after_commit(lambda s: calls.append((s, guard.lock.locked(), s.in_transaction)))
    async with guard.transaction() as session:
        await guard.db["effects"].insert_one({"_id": "a"}, session=session)
        assert calls == []
    assert calls == [(session, True, False)]  # committed, lock still held
    with pytest.raises(RuntimeError):
        async with guard.transaction() as session:
            await guard.db["effects"].insert_one({"_id": "b"}, session=session)
            raise RuntimeError("abort")
    assert len(calls) == 1
    await client.close()


async def test_finished_transactions_leave_nothing_to_roll_back_at_the_next_start(
    stack, tmp_path
) -> None:
    db_name = f"guard_{uuid.uuid4().hex[:8]}"
    client = mongo.connect(stack.mongo_url, app_name="journal")
    guard = mongo.TransactionGuard(client, db_name, str(tmp_path))
    await guard.db["inbox"].insert_one({"_id": "exists"})
    for n in range(3):
        async with guard.transaction() as session:
            await guard.db["effects"].insert_one({"_id": n}, session=session)
    state, _, lsid = guard.journal.read_text().partition(":")
    assert (state, len(lsid)) == ("done", 32)  # the pooled session's id, written once
    assert await mongo.TransactionGuard(client, db_name, str(tmp_path)).recover() is False
    assert await guard.db["effects"].count_documents({}) == 3
    # An earlier release's journal: the bare id of an open transaction's session.
    guard.journal.write_text(lsid)
    restarted = mongo.TransactionGuard(client, db_name, str(tmp_path))
    # (on mongod the journal is not needed, and is deleted unread)
    assert await restarted.recover() is restarted.profile.journal_open_sessions
    await client.close()
