"""Keeps this process's :class:`~vitrine_selection.index.OfferIndex` equal to the committed
projection (a background task of the selection service).

- **Start-up**: the index is loaded from MongoDB (accounts, policies, offers, in pages by
  ``_id``, each page read under the transaction guard's lock so no page shows a transaction
  of this process that is still open). Until then ``GET /offers`` and ``GET /suppliers``
  answer 503; a restart rebuilds it the same way from the durable projection.
- **This replica's commits**: the documents a transaction wrote reach the index from
  ``TransactionGuard.after_commit`` (``repository.Staged``) — never before the commit, and
  never for a transaction that aborted.
- **Other replicas' commits**: replicas share the database and split the input partitions
  (one consumer group), so each replica's index must also see what the others write. Every
  write carries the projection revision ``rev`` of its transaction, and revisions commit in
  order (``repository.Staged``), so polling ``rev > watermark`` every ``TAIL_SECONDS``
  misses nothing: once a revision is seen, every smaller one has committed. With one
  replica the poll finds nothing new (this replica's own commits advance the watermark).

Any failure to apply a commit marks the index stale, and it is rebuilt from the database.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterable

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.runtime import retries
from vitrine.runtime.logging import get_logger
from vitrine.runtime.mongo import Document, TransactionGuard
from vitrine.runtime.service import Runtime
from vitrine_selection import repository
from vitrine_selection.index import OfferIndex
from vitrine_selection.repository import ACCOUNTS, OFFERS, POLICIES, to_account, to_policy

log = get_logger(__name__)
TAIL_SECONDS = 1.0
PAGE = 2000
#: Offers added since the last ``gc.freeze`` before the next one (see ``Feed.freeze``).
FREEZE_GROWTH = 10_000
#: What the index reads of an offer document (the rest is for rebuilding and one-offer reads).
OFFER_FIELDS = {
    f: 1
    for f in (
        "visible",
        "audience",
        "title",
        "tokens",
        "category",
        "images",
        "price_fen",
        "sold_out",
        "source_kind",
        "source_platform",
        "supplier",
        "rate_bps",
        "next_rate_bps",
        "next_rate_at",
        "commission_fen",
        "sales_orders_30d",
        "sales_gmv_30d_fen",
        "published_ms",
        "open_on",
        "shop_exempt",
        "product_id",
        "merchant_id",
        "plan",
        "due_at",
        "rev",
    )
}

#: The feed of each running service (keyed by its guard: one per process and database).
live: weakref.WeakKeyDictionary[TransactionGuard, Feed] = weakref.WeakKeyDictionary()


def ready_index(guard: TransactionGuard) -> OfferIndex | None:
    """The loaded index of the service that owns ``guard`` (None while loading)."""
    feed = live.get(guard)
    return feed.index if feed is not None and feed.index.ready else None


class Feed:
    """Loads the index, applies this process's commits, follows the other replicas'."""

    def __init__(self, db: AsyncDatabase[Document], guard: TransactionGuard) -> None:
        self.db, self.guard = db, guard
        self.index = OfferIndex()
        #: Every revision up to here is in the index (None until loaded).
        self.watermark: int | None = None
        self.stale = False
        #: The index's size when its objects were last frozen out of the cyclic collector.
        self.frozen_at = 0

    def apply(self, name: str, docs: Iterable[Document], rev: int | None = None) -> None:
        """Mirrored documents of one collection (their own ``rev`` unless given)."""
        index = self.index
        if name == OFFERS:
            index.apply(docs, rev)
        elif name == ACCOUNTS:
            index.apply_accounts(
                (rev if rev is not None else int(d.get("rev") or 0), to_account(d)) for d in docs
            )
        elif name == POLICIES:
            index.apply_policies(
                (rev if rev is not None else int(d.get("rev") or 0), to_policy(d)) for d in docs
            )

    def committed(self, session: AsyncClientSession) -> None:
        """Guard listener: what ``session``'s transaction wrote, now that it committed."""
        staged = repository.take_staged(session)
        if staged is None or self.stale:
            return
        try:
            for name, docs in staged.docs.items():
                self.apply(name, docs, staged.rev)
        except Exception as exc:  # it must not raise; the index is rebuilt instead
            log.error("selection.index_apply_failed", error=repr(exc)[:300])
            self.stale = True
            return
        if self.watermark is not None and staged.rev == self.watermark + 1:
            self.watermark = staged.rev  # nothing committed in between

    async def load(self) -> None:
        """Fill a fresh index from the database; then it is ready."""
        self.index, self.watermark, self.stale = OfferIndex(), None, False
        total = 0
        # One pass per collection, under the lock: on nx-27017 a range on `_id` is a scan (no
        # paging), and a read beside this process's open transaction would see its writes.
        # The pipeline waits for the load (start-up: queries are not answered yet anyway).
        async with self.guard.lock:
            start = await repository.revision(self.db)
            for name in (ACCOUNTS, POLICIES, OFFERS):
                fields = OFFER_FIELDS if name == OFFERS else None
                page: list[Document] = []
                async for doc in self.db[name].find({}, fields, batch_size=PAGE):
                    page.append(doc)
                    if len(page) == PAGE:
                        self._apply_loaded(name, page)
                        total, page = total + len(page), []
                self._apply_loaded(name, page)
                total += len(page)
        self.index.refresh_ranks()
        self.frozen_at = 0
        self.freeze()
        # Whatever committed after `start` is read again by the next poll.
        self.watermark = start
        self.index.ready = True
        log.info("selection.index_loaded", documents=total, revision=start)

    def freeze(self) -> None:
        """The index's objects live as long as the process: keep the cyclic collector from
        walking all of them on every full collection (tens of ms at 100,000 offers, a pause
        every query waits on). Done after a load and whenever the index grew by a quarter
        (so a few times in all: anything else frozen with it is never collected)."""
        size = self.index.size
        if size - self.frozen_at >= FREEZE_GROWTH and size >= self.frozen_at * 1.25:
            gc.freeze()
            self.frozen_at = size

    def _apply_loaded(self, name: str, docs: list[Document]) -> None:
        if name == OFFERS:
            self.index.apply(docs, defer_ranks=True)
        else:
            self.apply(name, docs)

    async def poll(self) -> int:
        """Apply what other replicas committed since the watermark; how many documents."""
        if self.watermark is None:
            return 0
        found = 0
        async with self.guard.lock:
            since, top = self.watermark, await repository.revision(self.db)
            if top <= since:
                return 0  # nothing committed elsewhere (one read by `_id`, no scan)
            # Everything past the watermark, read to the end (in batches): a revision can hold
            # more documents than a page (a policy coming into force rewrites thousands).
            upto = since
            for name in (ACCOUNTS, POLICIES, OFFERS):
                fields = OFFER_FIELDS if name == OFFERS else None
                cursor = self.db[name].find({"rev": {"$gt": since}}, fields, batch_size=PAGE)
                page: list[Document] = []
                async for doc in cursor.sort("rev", 1):
                    page.append(doc)
                    if len(page) == PAGE:
                        self.apply(name, page)
                        found, page = found + len(page), []
                    upto = max(upto, int(doc["rev"]))
                self.apply(name, page)
                found += len(page)
            # `top` committed, so every revision up to it has (they commit in order) and was
            # read above, even one whose documents a later revision rewrote since.
            self.watermark = max(upto, top)
        return found


async def run(rt: Runtime) -> None:
    """Load the index, then follow the projection until cancelled (faults are waited out)."""
    feed = Feed(rt.db, rt.guard)
    live[rt.guard] = feed
    rt.guard.after_commit(feed.committed)
    while True:
        async for attempt in retries.forever(retry_logged("selection.index_retry")):
            with attempt:
                if feed.watermark is None or feed.stale:
                    await feed.load()
                elif found := await feed.poll():
                    log.info("selection.index_followed", documents=found, revision=feed.watermark)
                feed.freeze()
        await asyncio.sleep(TAIL_SECONDS)


def retry_logged(event: str) -> Callable[[Exception], bool]:
    """Every failure of a background loop is logged as ``event`` and waited out (the shared
    backoff of :mod:`vitrine.runtime.retries`): the index never stops following."""

    def retry(exc: Exception) -> bool:
        log.warning(event, error=repr(exc)[:300])
        return True

    return retry
