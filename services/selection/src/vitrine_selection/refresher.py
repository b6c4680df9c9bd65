"""Listings that change with time alone (a background task of the selection service).

Two things move without an event: a scheduled rate cut takes effect at 00:00 Asia/Shanghai,
and a sales day leaves the 30-day window. Each listing records when that next happens
(``due_at``); this task finds the due ones in the in-process index (a range on ``due_at``
is a scan on nx-27017, too dear to run every second), confirms them in the database inside
``rt.guard.transaction()`` (it takes turns with the batch pipeline; another replica may have
rebuilt them already) and rebuilds them in bulk.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from vitrine.runtime import retries
from vitrine.runtime.logging import get_logger
from vitrine.runtime.mongo import Document, TransactionGuard
from vitrine.runtime.service import Runtime
from vitrine_selection import feed, repository
from vitrine_selection.handlers import rebuild
from vitrine_selection.index import OfferIndex

log = get_logger(__name__)
#: Longest sleep between polls, and most listings rebuilt per transaction.
POLL_SECONDS = 1.0
BATCH = 500


async def refresh_due(
    db: AsyncDatabase[Document], guard: TransactionGuard, index: OfferIndex, now: datetime
) -> int:
    """Rebuild every listing due at ``now``; returns how many were rebuilt."""
    total = 0
    while candidates := index.due(now, BATCH):
        async with guard.transaction() as session:
            ids = await repository.still_due(db, candidates, now, session)
            if ids:
                await rebuild(repository.MongoStore.of(db, session), ids, now)
        total += len(ids)
        if len(candidates) < BATCH or not ids:
            break
    return total


async def run(rt: Runtime) -> None:
    """Poll until cancelled; database faults are waited out, never skipped."""
    while True:
        async for attempt in retries.forever(feed.retry_logged("refresher.retry")):
            with attempt:
                index = feed.ready_index(rt.guard)
                if index is not None and (
                    refreshed := await refresh_due(rt.db, rt.guard, index, rt.clock())
                ):
                    log.info("selection.listings_refreshed", offers=refreshed)
        await asyncio.sleep(POLL_SECONDS)
