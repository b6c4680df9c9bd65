"""Showcase state in MongoDB: items and the projections of other services' facts.

- ``items``: one document per item, ``_id`` = ``<creator_id>/<product_id>``, with
  ``creator_id, product_id, merchant_id, source, position, holds, offer_id``. Indexed on
  ``creator_id``, ``product_id``, ``merchant_id`` and ``source.kind``+``source.platform`` so
  the bulk paths find what they touch; writes go by ``_id`` (nx-27017 scans the whole
  collection for updates filtered on anything else).
- ``products`` / ``accounts`` / ``offers`` / ``policies``: projections keyed by their id.

Every function takes the transaction's session and makes a bounded number of round trips,
whatever the number of documents (``CHUNK`` ids per ``$in``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure
from pymongo.operations import DeleteOne, InsertOne

from vitrine.contract.events import Exemptions, Rule, Source, dump
from vitrine.runtime.mongo import Document
from vitrine_showcase.domain import Account, Item, Offer, Policy, Product, Shop, Showcase

ITEMS = "items"
PRODUCTS = "products"
ACCOUNTS = "accounts"
OFFERS = "offers"
POLICIES = "policies"
#: Ids per ``$in`` filter (and per update_many) on the bulk paths.
CHUNK = 5000
#: Documents per cursor batch on the bulk reads (fewer getMore round trips).
BATCH = 10_000

Session = AsyncClientSession | None
_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
Db = AsyncDatabase[Document]
T = TypeVar("T")


def chunks(ids: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


# --- items -----------------------------------------------------------------------------------

_ITEM_FIELDS = {
    "creator_id": 1,
    "product_id": 1,
    "merchant_id": 1,
    "source": 1,
    "position": 1,
    "holds": 1,
    "offer_id": 1,
}


def _source(doc: Mapping[str, Any]) -> Source:
    return _cached_source(doc["kind"], doc.get("platform"))


@functools.lru_cache(maxsize=1024)
def _cached_source(kind: str, platform: str | None) -> Source:
    return Source.model_validate({"kind": kind, "platform": platform}, strict=False)


def to_item(doc: Document) -> Item:
    return Item(
        creator_id=doc["creator_id"],
        product_id=doc["product_id"],
        merchant_id=doc["merchant_id"],
        source=_source(doc["source"]),
        position=int(doc.get("position", 0)),
        holds=frozenset(doc.get("holds") or ()),
        offer_id=doc.get("offer_id"),
    )


def item_document(item: Item) -> Document:
    return {
        "_id": item.key,
        "creator_id": item.creator_id,
        "product_id": item.product_id,
        "merchant_id": item.merchant_id,
        "source": dump(item.source),
        "position": item.position,
        "holds": sorted(item.holds),
        "offer_id": item.offer_id,
    }


async def _items(db: Db, query: Document, session: Session) -> list[Item]:
    cursor = db[ITEMS].find(query, _ITEM_FIELDS, session=session).batch_size(BATCH)
    return [to_item(doc) async for doc in cursor]


async def load_showcases(
    db: Db, creator_ids: Iterable[str], session: Session = None
) -> dict[str, Showcase]:
    """Every creator's showcase (empty for a creator with no items), one round trip."""
    wanted = sorted(set(creator_ids))
    by_creator: dict[str, list[Item]] = {c: [] for c in wanted}
    for item in await _items(db, {"creator_id": {"$in": wanted}}, session):
        by_creator[item.creator_id].append(item)
    return {c: Showcase.of(c, items) for c, items in by_creator.items()}


async def save_showcases(
    db: Db,
    before: Mapping[str, Showcase],
    after: Mapping[str, Showcase],
    session: Session = None,
) -> int:
    """Write what changed between ``before`` and ``after`` in one bulk round trip.

    New items are inserted whole; existing ones only get their ``position``/``offer_id``
    set (``holds`` belong to the suspension paths); removed ones are deleted.
    """
    ops: list[Any] = []
    for creator_id, new in after.items():
        old = {i.product_id: i for i in before[creator_id].items}
        current = {i.product_id for i in new.items}
        for pid, item in old.items():
            if pid not in current:
                ops.append(DeleteOne({"_id": item.key}))
        for item in new.items:
            prev = old.get(item.product_id)
            if prev is None:
                ops.append(InsertOne(item_document(item)))
            elif replace(prev, position=item.position, offer_id=item.offer_id) != item:
                # removed and added again in one batch: a new item, with no holds
                ops.append(ReplaceOne({"_id": item.key}, item_document(item)))
            elif prev.position != item.position or prev.offer_id != item.offer_id:
                ops.append(
                    UpdateOne(
                        {"_id": item.key},
                        {"$set": {"position": item.position, "offer_id": item.offer_id}},
                    )
                )
    if ops:
        await db[ITEMS].bulk_write(ops, ordered=True, session=session)
    return len(ops)


async def items_of_products(db: Db, product_ids: Iterable[str], session: Session) -> list[Item]:
    """Every item of these products, in every showcase (indexed on ``product_id``)."""
    wanted = sorted(set(product_ids))
    out: list[Item] = []
    for part in chunks(wanted):
        out += await _items(db, {"product_id": {"$in": list(part)}}, session)
    return out


async def items_matching_sources(db: Db, sources: Sequence[Source], session: Session) -> list[Item]:
    """Items whose source matches any of ``sources`` (kind, and platform when given): one
    query on the ``source.kind``/``source.platform`` index."""
    if not sources:
        return []
    clauses: list[Document] = []
    for s in sources:
        clause: Document = {"source.kind": s.kind}
        if s.platform is not None:
            clause["source.platform"] = s.platform
        clauses.append(clause)
    query = clauses[0] if len(clauses) == 1 else {"$or": clauses}
    return await _items(db, query, session)


async def items_of_creators(db: Db, creator_ids: Sequence[str], session: Session) -> list[Item]:
    out: list[Item] = []
    for part in chunks(sorted(set(creator_ids))):
        out += await _items(db, {"creator_id": {"$in": list(part)}}, session)
    return out


async def creators_with_items(db: Db, session: Session) -> list[str]:
    """Every creator that has at least one item (for ``require_shop`` sweeps)."""
    values = await db[ITEMS].distinct("creator_id", session=session)
    return sorted(str(v) for v in values)


async def items_held_by(db: Db, hold: str, session: Session) -> list[Item]:
    """Items carrying ``hold``. Deliberately not indexed: a multikey index on ``holds``
    returned stale results on nx-27017 in one of our runs; see README."""
    return await _items(db, {"holds": hold}, session)


async def add_hold(db: Db, keys: Sequence[str], hold: str, session: Session) -> int:
    """``$addToSet`` ``hold`` on these items: one update_many per ``CHUNK`` ids."""
    modified = 0
    for part in chunks(keys):
        res = await db[ITEMS].update_many(
            {"_id": {"$in": list(part)}}, {"$addToSet": {"holds": hold}}, session=session
        )
        modified += res.modified_count
    return modified


async def pull_hold(db: Db, keys: Sequence[str], hold: str, session: Session) -> int:
    """``$pull`` ``hold`` from these items: one update_many per ``CHUNK`` ids."""
    modified = 0
    for part in chunks(keys):
        res = await db[ITEMS].update_many(
            {"_id": {"$in": list(part)}}, {"$pull": {"holds": hold}}, session=session
        )
        modified += res.modified_count
    return modified


async def set_product_fields(
    db: Db, keys: Sequence[str], merchant_id: str, source: Source, session: Session
) -> None:
    """A relisted version changed the product's source: carry it to its items."""
    for part in chunks(keys):
        await db[ITEMS].update_many(
            {"_id": {"$in": list(part)}},
            {"$set": {"merchant_id": merchant_id, "source": dump(source)}},
            session=session,
        )


# --- projections -----------------------------------------------------------------------------


async def _by_id(db: Db, name: str, ids: Iterable[str], session: Session) -> list[Document]:
    wanted = sorted(set(ids))
    out: list[Document] = []
    for part in chunks(wanted):
        cursor = db[name].find({"_id": {"$in": list(part)}}, session=session).batch_size(BATCH)
        out += [doc async for doc in cursor]
    return out


async def _replace_all(db: Db, name: str, docs: Iterable[Document], session: Session) -> None:
    ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
    if ops:
        await db[name].bulk_write(ops, ordered=False, session=session)


async def load_products(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Product]:
    return {
        d["_id"]: Product(
            product_id=d["_id"],
            merchant_id=d["merchant_id"],
            source=_source(d["source"]),
            listed=bool(d["listed"]),
            version=d.get("version"),
        )
        for d in await _by_id(db, PRODUCTS, ids, session)
    }


async def save_products(db: Db, products: Iterable[Product], session: Session = None) -> None:
    await _replace_all(
        db,
        PRODUCTS,
        (
            {
                "_id": p.product_id,
                "merchant_id": p.merchant_id,
                "source": dump(p.source),
                "listed": p.listed,
                "version": p.version,
            }
            for p in products
        ),
        session,
    )


async def load_accounts(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Account]:
    return {
        d["_id"]: Account(
            d["_id"],
            tuple(
                Shop(s["shop_id"], s["shop_kind"], bool(s.get("service_provider_built")))
                for s in d.get("shops", [])
            ),
        )
        for d in await _by_id(db, ACCOUNTS, ids, session)
    }


async def save_accounts(db: Db, accounts: Iterable[Account], session: Session = None) -> None:
    await _replace_all(
        db,
        ACCOUNTS,
        (
            {
                "_id": a.account_id,
                "shops": [
                    {
                        "shop_id": s.shop_id,
                        "shop_kind": s.shop_kind,
                        "service_provider_built": s.service_provider_built,
                    }
                    for s in a.shops
                ],
            }
            for a in accounts
        ),
        session,
    )


async def load_offers(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Offer]:
    return {
        d["_id"]: Offer(
            offer_id=d["_id"],
            product_id=d["product_id"],
            merchant_id=d["merchant_id"],
            plan=d["plan"],
            creator_ids=frozenset(d.get("creator_ids", [])),
            withdrawn=bool(d.get("withdrawn")),
            suspended=bool(d.get("suspended")),
        )
        for d in await _by_id(db, OFFERS, ids, session)
    }


async def save_offers(db: Db, offers: Iterable[Offer], session: Session = None) -> None:
    await _replace_all(
        db,
        OFFERS,
        (
            {
                "_id": o.offer_id,
                "product_id": o.product_id,
                "merchant_id": o.merchant_id,
                "plan": o.plan,
                "creator_ids": sorted(o.creator_ids),
                "withdrawn": o.withdrawn,
                "suspended": o.suspended,
            }
            for o in offers
        ),
        session,
    )


def to_policy(doc: Document) -> Policy:
    return Policy(
        policy_id=doc["_id"],
        rules=tuple(_RULE.validate_python(r, strict=False) for r in doc.get("rules", [])),
        exemptions=Exemptions.model_validate(doc.get("exemptions") or {}, strict=False),
        phases=frozenset(doc.get("phases", [])),
        lifted=bool(doc.get("lifted")),
    )


def policy_document(policy: Policy) -> Document:
    return {
        "rules": [r.model_dump(mode="json", exclude_none=True) for r in policy.rules],
        "exemptions": dump(policy.exemptions),
        "phases": sorted(policy.phases),
        "lifted": policy.lifted,
    }


async def load_policies_in_force(db: Db, session: Session = None) -> list[Policy]:
    """Every policy in force (few: rulings are rare), one round trip."""
    cursor = db[POLICIES].find({"lifted": False}, session=session)
    return [p for p in [to_policy(d) async for d in cursor] if p.in_force]


async def load_policy(db: Db, policy_id: str, session: Session) -> tuple[Policy | None, Document]:
    doc = await db[POLICIES].find_one({"_id": policy_id}, session=session)
    return (to_policy(doc), doc) if doc else (None, {})


async def save_policy(db: Db, policy: Policy, session: Session, **extra: Any) -> None:
    await db[POLICIES].update_one(
        {"_id": policy.policy_id},
        {"$set": {**policy_document(policy), **extra}},
        upsert=True,
        session=session,
    )


async def setup(db: Db) -> None:
    """Every collection up front, and indexes for the bulk paths and the read-only queries.

    Collections are created here, outside any transaction: on nx-27017 a transaction whose
    first command reads a collection that does not exist yet never starts (its writes are
    applied one by one and the commit fails).
    """
    existing = set(await db.list_collection_names())
    for name in (ITEMS, PRODUCTS, ACCOUNTS, OFFERS, POLICIES):
        if name not in existing:
            with contextlib.suppress(CollectionInvalid, OperationFailure):  # a racing replica
                await db.create_collection(name)
    await db[ITEMS].create_index("creator_id")
    await db[ITEMS].create_index("product_id")
    await db[ITEMS].create_index("merchant_id")
    await db[ITEMS].create_index([("source.kind", 1), ("source.platform", 1)])
    await db[POLICIES].create_index("lifted")
