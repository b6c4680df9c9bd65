"""The inbox: which events this service has already applied (idempotent consumer).

A processed event's (source, id) is inserted in the same transaction as its effects, so
"applied" and "recorded" cannot disagree; a redelivery finds it and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.runtime.mongo import Document, find_in

INBOX = "inbox"
#: How long processed ids are remembered; longer than Kafka's retention (7 days by default).
RETENTION_SECONDS = 30 * 24 * 3600


async def setup_inbox(db: AsyncDatabase[Document]) -> None:
    """TTL index so the inbox does not grow forever (mongod applies it; nx-27017 ignores it)."""
    await db[INBOX].create_index("at", expireAfterSeconds=RETENTION_SECONDS)


async def seen(db: AsyncDatabase[Document], keys: Iterable[str]) -> set[str]:
    """The subset of ``keys`` already processed."""
    return {doc["_id"] for doc in await find_in(db[INBOX], keys, projection={"_id": 1})}


async def record(db: AsyncDatabase[Document], session: AsyncClientSession, keys: list[str]) -> None:
    """Mark ``keys`` processed, inside the caller's transaction."""
    if keys:
        now = datetime.now(UTC)
        await db[INBOX].insert_many([{"_id": k, "at": now} for k in keys], session=session)


# --- dedupe inside the aggregate --------------------------------------------------------------
# A handler whose every effect lands in one aggregate document can keep the ids it applied in
# that document instead: the check costs nothing (the handler loads the document anyway) and
# recording is part of the write it makes anyway — no inbox document per event. Opt in per
# topic with ``ServiceDefinition.dedupes_in_aggregate``; the pipeline then neither looks up nor
# records those events in the inbox (it still drops repeats within one batch).

#: Field of the aggregate document holding ``"<epoch seconds> <dedupe key>"`` strings (named
#: apart from domain fields: distribution's orders have an ``applied`` of their own).
APPLIED_FIELD = "applied_events"
#: At most this many ids per aggregate (the newest), however recent: bounds the document.
MAX_APPLIED = 256


def applied_keys(entries: list[str] | None) -> set[str]:
    """The dedupe keys recorded in an aggregate's ``applied`` entries."""
    return {entry.partition(" ")[2] for entry in entries or ()}


def with_applied(entries: list[str] | None, key: str, now: datetime) -> list[str]:
    """``entries`` plus ``key``, dropping ids older than the inbox's retention and the oldest
    beyond ``MAX_APPLIED``."""
    stamp = int(now.timestamp())
    oldest = stamp - RETENTION_SECONDS
    kept = list(entries or ())
    start = 0  # entries are appended as time goes: the expired ones lead
    while start < len(kept) and int(kept[start].partition(" ")[0]) < oldest:
        start += 1
    kept = kept[start:]
    kept.append(f"{stamp} {key}")
    return kept[-MAX_APPLIED:]
