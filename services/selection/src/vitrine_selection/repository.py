"""Where selection keeps its projections: the :class:`Store` protocol the handlers use, MongoDB
(one document per aggregate keyed by ``_id``, loaded and saved in bulk) and an in-memory twin
for handler tests. Both store the same documents (the twin keeps them in dicts), so the
mapping is exercised by every tier.

Collections: ``offers`` (the query-shaped document: the offer's facts + :func:`domain.listing`),
``products``, ``orders``, ``accounts``, ``policies``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, ReplaceOne, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.contract import policy_kernel as kernel
from vitrine.contract.events import Exemptions, Source
from vitrine.contract.events.policies import RULE_ADAPTER
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document, find_in
from vitrine_selection.domain import Offer, Order, Policy, Product, RateStep
from vitrine_selection.search import SORT_FIELDS, TIE

OFFERS = "offers"
PRODUCTS = "products"
ORDERS = "orders"
ACCOUNTS = "accounts"
POLICIES = "policies"
#: The projection's revision counter (one document): see :class:`Staged`.
COUNTERS = "counters"
COLLECTIONS = (OFFERS, PRODUCTS, ORDERS, ACCOUNTS, POLICIES, COUNTERS)
#: The collections the in-process index mirrors (``index.py``, ``feed.py``).
MIRRORED = (ACCOUNTS, POLICIES, OFFERS)


# --- documents <-> domain ----------------------------------------------------------------------


def product_doc(p: Product) -> Document:
    return {
        "_id": p.product_id,
        "merchant_id": p.merchant_id,
        "title": p.title,
        "category": p.category,
        "images": list(p.images),
        "price_fen": p.price_fen,
        "source": p.source.model_dump(exclude_none=True) if p.source else None,
        "listed": p.listed,
        "sold_out": p.sold_out,
        "version": p.version,
        "seen_at": p.seen_at,
    }


def to_product(d: Document) -> Product:
    return Product(
        product_id=d["_id"],
        merchant_id=d.get("merchant_id"),
        title=d.get("title") or "",
        category=d.get("category"),
        images=tuple(d.get("images") or ()),
        price_fen=d.get("price_fen"),
        source=Source.model_validate(d["source"]) if d.get("source") else None,
        listed=bool(d.get("listed")),
        sold_out=bool(d.get("sold_out")),
        version=d.get("version") or 0,
        seen_at=d.get("seen_at"),
    )


def offer_doc(o: Offer, listing: dict[str, Any]) -> Document:
    """The offer's facts and its listing in one document (what queries read)."""
    return {
        "_id": o.offer_id,
        **listing,
        "product_id": o.product_id,
        "merchant_id": o.merchant_id,
        "status": o.status,
        "status_reason": o.status_reason,
        "status_policy_id": o.status_policy_id,
        "plan": o.plan,
        "creator_ids": list(o.creator_ids),
        "rates": [{"bps": r.commission_bps, "effective_at": r.effective_at} for r in o.rates],
        "published_at": o.published_at,
        "seen_at": o.seen_at,
        "sales": {day: list(v) for day, v in o.sales.items()},
    }


def to_offer(d: Document) -> Offer:
    return Offer(
        offer_id=d["_id"],
        product_id=d.get("product_id"),
        merchant_id=d.get("merchant_id"),
        status=d.get("status"),
        status_reason=d.get("status_reason"),
        status_policy_id=d.get("status_policy_id"),
        plan=d.get("plan") or "general",
        creator_ids=tuple(d.get("creator_ids") or ()),
        rates=tuple(RateStep(r["bps"], r["effective_at"]) for r in d.get("rates") or ()),
        published_at=d.get("published_at"),
        seen_at=d.get("seen_at"),
        sales={day: (v[0], v[1]) for day, v in (d.get("sales") or {}).items()},
    )


def order_doc(o: Order) -> Document:
    return {
        "_id": o.order_id,
        "offer_id": o.offer_id,
        "amount_fen": o.amount_fen,
        "paid_at": o.paid_at,
        "refunded_fen": o.refunded_fen,
    }


def to_order(d: Document) -> Order:
    return Order(
        d["_id"],
        d.get("offer_id"),
        d.get("amount_fen", 0),
        d.get("paid_at"),
        d.get("refunded_fen", 0),
    )


def account_doc(a: kernel.Account) -> Document:
    return {
        "_id": a.account_id,
        "shops": [
            {"shop_id": s.shop_id, "shop_kind": s.shop_kind, "spb": s.service_provider_built}
            for s in a.shops
        ],
    }


def to_account(d: Document) -> kernel.Account:
    shops = tuple(kernel.Shop(s["shop_id"], s["shop_kind"], s["spb"]) for s in d.get("shops") or ())
    return kernel.Account(d["_id"], shops)


def policy_doc(p: Policy) -> Document:
    return {
        "_id": p.policy_id,
        "rules": [r.model_dump(exclude_none=True) for r in p.rules],
        "exemptions": p.exemptions.model_dump(),
        "phases": sorted(p.phases),
        "lifted": p.lifted,
        "in_force": p.in_force,
    }


def to_policy(d: Document) -> Policy:
    return Policy(
        policy_id=d["_id"],
        rules=tuple(RULE_ADAPTER.validate_python(r) for r in d.get("rules") or ()),
        exemptions=Exemptions.model_validate(d.get("exemptions") or {}),
        phases=frozenset(d.get("phases") or ()),
        lifted=bool(d.get("lifted")),
    )


# --- the protocol ------------------------------------------------------------------------------


class Store(Protocol):
    """What selection's handlers load and save, in bulk."""

    async def products(self, ids: Iterable[str]) -> dict[str, Product]: ...
    async def save_products(self, products: Iterable[Product]) -> None: ...
    async def offers(self, ids: Iterable[str]) -> dict[str, Offer]: ...
    async def save_offers(self, offers: Iterable[tuple[Offer, dict[str, Any]]]) -> None: ...
    async def orders(self, ids: Iterable[str]) -> dict[str, Order]: ...
    async def save_orders(self, orders: Iterable[Order]) -> None: ...
    async def accounts(self, ids: Iterable[str]) -> dict[str, kernel.Account]: ...
    async def save_accounts(self, accounts: Iterable[kernel.Account]) -> None: ...
    async def policies(self) -> dict[str, Policy]: ...
    async def save_policies(self, policies: Iterable[Policy]) -> None: ...

    async def offer_ids(
        self,
        *,
        product_ids: Iterable[str] = (),
        merchant_ids: Iterable[str] = (),
        source_kinds: Iterable[str] = (),
        policy_id: str | None = None,
    ) -> set[str]:
        """Offers of these products or merchants, from these source kinds, or whose listing
        names the policy (barred or exempt by it)."""
        ...


def _offer_selector(
    product_ids: list[str], merchant_ids: list[str], source_kinds: list[str], policy_id: str | None
) -> list[Document]:
    ors: list[Document] = []
    if product_ids:
        ors.append({"product_id": {"$in": product_ids}})
    if merchant_ids:
        ors.append({"merchant_id": {"$in": merchant_ids}})
    if source_kinds:
        ors.append({"source_kind": {"$in": source_kinds}})
    if policy_id is not None:
        ors += [{"policy_ids": policy_id}, {"shop_exempt": policy_id}]
    return ors


@dataclass
class Staged:
    """What one transaction wrote to the mirrored collections, handed to the index once it
    commits (``TransactionGuard.after_commit``; an aborted transaction's is dropped with its
    session).

    ``rev`` is the projection's revision this transaction took: the first write of a
    transaction increments the one counter document inside the transaction, and every
    document it writes carries that revision. Transactions that write the mirrored
    collections therefore also write one common document, so they commit one after the
    other in revision order (a concurrent one gets a write conflict and is retried) — what
    lets a replica follow the others' commits by ``rev > last seen`` (``feed.py``).
    """

    rev: int
    docs: dict[str, list[Document]] = field(default_factory=dict)


_staged: weakref.WeakKeyDictionary[AsyncClientSession, Staged] = weakref.WeakKeyDictionary()


def take_staged(session: AsyncClientSession) -> Staged | None:
    """What ``session``'s transaction wrote to the mirrored collections (once)."""
    return _staged.pop(session, None)


async def revision(db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> int:
    """The last revision a transaction took (0 before any)."""
    doc = await db[COUNTERS].find_one({"_id": "projection"}, session=session)
    return int(doc["rev"]) if doc else 0


class MongoStore:
    """:class:`Store` in this batch's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session

    @classmethod
    def of(cls, db: AsyncDatabase[Document], session: AsyncClientSession | None) -> MongoStore:
        store = cls.__new__(cls)
        store.db, store.session = db, session
        return store

    async def _find(self, name: str, ids: Iterable[str]) -> list[Document]:
        return await find_in(self.db[name], ids, self.session)

    async def _save(self, name: str, docs: Iterable[Document]) -> None:
        docs = list(docs)
        if not docs:
            return
        if name in MIRRORED and self.session is not None:
            staged = await self._staged()
            for d in docs:
                d["rev"] = staged.rev
            staged.docs.setdefault(name, []).extend(docs)
        ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
        await self.db[name].bulk_write(ops, ordered=False, session=self.session)

    async def _staged(self) -> Staged:
        assert self.session is not None
        staged = _staged.get(self.session)
        if staged is None:
            counter = await self.db[COUNTERS].find_one_and_update(
                {"_id": "projection"},
                {"$inc": {"rev": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=self.session,
            )
            assert counter is not None  # upserted
            staged = _staged[self.session] = Staged(int(counter["rev"]))
        return staged

    async def products(self, ids: Iterable[str]) -> dict[str, Product]:
        return {d["_id"]: to_product(d) for d in await self._find(PRODUCTS, ids)}

    async def save_products(self, products: Iterable[Product]) -> None:
        await self._save(PRODUCTS, (product_doc(p) for p in products))

    async def offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return {d["_id"]: to_offer(d) for d in await self._find(OFFERS, ids)}

    async def save_offers(self, offers: Iterable[tuple[Offer, dict[str, Any]]]) -> None:
        await self._save(OFFERS, (offer_doc(o, listing) for o, listing in offers))

    async def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {d["_id"]: to_order(d) for d in await self._find(ORDERS, ids)}

    async def save_orders(self, orders: Iterable[Order]) -> None:
        await self._save(ORDERS, (order_doc(o) for o in orders))

    async def accounts(self, ids: Iterable[str]) -> dict[str, kernel.Account]:
        return {d["_id"]: to_account(d) for d in await self._find(ACCOUNTS, ids)}

    async def save_accounts(self, accounts: Iterable[kernel.Account]) -> None:
        await self._save(ACCOUNTS, (account_doc(a) for a in accounts))

    async def policies(self) -> dict[str, Policy]:
        cursor = self.db[POLICIES].find({}, session=self.session)
        return {d["_id"]: to_policy(d) async for d in cursor}

    async def save_policies(self, policies: Iterable[Policy]) -> None:
        await self._save(POLICIES, (policy_doc(p) for p in policies))

    async def offer_ids(
        self,
        *,
        product_ids: Iterable[str] = (),
        merchant_ids: Iterable[str] = (),
        source_kinds: Iterable[str] = (),
        policy_id: str | None = None,
    ) -> set[str]:
        ors = _offer_selector(list(product_ids), list(merchant_ids), list(source_kinds), policy_id)
        if not ors:
            return set()
        found: set[str] = set()
        # One find per clause: each is served by its own index (an $or may not be, on nx-27017).
        for clause in ors:
            cursor = self.db[OFFERS].find(clause, {"_id": 1}, session=self.session)
            found.update([d["_id"] async for d in cursor])
        return found


class InMemoryStore:
    """:class:`Store` in dicts of the same documents, for handler tests."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Document]] = {name: {} for name in COLLECTIONS}

    def _find(self, name: str, ids: Iterable[str]) -> list[Document]:
        return [self.docs[name][i] for i in set(ids) if i in self.docs[name]]

    def _save(self, name: str, docs: Iterable[Document]) -> None:
        for d in docs:
            self.docs[name][d["_id"]] = d

    async def products(self, ids: Iterable[str]) -> dict[str, Product]:
        return {d["_id"]: to_product(d) for d in self._find(PRODUCTS, ids)}

    async def save_products(self, products: Iterable[Product]) -> None:
        self._save(PRODUCTS, (product_doc(p) for p in products))

    async def offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return {d["_id"]: to_offer(d) for d in self._find(OFFERS, ids)}

    async def save_offers(self, offers: Iterable[tuple[Offer, dict[str, Any]]]) -> None:
        self._save(OFFERS, (offer_doc(o, listing) for o, listing in offers))

    async def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {d["_id"]: to_order(d) for d in self._find(ORDERS, ids)}

    async def save_orders(self, orders: Iterable[Order]) -> None:
        self._save(ORDERS, (order_doc(o) for o in orders))

    async def accounts(self, ids: Iterable[str]) -> dict[str, kernel.Account]:
        return {d["_id"]: to_account(d) for d in self._find(ACCOUNTS, ids)}

    async def save_accounts(self, accounts: Iterable[kernel.Account]) -> None:
        self._save(ACCOUNTS, (account_doc(a) for a in accounts))

    async def policies(self) -> dict[str, Policy]:
        return {i: to_policy(d) for i, d in self.docs[POLICIES].items()}

    async def save_policies(self, policies: Iterable[Policy]) -> None:
        self._save(POLICIES, (policy_doc(p) for p in policies))

    async def offer_ids(
        self,
        *,
        product_ids: Iterable[str] = (),
        merchant_ids: Iterable[str] = (),
        source_kinds: Iterable[str] = (),
        policy_id: str | None = None,
    ) -> set[str]:
        pids, mids, kinds = set(product_ids), set(merchant_ids), set(source_kinds)
        return {
            i
            for i, d in self.docs[OFFERS].items()
            if d.get("product_id") in pids
            or d.get("merchant_id") in mids
            or d.get("source_kind") in kinds
            or (policy_id is not None and policy_id in d["policy_ids"] + d["shop_exempt"])
        }

    def listing(self, offer_id: str) -> Document:
        """The stored document of one offer (tests read what a query would)."""
        return self.docs[OFFERS][offer_id]


# --- setup: collections and the indexes the queries use ----------------------------------------

#: Every sort of ``GET /offers`` gets (visible, sort field, offer_id): the keyset walks it in
#: either direction. ``_id`` cannot be part of a compound index on nx-27017, hence ``offer_id``.
SORT_INDEXES = [
    [("visible", ASCENDING), (f, DESCENDING), (TIE, DESCENDING)] for f in SORT_FIELDS.values()
]


async def setup(db: AsyncDatabase[Document]) -> None:
    """Create the collections the handlers read and the indexes the queries need."""
    existing = set(await db.list_collection_names())
    for name in COLLECTIONS:
        if name not in existing:
            await db.create_collection(name)
    offers = db[OFFERS]
    for keys in SORT_INDEXES:
        await offers.create_index(keys)
    await offers.create_index([("tokens", ASCENDING)])  # multikey: keyword search
    await offers.create_index([("category", ASCENDING), ("visible", ASCENDING)])
    await offers.create_index(
        [("source_kind", ASCENDING), ("source_platform", ASCENDING), ("visible", ASCENDING)]
    )
    await offers.create_index([("audience", ASCENDING)])  # multikey: targeted plans
    await offers.create_index([("supplier", ASCENDING), ("visible", ASCENDING)])
    # Projection paths: a product's, a merchant's, a policy's offers; the refresher's due list.
    await offers.create_index([("product_id", ASCENDING)])
    await offers.create_index([("merchant_id", ASCENDING)])
    await offers.create_index([("policy_ids", ASCENDING)])
    await offers.create_index([("shop_exempt", ASCENDING)])
    await offers.create_index([("due_at", ASCENDING)])
    # What the index follows of other replicas' commits (``feed.py``): rev > last seen.
    for name in MIRRORED:
        await db[name].create_index([("rev", ASCENDING)])


async def still_due(
    db: AsyncDatabase[Document],
    offer_ids: list[str],
    now: datetime,
    session: AsyncClientSession | None = None,
) -> list[str]:
    """Those of ``offer_ids`` whose stored listing is due at ``now`` (lookups by ``_id``)."""
    cursor = db[OFFERS].find(
        {"_id": {"$in": offer_ids}, "due_at": {"$lte": now}}, {"_id": 1}, session=session
    )
    return sorted([d["_id"] async for d in cursor])
