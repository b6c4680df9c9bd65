"""Where catalog keeps products: the :class:`Products` protocol the handlers use, MongoDB
(one document per product keyed by ``_id``, loaded and saved in bulk) and an in-memory twin
for handler tests. Review verdicts read before their submission are held in
``held_verdicts`` (``vitrine.runtime.held``), waiting on ``merchants.products``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.runtime import held
from vitrine.runtime.held import HeldInputs, InMemoryHeldInputs, MongoHeldInputs
from vitrine.runtime.messaging.inbox import APPLIED_FIELD
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document, find_in
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
    products: dict[str, Product] = {}
    applied: dict[str, list[str]] = {}
    for doc in await find_in(db[PRODUCTS], ids, session):
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
) -> None:
    """Write the given products with the events they applied (one bulk round trip).

    ``absent``: ids this transaction looked up and did not find. Those products are inserted
    (on nx-27017 a third cheaper than an upsert, which looks the document up again); one that
    appeared meanwhile (another replica) fails the insert and the batch is retried.
    """
    ops: list[InsertOne[Document] | ReplaceOne[Document]] = []
    for p in products:
        doc = {**to_document(p), APPLIED_FIELD: applied.get(p.product_id, [])}
        if p.product_id in absent:
            ops.append(InsertOne(doc))
        else:
            ops.append(ReplaceOne({"_id": p.product_id}, doc, upsert=True))
    if ops:
        await db[PRODUCTS].bulk_write(ops, ordered=False, session=session)


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
    """:class:`Products` in this batch's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session
        self.held = MongoHeldInputs(
            uow.db, uow.session, collection=HELD_VERDICTS, awaits=SUBMISSIONS
        )
        #: Ids looked up in this transaction and not found: new products.
        self._absent: set[str] = set()

    async def load(self, ids: Iterable[str]) -> tuple[dict[str, Product], dict[str, list[str]]]:
        wanted = set(ids)
        products, applied = await load(self.db, wanted, self.session)
        self._absent |= wanted - products.keys()
        return products, applied

    async def save(self, products: Iterable[Product], applied: dict[str, list[str]]) -> None:
        await save(self.db, products, applied, self.session, absent=self._absent)
        self._absent.clear()  # saved: they exist now


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
