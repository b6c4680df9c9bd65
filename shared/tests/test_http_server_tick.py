"""The services' HTTP server wakes once a second when idle, and still stops when asked."""

from __future__ import annotations

import asyncio
import gc

import pytest
import uvicorn
from starlette.applications import Starlette

from vitrine.runtime import service


async def test_the_server_ticks_once_a_second_refreshes_its_date_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = uvicorn.Config(Starlette(), log_config=None)
    config.load()
    server = service._SecondTickServer(config)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            server.handle_exit(15, None)  # what SIGTERM does

    monkeypatch.setattr(asyncio, "sleep", sleep)
    await server.main_loop()
    assert sleeps == [1.0, 1.0, 1.0]  # uvicorn's own loop sleeps 0.1 s: ten wake-ups a second
    assert server.server_state.default_headers[0][0] == b"date"


async def test_the_server_calls_on_started_once_before_ticking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = uvicorn.Config(Starlette(), log_config=None)
    config.load()
    happened: list[str] = []
    server = service._SecondTickServer(config, on_started=lambda: happened.append("started"))

    async def sleep(seconds: float) -> None:
        happened.append("tick")
        if happened.count("tick") == 2:
            server.handle_exit(15, None)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    await server.main_loop()
    assert happened == ["started", "tick", "tick"]


def test_the_start_up_heap_is_frozen_and_young_passes_are_rarer() -> None:
    """What ``run`` does once the service has started (docs/PERFORMANCE.md, P1)."""
    threshold = gc.get_threshold()
    kept = [1]  # alive now, like a module or a client at start-up
    assert any(o is kept for o in gc.get_objects())
    try:
        service.freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # no pass walks it any more
        assert gc.get_threshold()[0] == service.GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
