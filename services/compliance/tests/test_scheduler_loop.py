"""The scheduler's poll loop waits out failures (stamina) and keeps polling: nothing skipped."""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
import stamina

from vitrine_compliance import scheduler


async def test_a_failing_poll_is_retried_until_it_succeeds(monkeypatch: Any) -> None:
    calls: list[str] = []
    done = asyncio.Event()

    async def poll(rt: Any) -> datetime | None:
        calls.append("poll")
        if len(calls) <= 2:
            raise ConnectionError("database unavailable")
        if len(calls) == 4:
            raise TypeError("a bug is retried too, and logged as an error")
        if len(calls) >= 5:
            done.set()
        return None

    monkeypatch.setattr(scheduler, "poll", poll)
    monkeypatch.setattr(scheduler, "MAX_SLEEP", 0.0)
    monkeypatch.setattr(scheduler, "IDLE_SLEEP", 0.0)  # poll() says nothing is pending
    # The loop listens for the service's commits (they wake it); nothing commits here.
    rt = SimpleNamespace(guard=SimpleNamespace(after_commit=lambda listener: None))
    stamina.set_testing(True, attempts=100)
    try:
        task = asyncio.create_task(scheduler.run(rt))  # type: ignore[arg-type]
        await asyncio.wait_for(done.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        stamina.set_testing(False)
    assert len(calls) >= 5
