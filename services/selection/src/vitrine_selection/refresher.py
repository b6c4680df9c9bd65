"""Listings that change with time alone (a background task of the selection service).

Two things move without an event: a scheduled rate cut takes effect at 00:00 Asia/Shanghai,
and a sales day leaves the 30-day window. Each listing records when that next happens
(``due_at``, indexed); this task rebuilds the due ones, in bulk, inside
``rt.guard.transaction()`` so it takes turns with the batch pipeline.
"""

from __future__ import annotations

import asyncio

from vitrine.runtime.logging import get_logger
from vitrine.runtime.service import Runtime
from vitrine_selection import repository
from vitrine_selection.handlers import rebuild

log = get_logger(__name__)
#: Longest sleep between polls, and most listings rebuilt per transaction.
POLL_SECONDS = 1.0
BATCH = 500


async def refresh_due(rt: Runtime) -> int:
    """Rebuild every listing due now; returns how many were rebuilt."""
    total = 0
    while True:
        now = rt.clock()
        async with rt.guard.transaction() as session:
            ids = await repository.due_offer_ids(rt.db, now, BATCH, session)
            if ids:
                await rebuild(repository.MongoStore.of(rt.db, session), ids, now)
        total += len(ids)
        if len(ids) < BATCH:
            return total


async def run(rt: Runtime) -> None:
    """Poll until cancelled; database faults are waited out, never skipped."""
    backoff = 0.1
    while True:
        try:
            if refreshed := await refresh_due(rt):
                log.info("selection.listings_refreshed", offers=refreshed)
            backoff = 0.1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("refresher.retry", error=repr(exc)[:300], backoff=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        await asyncio.sleep(POLL_SECONDS)
