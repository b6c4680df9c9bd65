"""Compliance's MongoDB documents: policies, schedules, and its projections of other services.

Collections (every hot document keyed by ``_id``):

- ``policies``   one per policy (``_id`` = policy id): state, accepted terms, history,
                 impact, enforcement reports.
- ``schedules``  one per (policy, phase) (``_id`` = ``"{policy_id}:{phase}"``): ``due_at``,
                 ``status`` (``pending`` | ``fired`` | ``cancelled``), ``revision``.
- ``items``      showcase items (``_id`` = ``"{creator_id}|{product_id}"``).
- ``offers``     distribution offers (``_id`` = offer id).
- ``products``   listed products' merchant and source, from ``catalog.products``.
- ``accounts``   accounts' shops, from ``accounts.shops``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

from vitrine.contract.events import (
    DisallowSource,
    PolicyAccepted,
    Reason,
    RequireShop,
    Rule,
    Source,
)
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document, find_in
from vitrine.runtime.projection_documents import account_from_document
from vitrine_compliance.domain import (
    Account,
    Cause,
    HistoryEntry,
    Item,
    Offer,
    Policy,
    ProductInfo,
    ScheduleOp,
)

POLICIES = "policies"
SCHEDULES = "schedules"
ITEMS = "items"
#: Items of open live carts (``_id`` = ``"{session_id}|{product_id}"``) and, per open session,
#: the products in its cart (so ``live.session_ended`` finds them by ``_id``).
CART_ITEMS = "cart_items"
LIVE_SESSIONS = "live_sessions"
OFFERS = "offers"
PRODUCTS = "products"
ACCOUNTS = "accounts"

Session = AsyncClientSession | None
Db = AsyncDatabase[Document]


# --- policies ----------------------------------------------------------------------------------


def to_policy(doc: Document) -> Policy:
    terms = doc.get("terms")
    cause = doc.get("cause")
    return Policy(
        policy_id=doc["_id"],
        state=doc["state"],
        terms=PolicyAccepted.model_validate(terms, strict=False) if terms else None,
        revision=doc.get("revision", 0),
        cause=Cause(**cause) if cause else None,
        fired=dict(doc.get("fired") or {}),
        lifted_at=doc.get("lifted_at"),
        lift_reason=doc.get("lift_reason"),
        reports={k: dict(v) for k, v in (doc.get("reports") or {}).items()},
        completed=dict(doc.get("completed") or {}),
        last_rejection=tuple(
            Reason.model_validate(r, strict=False) for r in doc.get("last_rejection") or []
        ),
        history=tuple(
            HistoryEntry(h["state"], h["at"], h.get("note", "")) for h in doc.get("history") or []
        ),
    )


def to_document(p: Policy, impact: dict[str, Any] | None = None) -> Document:
    doc: Document = {
        "_id": p.policy_id,
        "state": p.state,
        "phase": p.phase,
        "terms": p.terms.model_dump(mode="json") if p.terms else None,
        "revision": p.revision,
        "cause": (
            {"id": p.cause.id, "source": p.cause.source, "correlationid": p.cause.correlationid}
            if p.cause
            else None
        ),
        "fired": dict(p.fired),
        "lifted_at": p.lifted_at,
        "lift_reason": p.lift_reason,
        "reports": {k: dict(v) for k, v in p.reports.items()},
        "completed": dict(p.completed),
        "expected_services": list(p.expected_services),
        "last_rejection": [r.model_dump(mode="json", exclude_none=True) for r in p.last_rejection],
        "history": [{"state": h.state, "at": h.at, "note": h.note} for h in p.history],
    }
    if impact is not None:
        doc["impact"] = impact
    return doc


async def load_policies(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Policy]:
    return {doc["_id"]: to_policy(doc) for doc in await find_in(db[POLICIES], ids, session)}


async def save_policies(
    db: Db,
    policies: Iterable[Policy],
    impacts: dict[str, dict[str, Any]],
    session: Session = None,
) -> None:
    """Write the policies; an impact assessment made in this batch replaces the stored one."""
    ops: list[Any] = []
    for p in policies:
        doc = to_document(p)
        impact = impacts.get(p.policy_id)
        if impact is not None:
            doc["impact"] = impact
            ops.append(ReplaceOne({"_id": p.policy_id}, doc, upsert=True))
        else:  # keep the stored impact
            doc.pop("_id")
            ops.append(UpdateOne({"_id": p.policy_id}, {"$set": doc}, upsert=True))
    if ops:
        await db[POLICIES].bulk_write(ops, ordered=True, session=session)


# --- schedules ---------------------------------------------------------------------------------


def schedule_id(policy_id: str, phase: str) -> str:
    return f"{policy_id}:{phase}"


async def write_schedules(
    db: Db,
    changes: Sequence[tuple[str, ScheduleOp]],
    at: datetime,
    session: Session = None,
) -> None:
    """Upsert pending schedules, cancel the ones with no time (one bulk round trip).

    A fired schedule is never touched again (the domain refuses to amend after effect).
    """
    ops: list[Any] = []
    for policy_id, op in changes:
        sid = schedule_id(policy_id, op.phase)
        if op.due_at is not None:
            ops.append(
                ReplaceOne(
                    {"_id": sid},
                    {
                        "_id": sid,
                        "policy_id": policy_id,
                        "phase": op.phase,
                        "due_at": op.due_at,
                        "status": "pending",
                        "revision": op.revision,
                        "updated_at": at,
                    },
                    upsert=True,
                )
            )
        else:
            ops.append(
                UpdateOne(
                    {"_id": sid, "status": "pending"},
                    {"$set": {"status": "cancelled", "updated_at": at}},
                )
            )
    if ops:
        await db[SCHEDULES].bulk_write(ops, ordered=True, session=session)


async def due_schedules(db: Db, now: datetime, limit: int = 100) -> list[Document]:
    """Pending schedules due at ``now``, earliest first (block_new before enforce_existing)."""
    cursor = (
        db[SCHEDULES]
        .find({"status": "pending", "due_at": {"$lte": now}})
        .sort([("due_at", 1), ("phase", 1)])
        .limit(limit)
    )
    return await cursor.to_list(None)


async def next_due(db: Db) -> datetime | None:
    doc = await db[SCHEDULES].find_one({"status": "pending"}, sort=[("due_at", 1)])
    return doc["due_at"] if doc else None


async def schedules_of(db: Db, policy_id: str) -> list[Document]:
    return await db[SCHEDULES].find({"policy_id": policy_id}).sort("_id", 1).to_list(None)


# --- projections -------------------------------------------------------------------------------


def item_id(creator_id: str, product_id: str) -> str:
    return f"{creator_id}|{product_id}"


def to_item(doc: Document) -> Item:
    return Item(
        doc["creator_id"],
        doc["product_id"],
        doc.get("offer_id"),
        doc["status"],
        doc.get("surface", "showcase"),
    )


def cart_item_id(session_id: str, product_id: str) -> str:
    """``|`` never occurs in ids (DESIGN.md §2), so keys never collide."""
    return f"{session_id}|{product_id}"


def to_offer(doc: Document) -> Offer:
    return Offer(doc["_id"], doc["product_id"], doc["merchant_id"], doc["status"])


def to_product(doc: Document) -> ProductInfo:
    return ProductInfo(
        doc["_id"],
        doc["merchant_id"],
        Source.model_validate(doc["source"], strict=False),
        doc.get("listed", True),
    )


async def load_accounts(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Account]:
    docs = await find_in(db[ACCOUNTS], ids, session)
    return {doc["_id"]: account_from_document(doc) for doc in docs}


async def load_products(
    db: Db, ids: Iterable[str], session: Session = None
) -> dict[str, ProductInfo]:
    return {doc["_id"]: to_product(doc) for doc in await find_in(db[PRODUCTS], ids, session)}


async def candidates(
    db: Db, rules: Sequence[Rule], session: Session = None
) -> tuple[list[Item], list[Offer], dict[str, ProductInfo], dict[str, Account]]:
    """The active items and offers the rules could touch, with their products and accounts.

    ``disallow_source`` only: the products of the named source kinds and their items/offers
    (indexed finds). ``require_shop`` on a surface: every active item (showcase) or offer
    (distribution), since any actor may lack the shop.
    """
    surfaces_scan = {s for r in rules if isinstance(r, RequireShop) for s in r.surfaces}
    kinds = sorted({m.kind for r in rules if isinstance(r, DisallowSource) for m in r.sources})
    disallow_surfaces = {s for r in rules if isinstance(r, DisallowSource) for s in r.surfaces}
    matching: list[str] = []
    if kinds:
        cursor = db[PRODUCTS].find({"source.kind": {"$in": kinds}}, {"_id": 1}, session=session)
        matching = [doc["_id"] async for doc in cursor]

    async def scan(collection: str, surface: str) -> list[Document]:
        if surface in surfaces_scan:
            query: Document = {"status": "active"}
        elif surface in disallow_surfaces and matching:
            query = {"status": "active", "product_id": {"$in": matching}}
        else:
            return []
        return await db[collection].find(query, session=session).to_list(None)

    items = [to_item(d) for d in await scan(ITEMS, "showcase")]
    items += [to_item(d) for d in await scan(CART_ITEMS, "live")]
    offers = [to_offer(d) for d in await scan(OFFERS, "distribution")]
    products = await load_products(
        db, [i.product_id for i in items] + [o.product_id for o in offers], session
    )
    accounts = await load_accounts(
        db,
        [i.creator_id for i in items]
        + [o.merchant_id for o in offers]
        + [p.merchant_id for p in products.values()],
        session,
    )
    return items, offers, products, accounts


Candidates = tuple[list[Item], list[Offer], dict[str, ProductInfo], dict[str, Account]]


class Store(Protocol):
    """What compliance's handlers need: policies, schedules, and the four projections
    (``items``, ``offers``, ``products``, ``accounts``: documents keyed by ``_id``)."""

    async def load_policies(self, ids: Iterable[str]) -> dict[str, Policy]: ...

    async def save_policies(
        self, policies: Iterable[Policy], impacts: dict[str, dict[str, Any]]
    ) -> None: ...

    async def write_schedules(
        self, changes: Sequence[tuple[str, ScheduleOp]], at: datetime
    ) -> None: ...

    async def candidates(self, rules: Sequence[Rule]) -> Candidates:
        """The active items and offers the rules could touch, their products and accounts."""
        ...

    async def load_projection(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        """The documents of a projection with these ids that exist."""
        ...

    async def write_projection(self, collection: str, docs: dict[str, Document | None]) -> None:
        """Replace (or delete: ``None``) these documents of a projection."""
        ...


class MongoStore:
    """:class:`Store` in this batch's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session

    async def load_policies(self, ids: Iterable[str]) -> dict[str, Policy]:
        return await load_policies(self.db, ids, self.session)

    async def save_policies(
        self, policies: Iterable[Policy], impacts: dict[str, dict[str, Any]]
    ) -> None:
        await save_policies(self.db, policies, impacts, self.session)

    async def write_schedules(
        self, changes: Sequence[tuple[str, ScheduleOp]], at: datetime
    ) -> None:
        await write_schedules(self.db, changes, at, self.session)

    async def candidates(self, rules: Sequence[Rule]) -> Candidates:
        return await candidates(self.db, rules, self.session)

    async def load_projection(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        return {doc["_id"]: doc for doc in await find_in(self.db[collection], ids, self.session)}

    async def write_projection(self, collection: str, docs: dict[str, Document | None]) -> None:
        ops: list[Any] = [
            ReplaceOne({"_id": k}, {**doc, "_id": k}, upsert=True)
            if doc is not None
            else DeleteOne({"_id": k})
            for k, doc in sorted(docs.items())
        ]
        if ops:
            await self.db[collection].bulk_write(ops, ordered=False, session=self.session)


class InMemoryStore:
    """:class:`Store` in dicts, for handler tests (kept across batches like the database)."""

    def __init__(self) -> None:
        self.policies: dict[str, Policy] = {}
        self.impacts: dict[str, dict[str, Any]] = {}
        #: schedule id → what :func:`write_schedules` would store (``status`` pending/cancelled)
        self.schedules: dict[str, Document] = {}
        self.projections: dict[str, dict[str, Document]] = {
            c: {} for c in (ITEMS, CART_ITEMS, LIVE_SESSIONS, OFFERS, PRODUCTS, ACCOUNTS)
        }

    async def load_policies(self, ids: Iterable[str]) -> dict[str, Policy]:
        return {i: self.policies[i] for i in set(ids) if i in self.policies}

    async def save_policies(
        self, policies: Iterable[Policy], impacts: dict[str, dict[str, Any]]
    ) -> None:
        for p in policies:
            self.policies[p.policy_id] = p
            if p.policy_id in impacts:
                self.impacts[p.policy_id] = impacts[p.policy_id]

    async def write_schedules(
        self, changes: Sequence[tuple[str, ScheduleOp]], at: datetime
    ) -> None:
        for policy_id, op in changes:
            sid = schedule_id(policy_id, op.phase)
            if op.due_at is not None:
                self.schedules[sid] = {
                    "policy_id": policy_id,
                    "phase": op.phase,
                    "due_at": op.due_at,
                    "status": "pending",
                    "revision": op.revision,
                }
            elif self.schedules.get(sid, {}).get("status") == "pending":
                self.schedules[sid] = {**self.schedules[sid], "status": "cancelled"}

    async def candidates(self, rules: Sequence[Rule]) -> Candidates:
        # Every active item and offer: a superset of Mongo's indexed narrowing, which
        # ``domain.assess`` filters the same way.
        p = self.projections
        items = [
            to_item(d)
            for c in (ITEMS, CART_ITEMS)
            for d in p[c].values()
            if d["status"] == "active"
        ]
        offers = [
            to_offer({**d, "_id": k}) for k, d in p[OFFERS].items() if d["status"] == "active"
        ]
        products = {k: to_product({**d, "_id": k}) for k, d in p[PRODUCTS].items()}
        accounts = {k: account_from_document({**d, "_id": k}) for k, d in p[ACCOUNTS].items()}
        return items, offers, products, accounts

    async def load_projection(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        docs = self.projections[collection]
        return {i: dict(docs[i]) for i in set(ids) if i in docs}

    async def write_projection(self, collection: str, docs: dict[str, Document | None]) -> None:
        for k, doc in docs.items():
            if doc is None:
                self.projections[collection].pop(k, None)
            else:
                self.projections[collection][k] = {**doc, "_id": k}


#: Every collection of this database, created up front (see :func:`setup`).
ALL_COLLECTIONS = (
    POLICIES,
    SCHEDULES,
    ITEMS,
    CART_ITEMS,
    LIVE_SESSIONS,
    OFFERS,
    PRODUCTS,
    ACCOUNTS,
    "outbox",
)


async def setup(db: Db) -> None:
    """Collections and indexes: due schedules, a policy's schedules, impact lookups.

    Every collection is created before the first transaction: on nx-27017 a transaction
    whose first command reads a collection that does not exist yet is never started, its
    writes autocommit and the commit fails ("No session specified"), so a retry finds the
    inbox row already written and the event is dead-lettered.
    """
    existing = set(await db.list_collection_names())
    for name in ALL_COLLECTIONS:
        if name not in existing:
            with contextlib.suppress(CollectionInvalid):  # created concurrently elsewhere
                await db.create_collection(name)
    await db[SCHEDULES].create_index([("status", 1), ("due_at", 1)])
    await db[SCHEDULES].create_index("policy_id")
    await db[POLICIES].create_index("state")
    await db[ITEMS].create_index("product_id")
    await db[ITEMS].create_index("status")
    await db[CART_ITEMS].create_index("product_id")
    await db[CART_ITEMS].create_index("status")
    await db[OFFERS].create_index("product_id")
    await db[OFFERS].create_index("status")
    await db[PRODUCTS].create_index("source.kind")
