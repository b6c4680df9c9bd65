"""The services' HTTP server wakes once a second when idle, and still stops when asked."""

from __future__ import annotations

import asyncio

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
