"""Stack-test support for a service's read-only HTTP routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["until"]


async def until(
    http: httpx.AsyncClient,
    path: str,
    check: Callable[[Any], bool] = lambda _: True,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> Any:
    """Poll ``path`` until it answers 200 with a JSON body that passes ``check``; the body.

    The projections behind the routes follow Kafka, so a test waits for them to catch up
    rather than sleeping; on timeout the last body is in the error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        resp = await http.get(path)
        if resp.status_code == 200:
            last = resp.json()
            if check(last):
                return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{path} never satisfied the check in {timeout} s; last body {last!r}")
