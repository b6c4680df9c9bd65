"""Where live keeps its state: the :class:`LiveStore` protocol the handlers use, MongoDB
(:class:`MongoLiveStore`) and an in-memory twin for handler tests (:class:`InMemoryLiveStore`).

- ``sessions``: one document per session, ``_id`` = session_id, with ``creator_id, title,
  open, explaining, started_at, ended_at`` and its cart ``items[]`` (``product_id,
  merchant_id, source, position, offer_id, holds``; ≤ 500, so one document stays small).
  ``product_ids``/``offer_ids`` repeat the cart's ids flat, for the finds of the sweeps.
  Indexed on ``creator_id``+``open`` (a creator's open session) and on ``open`` (the sweeps
  only look at open sessions: ended ones are history); writes go by ``_id``.
- ``products`` / ``offers`` / ``accounts`` / ``policies``: projections keyed by their id;
  ``showcase``: ``_id`` = ``<creator_id>/<product_id>``, ``active`` (from ``showcase.items``).

Every function makes a bounded number of round trips whatever the number of documents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from vitrine.contract.events import Source, dump
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document
from vitrine.runtime.policy_documents import policy_fields, policy_from_document
from vitrine.runtime.projection_documents import (
    account_document,
    account_from_document,
    offer_document,
    offer_from_document,
    product_document,
    product_from_document,
)
from vitrine_live.domain import Account, CartItem, Offer, Policy, Product, Session

SESSIONS = "sessions"
PRODUCTS = "products"
OFFERS = "offers"
ACCOUNTS = "accounts"
SHOWCASE = "showcase"
POLICIES = "policies"
#: Ids per ``$in`` filter on the bulk paths.
CHUNK = 5000

Db = AsyncDatabase[Document]
MongoSession = AsyncClientSession | None
T = TypeVar("T")


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


# --- documents <-> domain ----------------------------------------------------------------------


def _source(doc: Mapping[str, Any] | None) -> Source | None:
    return None if doc is None else Source.model_validate(doc, strict=False)


def _dump_source(source: Source | None) -> Document | None:
    return None if source is None else dump(source)


def to_session(doc: Document) -> Session:
    return Session(
        session_id=doc["_id"],
        creator_id=doc["creator_id"],
        title=doc["title"],
        open=bool(doc["open"]),
        items=tuple(
            CartItem(
                product_id=i["product_id"],
                merchant_id=i["merchant_id"],
                source=_source(i.get("source")),
                position=int(i["position"]),
                offer_id=i.get("offer_id"),
                holds=frozenset(i.get("holds") or ()),
            )
            for i in doc.get("items", [])
        ),
        explaining=doc.get("explaining"),
        started_at=_aware(doc.get("started_at")),
        ended_at=_aware(doc.get("ended_at")),
    )


def _aware(value: datetime | None) -> datetime | None:
    """MongoDB keeps UTC and PyMongo reads it back naive by default."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def session_document(session: Session) -> Document:
    return {
        "_id": session.session_id,
        "creator_id": session.creator_id,
        "title": session.title,
        "open": session.open,
        "explaining": session.explaining,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        # flat copies for the sweeps' finds (membership in a plain array of strings)
        "product_ids": sorted(i.product_id for i in session.items),
        "offer_ids": sorted({i.offer_id for i in session.items if i.offer_id}),
        "items": [
            {
                "product_id": i.product_id,
                "merchant_id": i.merchant_id,
                "source": _dump_source(i.source),
                "position": i.position,
                "offer_id": i.offer_id,
                "holds": sorted(i.holds),
            }
            for i in session.items
        ],
    }


def to_policy(doc: Document) -> Policy:
    return policy_from_document(doc, Policy)


def policy_document(policy: Policy) -> Document:
    return {"_id": policy.policy_id, **policy_fields(policy)}


# --- the store the handlers use ----------------------------------------------------------------


class LiveStore(Protocol):
    """What live's handlers read and write (bulk, in the batch's transaction)."""

    async def load_sessions(self, session_ids: Iterable[str]) -> dict[str, Session]: ...
    async def open_sessions_of(self, creator_ids: Iterable[str]) -> dict[str, Session]: ...
    async def open_sessions_with_products(self, product_ids: Iterable[str]) -> list[Session]: ...
    async def open_sessions_with_offers(self, offer_ids: Iterable[str]) -> list[Session]: ...
    async def open_sessions(self) -> list[Session]: ...
    async def save_sessions(self, sessions: Iterable[Session]) -> None: ...
    async def load_products(self, ids: Iterable[str]) -> dict[str, Product]: ...
    async def save_products(self, products: Iterable[Product]) -> None: ...
    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]: ...
    async def save_offers(self, offers: Iterable[Offer]) -> None: ...
    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]: ...
    async def save_accounts(self, accounts: Iterable[Account]) -> None: ...
    async def showcase_active(self, keys: Iterable[str]) -> set[str]: ...
    async def save_showcase(self, changes: Mapping[str, bool | None]) -> None: ...
    async def load_policies(self) -> dict[str, Policy]: ...
    async def save_policy(self, policy: Policy) -> None: ...


class MongoLiveStore:
    """:class:`LiveStore` over this service's database, in the batch's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db: Db = uow.db
        self.session: MongoSession = uow.session

    async def _find(self, name: str, query: Document) -> list[Document]:
        return [d async for d in self.db[name].find(query, session=self.session)]

    async def _by_id(self, name: str, ids: Iterable[str]) -> list[Document]:
        out: list[Document] = []
        for part in chunks(sorted(set(ids))):
            out += await self._find(name, {"_id": {"$in": list(part)}})
        return out

    async def _replace(self, name: str, docs: Iterable[Document]) -> None:
        ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
        if ops:
            await self.db[name].bulk_write(ops, ordered=True, session=self.session)

    async def load_sessions(self, session_ids: Iterable[str]) -> dict[str, Session]:
        return {d["_id"]: to_session(d) for d in await self._by_id(SESSIONS, session_ids)}

    async def open_sessions_of(self, creator_ids: Iterable[str]) -> dict[str, Session]:
        wanted = sorted(set(creator_ids))
        docs = await self._find(SESSIONS, {"creator_id": {"$in": wanted}, "open": True})
        return {s.creator_id: s for s in map(to_session, docs)}

    async def open_sessions_with_products(self, product_ids: Iterable[str]) -> list[Session]:
        query = {"open": True, "product_ids": {"$in": sorted(set(product_ids))}}
        return [to_session(d) for d in await self._find(SESSIONS, query)]

    async def open_sessions_with_offers(self, offer_ids: Iterable[str]) -> list[Session]:
        query = {"open": True, "offer_ids": {"$in": sorted(set(offer_ids))}}
        return [to_session(d) for d in await self._find(SESSIONS, query)]

    async def open_sessions(self) -> list[Session]:
        docs = await self._find(SESSIONS, {"open": True})
        return sorted(map(to_session, docs), key=lambda s: s.session_id)

    async def save_sessions(self, sessions: Iterable[Session]) -> None:
        await self._replace(SESSIONS, map(session_document, sessions))

    async def load_products(self, ids: Iterable[str]) -> dict[str, Product]:
        return {d["_id"]: product_from_document(d) for d in await self._by_id(PRODUCTS, ids)}

    async def save_products(self, products: Iterable[Product]) -> None:
        await self._replace(PRODUCTS, map(product_document, products))

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return {d["_id"]: offer_from_document(d) for d in await self._by_id(OFFERS, ids)}

    async def save_offers(self, offers: Iterable[Offer]) -> None:
        await self._replace(OFFERS, map(offer_document, offers))

    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        return {d["_id"]: account_from_document(d) for d in await self._by_id(ACCOUNTS, ids)}

    async def save_accounts(self, accounts: Iterable[Account]) -> None:
        await self._replace(ACCOUNTS, map(account_document, accounts))

    async def showcase_active(self, keys: Iterable[str]) -> set[str]:
        return {d["_id"] for d in await self._by_id(SHOWCASE, keys) if d.get("active")}

    async def save_showcase(self, changes: Mapping[str, bool | None]) -> None:
        ops: list[Any] = [
            DeleteOne({"_id": k})
            if active is None
            else UpdateOne({"_id": k}, {"$set": {"active": active}}, upsert=True)
            for k, active in sorted(changes.items())
        ]
        if ops:
            await self.db[SHOWCASE].bulk_write(ops, ordered=True, session=self.session)

    async def load_policies(self) -> dict[str, Policy]:
        return {d["_id"]: to_policy(d) for d in await self._find(POLICIES, {})}

    async def save_policy(self, policy: Policy) -> None:
        await self._replace(POLICIES, [policy_document(policy)])


async def setup(db: Db) -> None:
    """Every collection up front (on nx-27017 a transaction whose first read hits a missing
    collection never starts), and the indexes the handlers and queries use."""
    existing = set(await db.list_collection_names())
    for name in (SESSIONS, PRODUCTS, OFFERS, ACCOUNTS, SHOWCASE, POLICIES):
        if name not in existing:
            with contextlib.suppress(CollectionInvalid, OperationFailure):  # a racing replica
                await db.create_collection(name)
    await db[SESSIONS].create_index([("creator_id", 1), ("open", 1)])
    await db[SESSIONS].create_index("open")


class InMemoryLiveStore:
    """:class:`LiveStore` in dicts, for handler tests (kept across batches, like the database)."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.products: dict[str, Product] = {}
        self.offers: dict[str, Offer] = {}
        self.accounts: dict[str, Account] = {}
        self.showcase: dict[str, bool] = {}
        self.policies: dict[str, Policy] = {}

    def _open(self) -> list[Session]:
        return [s for _, s in sorted(self.sessions.items()) if s.open]

    async def load_sessions(self, session_ids: Iterable[str]) -> dict[str, Session]:
        return {i: self.sessions[i] for i in set(session_ids) if i in self.sessions}

    async def open_sessions_of(self, creator_ids: Iterable[str]) -> dict[str, Session]:
        wanted = set(creator_ids)
        return {s.creator_id: s for s in self._open() if s.creator_id in wanted}

    async def open_sessions_with_products(self, product_ids: Iterable[str]) -> list[Session]:
        wanted = set(product_ids)
        return [s for s in self._open() if any(i.product_id in wanted for i in s.items)]

    async def open_sessions_with_offers(self, offer_ids: Iterable[str]) -> list[Session]:
        wanted = set(offer_ids)
        return [s for s in self._open() if any(i.offer_id in wanted for i in s.items)]

    async def open_sessions(self) -> list[Session]:
        return self._open()

    async def save_sessions(self, sessions: Iterable[Session]) -> None:
        self.sessions.update({s.session_id: s for s in sessions})

    async def load_products(self, ids: Iterable[str]) -> dict[str, Product]:
        return {i: self.products[i] for i in set(ids) if i in self.products}

    async def save_products(self, products: Iterable[Product]) -> None:
        self.products.update({p.product_id: p for p in products})

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return {i: self.offers[i] for i in set(ids) if i in self.offers}

    async def save_offers(self, offers: Iterable[Offer]) -> None:
        self.offers.update({o.offer_id: o for o in offers})

    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        return {i: self.accounts[i] for i in set(ids) if i in self.accounts}

    async def save_accounts(self, accounts: Iterable[Account]) -> None:
        self.accounts.update({a.account_id: a for a in accounts})

    async def showcase_active(self, keys: Iterable[str]) -> set[str]:
        return {k for k in keys if self.showcase.get(k)}

    async def save_showcase(self, changes: Mapping[str, bool | None]) -> None:
        for key, active in changes.items():
            if active is None:
                self.showcase.pop(key, None)
            else:
                self.showcase[key] = active

    async def load_policies(self) -> dict[str, Policy]:
        return dict(self.policies)

    async def save_policy(self, policy: Policy) -> None:
        self.policies[policy.policy_id] = policy
