"""The documents a process wrote last, kept as BSON so that reading one back soon after needs
no round trip (catalog: a review verdict comes ~100 ms after the submission it answers, and
applying it needs the product just written).

A kept copy can be stale: another replica took the partition over and changed the document,
or the transaction that wrote it aborted. So:

- every rebalance forgets every copy (:class:`ForgetOnRebalance`, the services' consumer
  listener): partitions this process gets back may have been written by another replica
  meanwhile. That keeps the next check for the rare case, not for every rebalance: on
  nx-27017 an abort rolls back the one SQLite transaction two replicas share.
- every write stores a fresh random revision (``REV``), and a write based on a kept copy is
  conditional on the revision it was read at. When such a write matches nothing, the caller
  forgets what it read here and raises :class:`StaleCopies`; the transaction aborts and the
  batch is applied again from the database. Revisions are random, never counters: a copy
  kept by a transaction that then aborted cannot match anything the database holds, so
  copies can be kept before the commit.

Kept as BSON, not as objects: ~600 bytes a product instead of several KiB of dicts, and
nothing for the garbage collector to walk. The BSON is the one sent to the database (the
writer encodes each document once, as a ``RawBSONDocument``), so keeping it costs nothing.
Bounded by bytes, least recently used out first.
"""

from __future__ import annotations

import random
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Final

import bson
from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition
from bson.codec_options import CodecOptions

from vitrine.runtime import metrics
from vitrine.runtime.messaging.pipeline import TransientError
from vitrine.runtime.mongo import Document

#: The revision field every document written through a :class:`RecentDocuments` carries.
REV: Final = "rev"
#: What an entry costs besides its BSON (key, tuple, dict slot), roughly.
ENTRY_OVERHEAD: Final = 160


class StaleCopies(TransientError):
    """A write based on kept copies matched nothing: they are forgotten; apply again."""


def new_rev() -> int:
    """A revision for a document about to be written (random: see the module docstring)."""
    return random.getrandbits(62)


class RecentDocuments:
    """The last documents this process wrote, per database, up to ``max_bytes`` of BSON."""

    def __init__(self, max_bytes: int, *, service: str) -> None:
        self.max_bytes = max_bytes
        self.service = service
        self._docs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        _EVERY.add(self)

    def clear(self) -> None:
        """Forget every copy."""
        self._docs.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._docs)

    def get(
        self, db: str, ids: Iterable[str], codec_options: CodecOptions[Document]
    ) -> dict[str, Document]:
        """The kept copies of these documents (decoded; each has ``REV``)."""
        found: dict[str, Document] = {}
        wanted = 0
        for id_ in ids:
            wanted += 1
            data = self._docs.get((db, id_))
            if data is not None:
                self._docs.move_to_end((db, id_))
                found[id_] = bson.decode(data, codec_options)
        metrics.RECENT.labels(self.service, "hit").inc(len(found))
        metrics.RECENT.labels(self.service, "miss").inc(wanted - len(found))
        return found

    def put(self, db: str, written: Mapping[str, bytes]) -> None:
        """Keep these documents, just written: ``_id`` → its BSON (with ``REV``), as sent."""
        if self.max_bytes <= 0:
            return
        for id_, data in written.items():
            key = (db, id_)
            old = self._docs.pop(key, None)
            if old is not None:
                self._bytes -= len(old) + ENTRY_OVERHEAD
            self._docs[key] = data
            self._bytes += len(data) + ENTRY_OVERHEAD
        while self._bytes > self.max_bytes and self._docs:
            _, data = self._docs.popitem(last=False)
            self._bytes -= len(data) + ENTRY_OVERHEAD

    def forget(self, db: str, ids: Iterable[str]) -> None:
        """Drop these copies (a conditional write based on one of them matched nothing)."""
        forgotten = 0
        for id_ in ids:
            data = self._docs.pop((db, id_), None)
            if data is not None:
                self._bytes -= len(data) + ENTRY_OVERHEAD
                forgotten += 1
        metrics.RECENT.labels(self.service, "stale").inc(forgotten)


#: Every store of this process, for :class:`ForgetOnRebalance`.
_EVERY: weakref.WeakSet[RecentDocuments] = weakref.WeakSet()


class ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consumer's rebalance listener: partitions moved, so every copy this process kept
    may be stale (another replica may write those documents now, or did while it owned them)."""

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        _forget_everything()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        _forget_everything()


def _forget_everything() -> None:
    for recent in list(_EVERY):
        recent.clear()
