"""Where catalog keeps products: the :class:`Products` protocol the handlers use, MongoDB
(one document per product keyed by ``_id``, loaded and saved in bulk; the ones this process
wrote last are kept in memory, ``vitrine.runtime.recent``) and an in-memory twin for handler
tests. Review verdicts read before their submission are held in ``held_verdicts``
(``vitrine.runtime.held``), waiting on ``merchants.products``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.runtime import held
from vitrine.runtime.held import HeldInputs, InMemoryHeldInputs, MongoHeldInputs
from vitrine.runtime.messaging.inbox import APPLIED_FIELD
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document
from vitrine.runtime.recent import REV, RecentDocuments, StaleCopies, new_rev
from vitrine_catalog.domain import Product, Version, status_of

PRODUCTS = "products"
HELD_VERDICTS = "held_verdicts"
#: The topic whose event time ends a held verdict's wait.
SUBMISSIONS = "merchants.products"


def _version(doc: dict[str, Any] | None) -> Version | None:
    return Version(doc["number"], doc["content"]) if doc else None


def to_product(doc: Document) -> Product:
    return Product(
        product_id=doc["_id"],
        merchant_id=doc["merchant_id"],
        last_version=doc["last_version"],
        live=_version(doc.get("live")),
        draft=_version(doc.get("draft")),
        # Documents written before platform delisting kept only ``delisted_reason``.
        withdrawn=doc.get("withdrawn", doc.get("delisted_reason") == "withdrawn"),
        platform_hold=doc.get("platform_hold"),
    )


def to_document(p: Product) -> Document:
    def version(v: Version | None) -> dict[str, Any] | None:
        return {"number": v.number, "content": v.content} if v else None

    return {
        "_id": p.product_id,
        "merchant_id": p.merchant_id,
        "last_version": p.last_version,
        "live": version(p.live),
        "draft": version(p.draft),
        "withdrawn": p.withdrawn,
        "platform_hold": p.platform_hold,
        # Derived, stored for the read-only queries (never read back).
        "listed": p.listed,
        "delisted_reason": p.delisted_reason,
        **status_of(p),
    }


async def load(
    db: AsyncDatabase[Document], ids: Iterable[str], session: AsyncClientSession | None = None
) -> tuple[dict[str, Product], dict[str, list[str]]]:
    """The products with these ids that exist, and the events each has applied (one round
    trip; see ``vitrine.runtime.messaging.inbox.with_applied``)."""
    wanted = list(set(ids))
    products: dict[str, Product] = {}
    applied: dict[str, list[str]] = {}
    if not wanted:  # nx-27017 answers an empty ``$in`` by scanning the whole collection
        return products, applied
    async for doc in db[PRODUCTS].find({"_id": {"$in": wanted}}, session=session):
        products[doc["_id"]] = to_product(doc)
        applied[doc["_id"]] = doc.get(APPLIED_FIELD) or []
    return products, applied


async def save(
    db: AsyncDatabase[Document],
    products: Iterable[Product],
    applied: dict[str, list[str]],
    session: AsyncClientSession | None = None,
    *,
    absent: frozenset[str] | set[str] = frozenset(),
    read_at: dict[str, int] | None = None,
) -> dict[str, bytes]:
    """Write the given products with the events they applied (one bulk round trip); returns
    the documents written (``_id`` → BSON), each with a new revision
    (``vitrine.runtime.recent.REV``).

    ``absent``: ids this transaction looked up and did not find. Those products are inserted
    (on nx-27017 a third cheaper than an upsert, which looks the document up again); one that
    appeared meanwhile (another replica) fails the insert and the batch is retried.
    ``read_at``: products read from kept copies, and the revision each was read at. Their
    writes are conditional on it; if one matches nothing, :class:`StaleCopies` is raised.
    """
    read_at = read_at or {}
    written: dict[str, bytes] = {}
    ops: list[InsertOne[Any] | ReplaceOne[Any]] = []
    for p in products:
        doc = {**to_document(p), APPLIED_FIELD: applied.get(p.product_id, []), REV: new_rev()}
        # Encoded once: pymongo sends these bytes as they are, and the kept copy is them.
        written[p.product_id] = data = bson.encode(doc, codec_options=db.codec_options)
        raw = RawBSONDocument(data)
        if p.product_id in absent:
            ops.append(InsertOne(raw))
        elif (rev := read_at.get(p.product_id)) is not None:
            ops.append(ReplaceOne({"_id": p.product_id, REV: rev}, raw))
        else:
            ops.append(ReplaceOne({"_id": p.product_id}, raw, upsert=True))
    if ops:
        result = await db[PRODUCTS].bulk_write(ops, ordered=False, session=session)
        # Inserts insert or raise, upserts match or insert: only a stale conditional write
        # can leave an operation without effect.
        if result.inserted_count + result.matched_count + result.upserted_count < len(ops):
            raise StaleCopies("a product changed since this process wrote it")
    return written


class Products(Protocol):
    """What catalog's handlers need: products with the events each applied, in bulk, and
    the verdicts held for submissions not consumed yet."""

    @property
    def held(self) -> HeldInputs:
        """The review verdicts held until their submission is consumed."""
        ...

    async def load(self, ids: Iterable[str]) -> tuple[dict[str, Product], dict[str, list[str]]]:
        """The products with these ids that exist, and the dedupe keys each applied."""
        ...

    async def save(self, products: Iterable[Product], applied: dict[str, list[str]]) -> None:
        """Write these products with the events they applied."""
        ...


class MongoProducts:
    """:class:`Products` in this batch's transaction; with ``recent``, the products this
    process wrote last are read from there (``vitrine.runtime.recent``)."""

    def __init__(self, uow: UnitOfWork, recent: RecentDocuments | None = None) -> None:
        self.db, self.session = uow.db, uow.session
        self.held = MongoHeldInputs(
            uow.db, uow.session, collection=HELD_VERDICTS, awaits=SUBMISSIONS
        )
        self.recent = recent
        #: Ids looked up in this transaction and not found: new products.
        self._absent: set[str] = set()
        #: Products read from kept copies, and the revision each was read at.
        self._read_at: dict[str, int] = {}

    async def load(self, ids: Iterable[str]) -> tuple[dict[str, Product], dict[str, list[str]]]:
        wanted = set(ids)
        kept: dict[str, Document] = {}
        if self.recent is not None:
            kept = self.recent.get(self.db.name, wanted, self.db.codec_options)
        products, applied = await load(self.db, wanted - kept.keys(), self.session)
        for pid, doc in kept.items():
            products[pid] = to_product(doc)
            applied[pid] = doc.get(APPLIED_FIELD) or []
            self._read_at[pid] = doc[REV]
        self._absent |= wanted - products.keys()
        return products, applied

    async def save(self, products: Iterable[Product], applied: dict[str, list[str]]) -> None:
        try:
            written = await save(
                self.db,
                products,
                applied,
                self.session,
                absent=self._absent,
                read_at=self._read_at,
            )
        except StaleCopies:
            if self.recent is not None:
                self.recent.forget(self.db.name, self._read_at)
            raise
        self._absent.clear()  # saved: they exist now
        self._read_at.clear()
        if self.recent is not None:
            self.recent.put(self.db.name, written)


class InMemoryProducts:
    """:class:`Products` in a dict, for handler tests (kept across batches like the database)."""

    def __init__(self, *products: Product) -> None:
        self.products: dict[str, Product] = {p.product_id: p for p in products}
        self.applied: dict[str, list[str]] = {}
        self.held: InMemoryHeldInputs = InMemoryHeldInputs()

    async def load(self, ids: Iterable[str]) -> tuple[dict[str, Product], dict[str, list[str]]]:
        found = {i: self.products[i] for i in set(ids) if i in self.products}
        return found, {i: list(self.applied.get(i, [])) for i in found}

    async def save(self, products: Iterable[Product], applied: dict[str, list[str]]) -> None:
        for p in products:
            self.products[p.product_id] = p
            self.applied[p.product_id] = list(applied.get(p.product_id, []))


async def setup(db: AsyncDatabase[Document]) -> None:
    """Indexes for the read-only queries (a merchant's products); the held verdicts."""
    await db[PRODUCTS].create_index("merchant_id")
    await held.setup(db, HELD_VERDICTS)
