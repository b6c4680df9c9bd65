"""Distribution's MongoDB documents <-> domain objects; bulk loads and saves; indexes.

Collections (this service's own database):

- ``offers``    one per offer (``_id`` = offer_id): terms, rate history, status history, holds;
- ``products``  projection of ``catalog.products`` (``_id`` = product_id): owner, source, listed;
- ``accounts``  projection of ``accounts.shops`` (``_id`` = account_id): shops held;
- ``policies``  projection of ``compliance.rulings`` (``_id`` = policy_id): rules in force;
- ``orders``    one per order (``_id`` = order_id): the commission, its ledger entries and
  totals, and which input events it has applied with the events each produced. A creator's or
  merchant's ledger is the sum over their orders (exact by construction; see ``ledger``).

Every write is keyed by ``_id`` (nx-27017 scans for any other update filter); reads by other
fields go through the indexes made in :func:`setup`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from pymongo import ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

from vitrine.contract.events import EventData, Exemptions, Reason, Rule, Source
from vitrine.contract.policy_kernel import Account, Shop
from vitrine.runtime.mongo import Document
from vitrine_distribution.domain import (
    Entry,
    Offer,
    Order,
    Pending,
    PolicyView,
    ProductView,
    RateEntry,
    StatusChange,
    TermsChange,
    Totals,
)
from vitrine_distribution.domain.commissions import output_models

OFFERS = "offers"
PRODUCTS = "products"
ACCOUNTS = "accounts"
POLICIES = "policies"
ORDERS = "orders"

Session = AsyncClientSession | None
Db = AsyncDatabase[Document]
_RULE: TypeAdapter[Any] = TypeAdapter(Rule)


# --- offers --------------------------------------------------------------------------------------


def offer_to_document(o: Offer) -> Document:
    return {
        "_id": o.offer_id,
        "product_id": o.product_id,
        "merchant_id": o.merchant_id,
        "status": o.status,
        "plan": o.plan,
        "withdrawn": o.withdrawn,
        "holds": sorted(o.holds),
        "rates": [
            {
                "commission_bps": r.commission_bps,
                "effective_at": r.effective_at,
                "published_at": r.published_at,
                "superseded_at": r.superseded_at,
            }
            for r in o.rates
        ],
        "terms": [
            {"at": t.at, "plan": t.plan, "creator_ids": list(t.creator_ids)} for t in o.terms
        ],
        "history": [
            {"at": h.at, "status": h.status, "reason": h.reason, "policy_id": h.policy_id}
            for h in o.history
        ],
    }


def to_offer(doc: Document) -> Offer:
    return Offer(
        offer_id=doc["_id"],
        product_id=doc["product_id"],
        merchant_id=doc["merchant_id"],
        rates=tuple(
            RateEntry(
                commission_bps=r["commission_bps"],
                effective_at=r["effective_at"],
                published_at=r["published_at"],
                superseded_at=r.get("superseded_at"),
            )
            for r in doc.get("rates", [])
        ),
        terms=tuple(
            TermsChange(at=t["at"], plan=t["plan"], creator_ids=tuple(t.get("creator_ids", [])))
            for t in doc.get("terms", [])
        ),
        history=tuple(
            StatusChange(
                at=h["at"], status=h["status"], reason=h.get("reason"), policy_id=h.get("policy_id")
            )
            for h in doc.get("history", [])
        ),
        holds=frozenset(doc.get("holds", [])),
        withdrawn=bool(doc.get("withdrawn", False)),
    )


async def load_offers(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Offer]:
    cursor = db[OFFERS].find({"_id": {"$in": sorted(set(ids))}}, session=session)
    return {doc["_id"]: to_offer(doc) async for doc in cursor}


async def offers_for_products(
    db: Db, product_ids: Iterable[str], session: Session = None, *, live_only: bool = False
) -> dict[str, Offer]:
    """Every offer of these products (optionally only the ones not withdrawn)."""
    query: Document = {"product_id": {"$in": sorted(set(product_ids))}}
    if live_only:
        query["withdrawn"] = False
    cursor = db[OFFERS].find(query, session=session)
    return {doc["_id"]: to_offer(doc) async for doc in cursor}


async def live_offers(db: Db, session: Session = None) -> dict[str, Offer]:
    """Every offer not withdrawn (a ``require_shop`` sweep judges every merchant's offers)."""
    cursor = db[OFFERS].find({"withdrawn": False}, session=session)
    return {doc["_id"]: to_offer(doc) async for doc in cursor}


async def offers_held_by(db: Db, hold: str, session: Session = None) -> dict[str, Offer]:
    # {"holds": {"$in": [...]}}, not {"holds": hold}: on nx-27017 an equality match on an
    # indexed array field finds nothing (measured with nx-27017 0.8.1); $in matches correctly
    cursor = db[OFFERS].find({"holds": {"$in": [hold]}}, session=session)
    return {doc["_id"]: to_offer(doc) async for doc in cursor}


async def save_offers(db: Db, offers: Iterable[Offer], session: Session = None) -> None:
    ops = [ReplaceOne({"_id": o.offer_id}, offer_to_document(o), upsert=True) for o in offers]
    if ops:
        await db[OFFERS].bulk_write(ops, ordered=False, session=session)


# --- products, accounts, policies ----------------------------------------------------------------


def product_to_document(p: ProductView) -> Document:
    return {
        "_id": p.product_id,
        "merchant_id": p.merchant_id,
        "listed": p.listed,
        "source": p.source.model_dump(mode="json", exclude_none=True) if p.source else None,
        "version": p.version,
    }


def to_product(doc: Document) -> ProductView:
    source = doc.get("source")
    return ProductView(
        product_id=doc["_id"],
        merchant_id=doc["merchant_id"],
        listed=bool(doc["listed"]),
        source=Source.model_validate(source) if source else None,
        version=doc.get("version"),
    )


async def load_products(
    db: Db, ids: Iterable[str], session: Session = None
) -> dict[str, ProductView]:
    cursor = db[PRODUCTS].find({"_id": {"$in": sorted(set(ids))}}, session=session)
    return {doc["_id"]: to_product(doc) async for doc in cursor}


async def products_with_source_kinds(
    db: Db, kinds: Iterable[str], session: Session = None
) -> dict[str, ProductView]:
    cursor = db[PRODUCTS].find({"source.kind": {"$in": sorted(set(kinds))}}, session=session)
    return {doc["_id"]: to_product(doc) async for doc in cursor}


async def save_products(db: Db, products: Iterable[ProductView], session: Session = None) -> None:
    ops = [ReplaceOne({"_id": p.product_id}, product_to_document(p), upsert=True) for p in products]
    if ops:
        await db[PRODUCTS].bulk_write(ops, ordered=False, session=session)


async def load_accounts(
    db: Db, ids: Iterable[str], session: Session = None
) -> dict[str, dict[str, Document]]:
    """account_id → {shop_id: shop} for the accounts that hold shops."""
    cursor = db[ACCOUNTS].find({"_id": {"$in": sorted(set(ids))}}, session=session)
    return {
        doc["_id"]: {shop["shop_id"]: shop for shop in doc.get("shops", [])} async for doc in cursor
    }


async def merchant_accounts(
    db: Db, account_ids: Iterable[str], session: Session = None
) -> dict[str, Account]:
    """These accounts' open shops, as the policy kernel judges them (§5 ``require_shop`` and
    the ``service_provider_built`` exemption)."""
    accounts = await load_accounts(db, account_ids, session)
    return {
        account: Account(
            account,
            tuple(
                Shop(s["shop_id"], s["shop_kind"], bool(s.get("service_provider_built")))
                for s in shops.values()
            ),
        )
        for account, shops in accounts.items()
    }


async def save_accounts(
    db: Db, accounts: Mapping[str, Mapping[str, Document]], session: Session = None
) -> None:
    ops = [
        # a list, not a dict keyed by shop id: ids may contain "." (a path to MongoDB)
        ReplaceOne({"_id": account}, {"_id": account, "shops": list(shops.values())}, upsert=True)
        for account, shops in accounts.items()
    ]
    if ops:
        await db[ACCOUNTS].bulk_write(ops, ordered=False, session=session)


def policy_to_document(p: PolicyView, affected: int | None = None) -> Document:
    doc: Document = {
        "_id": p.policy_id,
        "phase": p.phase,
        "rules": [rule.model_dump(mode="json", exclude_none=True) for rule in p.rules],
        "exemptions": p.exemptions.model_dump(mode="json"),
        "lifted": p.lifted,
    }
    if affected is not None:
        doc["affected"] = affected
    return doc


def to_policy(doc: Document) -> PolicyView:
    return PolicyView(
        policy_id=doc["_id"],
        phase=doc["phase"],
        rules=tuple(_RULE.validate_python(r) for r in doc.get("rules", [])),
        exemptions=Exemptions.model_validate(doc.get("exemptions") or {}),
        lifted=bool(doc.get("lifted", False)),
    )


async def load_policies(
    db: Db, ids: Iterable[str], session: Session = None
) -> dict[str, PolicyView]:
    cursor = db[POLICIES].find({"_id": {"$in": sorted(set(ids))}}, session=session)
    return {doc["_id"]: to_policy(doc) async for doc in cursor}


async def policies_in_force(db: Db, session: Session = None) -> list[PolicyView]:
    cursor = db[POLICIES].find({"lifted": False}, session=session)
    return [to_policy(doc) async for doc in cursor]


async def save_policy(
    db: Db, policy: PolicyView, session: Session = None, *, affected: int | None = None
) -> None:
    doc = policy_to_document(policy, affected)
    del doc["_id"]
    await db[POLICIES].update_one(
        {"_id": policy.policy_id}, {"$set": doc}, upsert=True, session=session
    )


# --- orders and ledgers --------------------------------------------------------------------------


@dataclass
class OrderRecord:
    """An order and the input events folded into it (dedupe key → the events it produced).

    Kept in the order's own document, so "this event is applied" and its effects are written
    by ONE document write: a redelivery finds its key and re-emits the same events (same ids)
    instead of applying it again — even where the store does not isolate transactions (on
    nx-27017 a client killed mid-transaction leaves its uncommitted writes visible).
    """

    order: Order
    applied: list[Document] = field(default_factory=list)

    def outputs(self, key: str) -> list[Document] | None:
        for item in self.applied:
            if item["key"] == key:
                events: list[Document] = item["events"]
                return events
        return None

    def applying(self, key: str, order: Order, events: Iterable[EventData]) -> OrderRecord:
        stored = [{"model": type(e).__name__, "data": e.model_dump()} for e in events]
        return OrderRecord(order, [*self.applied, {"key": key, "events": stored}])


_OUTPUT_MODELS = output_models()


def rebuild(stored: Document) -> EventData:
    """An output event exactly as it was first emitted (from :meth:`OrderRecord.applying`)."""
    return _OUTPUT_MODELS[stored["model"]].model_validate(stored["data"])


def order_to_document(record: OrderRecord) -> Document:
    o = record.order
    return {
        "_id": o.order_id,
        "status": o.status,
        "product_id": o.product_id,
        "merchant_id": o.merchant_id,
        "creator_id": o.creator_id,
        "offer_id": o.offer_id,
        "amount_fen": o.amount_fen,
        "paid_at": o.paid_at,
        "commission_bps": o.commission_bps,
        "commission_fen": o.commission_fen,
        "refunded_fen": o.refunded_fen,
        "completed": o.completed,
        "pending": [
            {
                "kind": p.kind,
                "event_id": p.event_id,
                "received_at": p.received_at,
                "refund_fen": p.refund_fen,
            }
            for p in o.pending
        ],
        "entries": [entry_to_document(e) for e in o.entries],
        "totals": o.totals.as_dict(),
        "reasons": [r.model_dump(mode="json", exclude_none=True) for r in o.reasons],
        "applied": record.applied,
    }


def entry_to_document(e: Entry) -> Document:
    return {
        "seq": e.seq,
        "kind": e.kind,
        "amount_fen": e.amount_fen,
        "delta_fen": e.delta_fen,
        "commission_fen": e.commission_fen,
        "at": e.at,
        "refund_fen": e.refund_fen,
    }


def to_order(doc: Document) -> Order:
    return Order(
        order_id=doc["_id"],
        status=doc["status"],
        product_id=doc.get("product_id"),
        merchant_id=doc.get("merchant_id"),
        creator_id=doc.get("creator_id"),
        offer_id=doc.get("offer_id"),
        amount_fen=doc.get("amount_fen", 0),
        paid_at=doc.get("paid_at"),
        commission_bps=doc.get("commission_bps", 0),
        commission_fen=doc.get("commission_fen", 0),
        refunded_fen=doc.get("refunded_fen", 0),
        completed=bool(doc.get("completed", False)),
        pending=tuple(
            Pending(
                kind=p["kind"],
                event_id=p["event_id"],
                received_at=p["received_at"],
                refund_fen=p.get("refund_fen", 0),
            )
            for p in doc.get("pending", [])
        ),
        entries=tuple(
            Entry(
                seq=e["seq"],
                kind=e["kind"],
                amount_fen=e["amount_fen"],
                commission_fen=e["commission_fen"],
                at=e["at"],
                refund_fen=e.get("refund_fen"),
            )
            for e in doc.get("entries", [])
        ),
        reasons=tuple(Reason.model_validate(r) for r in doc.get("reasons", [])),
    )


async def load_orders(
    db: Db, ids: Iterable[str], session: Session = None
) -> dict[str, OrderRecord]:
    cursor = db[ORDERS].find({"_id": {"$in": sorted(set(ids))}}, session=session)
    return {
        doc["_id"]: OrderRecord(to_order(doc), list(doc.get("applied", []))) async for doc in cursor
    }


async def save_orders(db: Db, records: Iterable[OrderRecord], session: Session = None) -> None:
    ops = [
        ReplaceOne({"_id": r.order.order_id}, order_to_document(r), upsert=True) for r in records
    ]
    if ops:
        await db[ORDERS].bulk_write(ops, ordered=False, session=session)


_ACCRUED = frozenset({"accrued", "settled", "cancelled"})


@dataclass(frozen=True)
class Ledger:
    """A creator's or merchant's totals: the sum over their orders' ledger entries."""

    totals: Totals
    accruals: int
    refusals: int
    orders: int


async def ledger(db: Db, owner_field: str, owner_id: str) -> Ledger:
    """Sum the stored per-order totals of every order of ``owner_field == owner_id``.

    Derived on read rather than ``$inc``-ed into a separate document, so it can never drift
    from the entries (one index scan over the owner's orders, projecting only the totals).
    """
    totals, accruals, refusals, orders = Totals(), 0, 0, 0
    cursor = db[ORDERS].find({owner_field: owner_id}, projection={"totals": 1, "status": 1})
    async for doc in cursor:
        orders += 1
        t = doc.get("totals") or {}
        totals = totals + Totals(**{k: int(t.get(k, 0)) for k in Totals().as_dict()})
        accruals += doc.get("status") in _ACCRUED  # each of these has exactly one accrual
        refusals += doc.get("status") == "refused"
    return Ledger(totals, accruals, refusals, orders)


ALL_COLLECTIONS = (OFFERS, PRODUCTS, ACCOUNTS, POLICIES, ORDERS)


async def setup(db: Db) -> None:
    """Create every collection up front, then the indexes for the bulk paths (offers of a
    product, held by a policy, products of a source) and the read-only queries.

    Collections are created here, outside any transaction, because on nx-27017 a transaction
    whose first command is a ``find`` on a collection that does not exist yet is never started:
    the writes after it autocommit and ``commitTransaction`` fails ("No session specified").
    """
    existing = set(await db.list_collection_names())
    for name in ALL_COLLECTIONS:
        if name not in existing:
            with contextlib.suppress(CollectionInvalid):  # created concurrently elsewhere
                await db.create_collection(name)
    await db[OFFERS].create_index("product_id")
    await db[OFFERS].create_index("holds")
    await db[OFFERS].create_index("merchant_id")
    await db[PRODUCTS].create_index("source.kind")
    await db[ORDERS].create_index("creator_id")
    await db[ORDERS].create_index("merchant_id")
    await db[POLICIES].create_index("lifted")
