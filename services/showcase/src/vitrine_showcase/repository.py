"""Where showcase keeps its state: the :class:`ShowcaseStore` protocol the handlers use,
MongoDB (:class:`MongoShowcaseStore`, below the module functions) and an in-memory twin for
handler tests (:class:`InMemoryShowcaseStore`).

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
from typing import Any, Protocol, TypeVar

from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure
from pymongo.operations import DeleteOne, InsertOne

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
from vitrine_showcase.domain import Account, Item, Offer, Policy, Product, Showcase

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


async def items_of_offers(db: Db, offer_ids: Iterable[str], session: Session) -> list[Item]:
    """Every item taken through these offers (indexed on ``offer_id``)."""
    out: list[Item] = []
    for part in chunks(sorted(set(offer_ids))):
        out += await _items(db, {"offer_id": {"$in": list(part)}}, session)
    return out


async def save_item_changes(db: Db, changes: Sequence[tuple[Item, Item]], session: Session) -> int:
    """Write what the hold decisions changed: one ``$addToSet``/``$pull`` update_many per cause
    (a sweep moves one cause on many items), and the new merchant/source of relisted items."""
    adds: dict[str, list[str]] = {}
    pulls: dict[str, list[str]] = {}
    moved: list[Any] = []
    for before, after in changes:
        for hold in sorted(after.holds - before.holds):
            adds.setdefault(hold, []).append(after.key)
        for hold in sorted(before.holds - after.holds):
            pulls.setdefault(hold, []).append(after.key)
        if (before.merchant_id, before.source) != (after.merchant_id, after.source):
            fields = {"merchant_id": after.merchant_id, "source": dump(after.source)}
            moved.append(UpdateOne({"_id": after.key}, {"$set": fields}))
    modified = 0
    for hold, keys in sorted(adds.items()):
        modified += await add_hold(db, keys, hold, session)
    for hold, keys in sorted(pulls.items()):
        modified += await pull_hold(db, keys, hold, session)
    if moved:
        await db[ITEMS].bulk_write(moved, ordered=False, session=session)
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
    return {d["_id"]: product_from_document(d) for d in await _by_id(db, PRODUCTS, ids, session)}


async def save_products(db: Db, products: Iterable[Product], session: Session = None) -> None:
    await _replace_all(db, PRODUCTS, map(product_document, products), session)


async def load_accounts(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Account]:
    return {d["_id"]: account_from_document(d) for d in await _by_id(db, ACCOUNTS, ids, session)}


async def save_accounts(db: Db, accounts: Iterable[Account], session: Session = None) -> None:
    await _replace_all(db, ACCOUNTS, map(account_document, accounts), session)


async def load_offers(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Offer]:
    return {d["_id"]: offer_from_document(d) for d in await _by_id(db, OFFERS, ids, session)}


async def save_offers(db: Db, offers: Iterable[Offer], session: Session = None) -> None:
    await _replace_all(db, OFFERS, map(offer_document, offers), session)


def to_policy(doc: Document) -> Policy:
    return policy_from_document(doc, Policy)


def policy_document(policy: Policy) -> Document:
    return policy_fields(policy)


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
    await db[ITEMS].create_index("offer_id")
    await db[ITEMS].create_index([("source.kind", 1), ("source.platform", 1)])
    await db[POLICIES].create_index("lifted")


# --- the store the handlers use ----------------------------------------------------------------


class ShowcaseStore(Protocol):
    """What showcase's handlers read and write (bulk, in the batch's transaction)."""

    async def load_showcases(self, creator_ids: Iterable[str]) -> dict[str, Showcase]: ...
    async def save_showcases(
        self, before: Mapping[str, Showcase], after: Mapping[str, Showcase]
    ) -> None: ...
    async def items_of_products(self, product_ids: Iterable[str]) -> list[Item]: ...
    async def items_of_offers(self, offer_ids: Iterable[str]) -> list[Item]: ...
    async def items_of_creators(self, creator_ids: Sequence[str]) -> list[Item]: ...
    async def items_matching_sources(self, sources: Sequence[Source]) -> list[Item]: ...
    async def creators_with_items(self) -> list[str]: ...
    async def items_held_by(self, hold: str) -> list[Item]: ...
    async def save_item_changes(self, changes: Sequence[tuple[Item, Item]]) -> int: ...
    async def load_products(self, ids: Iterable[str]) -> dict[str, Product]: ...
    async def save_products(self, products: Iterable[Product]) -> None: ...
    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]: ...
    async def save_accounts(self, accounts: Iterable[Account]) -> None: ...
    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]: ...
    async def save_offers(self, offers: Iterable[Offer]) -> None: ...
    async def load_policies_in_force(self) -> list[Policy]: ...
    async def load_policy(self, policy_id: str) -> tuple[Policy | None, Document]: ...
    async def save_policy(self, policy: Policy, **extra: Any) -> None: ...


class MongoShowcaseStore:
    """:class:`ShowcaseStore` in this batch's MongoDB transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session

    async def load_showcases(self, creator_ids: Iterable[str]) -> dict[str, Showcase]:
        return await load_showcases(self.db, creator_ids, self.session)

    async def save_showcases(
        self, before: Mapping[str, Showcase], after: Mapping[str, Showcase]
    ) -> None:
        await save_showcases(self.db, before, after, self.session)

    async def items_of_products(self, product_ids: Iterable[str]) -> list[Item]:
        return await items_of_products(self.db, product_ids, self.session)

    async def items_of_offers(self, offer_ids: Iterable[str]) -> list[Item]:
        return await items_of_offers(self.db, offer_ids, self.session)

    async def items_of_creators(self, creator_ids: Sequence[str]) -> list[Item]:
        return await items_of_creators(self.db, creator_ids, self.session)

    async def items_matching_sources(self, sources: Sequence[Source]) -> list[Item]:
        return await items_matching_sources(self.db, sources, self.session)

    async def creators_with_items(self) -> list[str]:
        return await creators_with_items(self.db, self.session)

    async def items_held_by(self, hold: str) -> list[Item]:
        return await items_held_by(self.db, hold, self.session)

    async def save_item_changes(self, changes: Sequence[tuple[Item, Item]]) -> int:
        return await save_item_changes(self.db, changes, self.session)

    async def load_products(self, ids: Iterable[str]) -> dict[str, Product]:
        return await load_products(self.db, ids, self.session)

    async def save_products(self, products: Iterable[Product]) -> None:
        await save_products(self.db, products, self.session)

    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        return await load_accounts(self.db, ids, self.session)

    async def save_accounts(self, accounts: Iterable[Account]) -> None:
        await save_accounts(self.db, accounts, self.session)

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return await load_offers(self.db, ids, self.session)

    async def save_offers(self, offers: Iterable[Offer]) -> None:
        await save_offers(self.db, offers, self.session)

    async def load_policies_in_force(self) -> list[Policy]:
        return await load_policies_in_force(self.db, self.session)

    async def load_policy(self, policy_id: str) -> tuple[Policy | None, Document]:
        return await load_policy(self.db, policy_id, self.session)

    async def save_policy(self, policy: Policy, **extra: Any) -> None:
        await save_policy(self.db, policy, self.session, **extra)


class InMemoryShowcaseStore:
    """:class:`ShowcaseStore` in dicts, for handler tests (kept across batches, like the
    database). Items are keyed by :func:`vitrine_showcase.domain.item_key`."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.products: dict[str, Product] = {}
        self.accounts: dict[str, Account] = {}
        self.offers: dict[str, Offer] = {}
        self.policies: dict[str, tuple[Policy, Document]] = {}

    def _where(self, keep: Any) -> list[Item]:
        return [i for _, i in sorted(self.items.items()) if keep(i)]

    async def load_showcases(self, creator_ids: Iterable[str]) -> dict[str, Showcase]:
        wanted = set(creator_ids)
        return {
            c: Showcase.of(c, self._where(lambda i, c=c: i.creator_id == c)) for c in sorted(wanted)
        }

    async def save_showcases(
        self, before: Mapping[str, Showcase], after: Mapping[str, Showcase]
    ) -> None:
        for creator_id, new in after.items():
            for item in before[creator_id].items:
                self.items.pop(item.key, None)
            for item in new.items:
                self.items[item.key] = item

    async def items_of_products(self, product_ids: Iterable[str]) -> list[Item]:
        wanted = set(product_ids)
        return self._where(lambda i: i.product_id in wanted)

    async def items_of_offers(self, offer_ids: Iterable[str]) -> list[Item]:
        wanted = set(offer_ids)
        return self._where(lambda i: i.offer_id in wanted)

    async def items_of_creators(self, creator_ids: Sequence[str]) -> list[Item]:
        wanted = set(creator_ids)
        return self._where(lambda i: i.creator_id in wanted)

    async def items_matching_sources(self, sources: Sequence[Source]) -> list[Item]:
        return self._where(
            lambda i: any(
                i.source.kind == s.kind and s.platform in (None, i.source.platform) for s in sources
            )
        )

    async def creators_with_items(self) -> list[str]:
        return sorted({i.creator_id for i in self.items.values()})

    async def items_held_by(self, hold: str) -> list[Item]:
        return self._where(lambda i: hold in i.holds)

    async def save_item_changes(self, changes: Sequence[tuple[Item, Item]]) -> int:
        for _, after in changes:
            if after.key in self.items:
                self.items[after.key] = replace(after, position=self.items[after.key].position)
        return len(changes)

    async def load_products(self, ids: Iterable[str]) -> dict[str, Product]:
        return {i: self.products[i] for i in set(ids) if i in self.products}

    async def save_products(self, products: Iterable[Product]) -> None:
        self.products.update((p.product_id, p) for p in products)

    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        return {i: self.accounts[i] for i in set(ids) if i in self.accounts}

    async def save_accounts(self, accounts: Iterable[Account]) -> None:
        self.accounts.update((a.account_id, a) for a in accounts)

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return {i: self.offers[i] for i in set(ids) if i in self.offers}

    async def save_offers(self, offers: Iterable[Offer]) -> None:
        self.offers.update((o.offer_id, o) for o in offers)

    async def load_policies_in_force(self) -> list[Policy]:
        return [p for p, _ in self.policies.values() if p.in_force]

    async def load_policy(self, policy_id: str) -> tuple[Policy | None, Document]:
        policy, extra = self.policies.get(policy_id, (None, {}))
        return policy, dict(extra)

    async def save_policy(self, policy: Policy, **extra: Any) -> None:
        _, known = self.policies.get(policy.policy_id, (None, {}))
        self.policies[policy.policy_id] = (policy, {**known, **extra})
