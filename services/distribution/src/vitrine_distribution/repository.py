"""Distribution's MongoDB documents <-> domain objects; bulk loads and saves; indexes.

Collections (this service's own database):

- ``offers``    one per offer (``_id`` = offer_id): terms, rate history, status history, holds;
- ``products``  projection of ``catalog.products`` (``_id`` = product_id): owner, source, listed,
  and its last listing changes with their events' envelopes (a late offer follows them);
- ``accounts``  projection of ``accounts.shops`` (``_id`` = account_id): shops held;
- ``policies``  projection of ``compliance.rulings`` (``_id`` = policy_id): rules in force;
- ``orders``    one per order (``_id`` = order_id): the commission, its ledger entries and
  totals, and which input events it has applied with the events each produced (and, while it
  is held, the envelopes of the inputs waiting, to cause their events later). A creator's or
  merchant's ledger is the sum over their orders (exact by construction; see ``ledger``);
- ``waiting_offer_commands`` offer commands consumed before the product they name (one per
  command, ``_id`` = its dedupe key): applied, in order, when the product arrives;
- ``watermarks`` per input topic (``_id`` = topic), the latest event ``time`` consumed from it:
  the event-time clock that ends the wait of held orders (README "Event time").

Handlers reach all of it through the :class:`Store` protocol: :class:`MongoStore` (this
batch's transaction) in the service, :class:`InMemoryStore` in the handler tests.

Every write is keyed by ``_id`` (nx-27017 scans for any other update filter); reads by other
fields go through the indexes made in :func:`setup`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from pydantic import TypeAdapter
from pymongo import ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

from vitrine.contract.envelope import CloudEvent, Event
from vitrine.contract.events import EventData, Exemptions, Reason, Rule, Source
from vitrine.contract.policy_kernel import Account
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document, find_in
from vitrine.runtime.projection_documents import account_document, account_from_document
from vitrine_distribution.domain import (
    Entry,
    ListingChange,
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
WATERMARKS = "watermarks"
WAITING_OFFERS = "waiting_offer_commands"

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
    return {doc["_id"]: to_offer(doc) for doc in await find_in(db[OFFERS], ids, session)}


async def offers_for_products(
    db: Db, product_ids: Iterable[str], session: Session = None, *, live_only: bool = False
) -> dict[str, Offer]:
    """Every offer of these products (optionally only the ones not withdrawn)."""
    also = {"withdrawn": False} if live_only else None
    docs = await find_in(db[OFFERS], product_ids, session, field="product_id", also=also)
    return {doc["_id"]: to_offer(doc) for doc in docs}


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
        "source": _source_document(p.source),
        "version": p.version,
        # a list in event-time order (bounded: LISTING_HISTORY), each with its event's envelope
        "history": [
            {
                "at": c.at,
                "listed": c.listed,
                "source": _source_document(c.source),
                "version": c.version,
                "cause": envelope_document(c.cause),
            }
            for c in p.history
        ],
    }


def _source_document(source: Source | None) -> Document | None:
    return source.model_dump(mode="json", exclude_none=True) if source else None


def _to_source(doc: Document | None) -> Source | None:
    return Source.model_validate(doc) if doc else None


def to_product(doc: Document) -> ProductView:
    return ProductView(
        product_id=doc["_id"],
        merchant_id=doc["merchant_id"],
        listed=bool(doc["listed"]),
        source=_to_source(doc.get("source")),
        version=doc.get("version"),
        history=tuple(
            ListingChange(
                at=c["at"],
                listed=bool(c["listed"]),
                source=_to_source(c.get("source")),
                version=c.get("version"),
                cause=to_cause(c["cause"]),
            )
            for c in doc.get("history", [])
        ),
    )


async def load_products(
    db: Db, ids: Iterable[str], session: Session = None
) -> dict[str, ProductView]:
    return {doc["_id"]: to_product(doc) for doc in await find_in(db[PRODUCTS], ids, session)}


async def products_with_source_kinds(
    db: Db, kinds: Iterable[str], session: Session = None
) -> dict[str, ProductView]:
    docs = await find_in(db[PRODUCTS], kinds, session, field="source.kind")
    return {doc["_id"]: to_product(doc) for doc in docs}


async def save_products(db: Db, products: Iterable[ProductView], session: Session = None) -> None:
    ops = [ReplaceOne({"_id": p.product_id}, product_to_document(p), upsert=True) for p in products]
    if ops:
        await db[PRODUCTS].bulk_write(ops, ordered=False, session=session)


async def load_accounts(db: Db, ids: Iterable[str], session: Session = None) -> dict[str, Account]:
    """These accounts' open shops, as the policy kernel judges them (§5 ``require_shop`` and
    the ``service_provider_built`` exemption)."""
    docs = await find_in(db[ACCOUNTS], ids, session)
    return {doc["_id"]: account_from_document(doc) for doc in docs}


async def save_accounts(db: Db, accounts: Iterable[Account], session: Session = None) -> None:
    ops = [ReplaceOne({"_id": a.account_id}, account_document(a), upsert=True) for a in accounts]
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
    return {doc["_id"]: to_policy(doc) for doc in await find_in(db[POLICIES], ids, session)}


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
    #: dedupe key → envelope (no data) of an input whose events come later: the held
    #: ``order.paid`` and the completions/refunds waiting with it.
    causes: dict[str, Document] = field(default_factory=dict)
    #: The dedupe key of the ``order.paid`` held (its events come when it is judged).
    paid_key: str | None = None

    def outputs(self, key: str) -> list[Document] | None:
        for item in self.applied:
            if item["key"] == key:
                events: list[Document] = item["events"]
                return events
        return None

    def applying(
        self, key: str, order: Order, events: Iterable[EventData], cause: Event[Any] | None = None
    ) -> OrderRecord:
        """Record input ``key`` as applied with its events; keep its envelope as a later
        cause when the order still waits (``cause``)."""
        stored = [_stored(e) for e in events]
        causes = dict(self.causes)
        if cause is not None:
            causes[key] = cause_document(cause)
        return replace(
            self,
            order=order,
            applied=[*self.applied, {"key": key, "events": stored}],
            causes=causes,
        )

    def adding(self, key: str, order: Order, events: Iterable[EventData]) -> OrderRecord:
        """Events that input ``key`` (applied earlier, waiting) caused now: a redelivery of it
        re-emits them too."""
        stored = [_stored(e) for e in events]
        applied = [
            {**item, "events": [*item["events"], *stored]} if item["key"] == key else item
            for item in self.applied
        ]
        return replace(self, order=order, applied=applied)

    def cause(self, key: str) -> CloudEvent:
        """The input ``key`` as the cause of the events it produces now."""
        return to_cause(self.causes[key])


def _stored(e: EventData) -> Document:
    return {"model": type(e).__name__, "data": e.model_dump()}


def cause_document(event: Event[Any]) -> Document:
    """What output ids and causation need of an input event (its envelope without data)."""
    return envelope_document(event.envelope)


def envelope_document(envelope: CloudEvent) -> Document:
    """What output ids and causation need of an input's envelope (without its data)."""
    return envelope.model_dump(include={"source", "id", "subject", "type", "time"}) | {
        "correlationid": envelope.correlationid
    }


def to_cause(doc: Document) -> CloudEvent:
    return CloudEvent(specversion="1.0", **doc)


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
                "at": p.at,
                "refund_fen": p.refund_fen,
            }
            for p in o.pending
        ],
        "entries": [entry_to_document(e) for e in o.entries],
        "totals": o.totals.as_dict(),
        "reasons": [r.model_dump(mode="json", exclude_none=True) for r in o.reasons],
        "applied": record.applied,
        "causes": [{"key": k, "event": v} for k, v in record.causes.items()],
        "paid_key": record.paid_key,
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
                at=p.get("at") or p["received_at"],  # "received_at": before event time
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
    return {doc["_id"]: to_record(doc) for doc in await find_in(db[ORDERS], ids, session)}


def to_record(doc: Document) -> OrderRecord:
    # causes as a list: keys are dedupe keys, which may hold "." or "$" (no field names)
    causes = {c["key"]: c["event"] for c in doc.get("causes", [])}
    return OrderRecord(to_order(doc), list(doc.get("applied", [])), causes, doc.get("paid_key"))


async def held_orders(
    db: Db, offer_ids: Iterable[str], session: Session = None
) -> dict[str, OrderRecord]:
    """The held orders naming these offers."""
    docs = await find_in(db[ORDERS], offer_ids, session, field="offer_id", also={"status": "held"})
    return {doc["_id"]: to_record(doc) for doc in docs}


async def held_since(db: Db, before: datetime, session: Session = None) -> dict[str, OrderRecord]:
    """The held orders paid before ``before`` (their wait is over)."""
    query = {"status": "held", "paid_at": {"$lt": before}}
    return {doc["_id"]: to_record(doc) async for doc in db[ORDERS].find(query, session=session)}


def waiting_document(event: Event[Any], product_id: str, seq: int) -> Document:
    """An offer command kept until its product is known (envelope, data, arrival order)."""
    return {
        "_id": event.envelope.dedupe_key,
        "offer_id": event.subject,
        "product_id": product_id,
        "seq": seq,
        "time": event.time,
        "event": cause_document(event),
        "data": event.data.model_dump(mode="json"),
    }


def to_waiting(doc: Document) -> Event[Any]:
    """The offer command as the pipeline handed it over (same envelope: same output ids)."""
    from vitrine.contract.events import EVENT_TYPES_BY_TOPIC

    envelope = to_cause(doc["event"]).model_copy(update={"data": doc["data"]})
    model = EVENT_TYPES_BY_TOPIC["merchants.offers"][envelope.type]
    return Event(envelope, model.model_validate(doc["data"]))


async def load_watermark(db: Db, topic: str, session: Session = None) -> datetime | None:
    doc = await db[WATERMARKS].find_one({"_id": topic}, session=session)
    return doc["time"] if doc else None


async def save_watermark(db: Db, topic: str, time: datetime, session: Session = None) -> None:
    await db[WATERMARKS].replace_one(
        {"_id": topic}, {"_id": topic, "time": time}, upsert=True, session=session
    )


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


ALL_COLLECTIONS = (OFFERS, PRODUCTS, ACCOUNTS, POLICIES, ORDERS, WATERMARKS, WAITING_OFFERS)


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
    await db[ORDERS].create_index([("status", 1), ("offer_id", 1)])
    await db[ORDERS].create_index([("status", 1), ("paid_at", 1)])
    await db[WAITING_OFFERS].create_index("offer_id")
    await db[WAITING_OFFERS].create_index("product_id")
    await db[WAITING_OFFERS].create_index("time")
    await db[POLICIES].create_index("lifted")


# --- the store the handlers use ------------------------------------------------------------------


class Store(Protocol):
    """What distribution's handlers load and save (in bulk), whatever keeps it."""

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]: ...
    async def offers_for_products(
        self, product_ids: Iterable[str], *, live_only: bool = False
    ) -> dict[str, Offer]: ...
    async def live_offers(self) -> dict[str, Offer]: ...
    async def offers_held_by(self, hold: str) -> dict[str, Offer]: ...
    async def save_offers(self, offers: Iterable[Offer]) -> None: ...
    async def load_products(self, ids: Iterable[str]) -> dict[str, ProductView]: ...
    async def products_with_source_kinds(self, kinds: Iterable[str]) -> dict[str, ProductView]: ...
    async def save_products(self, products: Iterable[ProductView]) -> None: ...
    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]: ...
    async def save_accounts(self, accounts: Iterable[Account]) -> None: ...
    async def load_policies(self, ids: Iterable[str]) -> dict[str, PolicyView]: ...
    async def policies_in_force(self) -> list[PolicyView]: ...
    async def save_policy(self, policy: PolicyView, *, affected: int | None = None) -> None: ...
    async def load_orders(self, ids: Iterable[str]) -> dict[str, OrderRecord]: ...
    async def held_orders(self, offer_ids: Iterable[str]) -> dict[str, OrderRecord]: ...
    async def held_since(self, before: datetime) -> dict[str, OrderRecord]: ...
    async def save_orders(self, records: Iterable[OrderRecord]) -> None: ...
    async def load_watermark(self, topic: str) -> datetime | None: ...
    async def save_watermark(self, topic: str, time: datetime) -> None: ...
    async def waiting_offers(self, offer_ids: Iterable[str]) -> set[str]: ...
    async def waiting_for(self, product_ids: Iterable[str]) -> bool: ...
    async def keep_waiting(self, commands: list[Document]) -> None: ...
    async def release_waiting(
        self, product_ids: Iterable[str], before: datetime
    ) -> list[Event[Any]]: ...


class MongoStore:
    """:class:`Store` in this batch's MongoDB transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        return await load_offers(self.db, ids, self.session)

    async def offers_for_products(
        self, product_ids: Iterable[str], *, live_only: bool = False
    ) -> dict[str, Offer]:
        return await offers_for_products(self.db, product_ids, self.session, live_only=live_only)

    async def live_offers(self) -> dict[str, Offer]:
        return await live_offers(self.db, self.session)

    async def offers_held_by(self, hold: str) -> dict[str, Offer]:
        return await offers_held_by(self.db, hold, self.session)

    async def save_offers(self, offers: Iterable[Offer]) -> None:
        await save_offers(self.db, offers, self.session)

    async def load_products(self, ids: Iterable[str]) -> dict[str, ProductView]:
        return await load_products(self.db, ids, self.session)

    async def products_with_source_kinds(self, kinds: Iterable[str]) -> dict[str, ProductView]:
        return await products_with_source_kinds(self.db, kinds, self.session)

    async def save_products(self, products: Iterable[ProductView]) -> None:
        await save_products(self.db, products, self.session)

    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        return await load_accounts(self.db, ids, self.session)

    async def save_accounts(self, accounts: Iterable[Account]) -> None:
        await save_accounts(self.db, accounts, self.session)

    async def load_policies(self, ids: Iterable[str]) -> dict[str, PolicyView]:
        return await load_policies(self.db, ids, self.session)

    async def policies_in_force(self) -> list[PolicyView]:
        return await policies_in_force(self.db, self.session)

    async def save_policy(self, policy: PolicyView, *, affected: int | None = None) -> None:
        await save_policy(self.db, policy, self.session, affected=affected)

    async def load_orders(self, ids: Iterable[str]) -> dict[str, OrderRecord]:
        return await load_orders(self.db, ids, self.session)

    async def held_orders(self, offer_ids: Iterable[str]) -> dict[str, OrderRecord]:
        return await held_orders(self.db, offer_ids, self.session)

    async def held_since(self, before: datetime) -> dict[str, OrderRecord]:
        return await held_since(self.db, before, self.session)

    async def save_orders(self, records: Iterable[OrderRecord]) -> None:
        await save_orders(self.db, records, self.session)

    async def load_watermark(self, topic: str) -> datetime | None:
        return await load_watermark(self.db, topic, self.session)

    async def save_watermark(self, topic: str, time: datetime) -> None:
        await save_watermark(self.db, topic, time, self.session)

    async def waiting_offers(self, offer_ids: Iterable[str]) -> set[str]:
        docs = await find_in(
            self.db[WAITING_OFFERS],
            offer_ids,
            self.session,
            field="offer_id",
            projection={"offer_id": 1},
        )
        return {doc["offer_id"] for doc in docs}

    async def waiting_for(self, product_ids: Iterable[str]) -> bool:
        wanted = sorted(set(product_ids))
        if not wanted:  # no query: nx-27017 scans for an empty ``$in``
            return False
        query = {"product_id": {"$in": wanted}}
        return await self.db[WAITING_OFFERS].find_one(query, session=self.session) is not None

    async def keep_waiting(self, commands: list[Document]) -> None:
        if commands:
            await self.db[WAITING_OFFERS].insert_many(commands, session=self.session)

    async def release_waiting(
        self, product_ids: Iterable[str], before: datetime
    ) -> list[Event[Any]]:
        query = {
            "$or": [{"product_id": {"$in": sorted(set(product_ids))}}, {"time": {"$lt": before}}]
        }
        docs = await self.db[WAITING_OFFERS].find(query, session=self.session).to_list(None)
        offers = {d["offer_id"] for d in docs}  # all of an offer's commands go together
        docs = await find_in(self.db[WAITING_OFFERS], offers, self.session, field="offer_id")
        if docs:
            ids = [d["_id"] for d in docs]
            await self.db[WAITING_OFFERS].delete_many({"_id": {"$in": ids}}, session=self.session)
        return [to_waiting(d) for d in sorted(docs, key=lambda d: d["seq"])]


class InMemoryStore:
    """:class:`Store` in dicts, for handler tests (kept across batches like the database).

    Documents go through the same converters as MongoDB's, so what a test reads back is what
    the service would."""

    def __init__(self) -> None:
        self.offers: dict[str, Document] = {}
        self.products: dict[str, Document] = {}
        self.accounts: dict[str, Document] = {}
        self.policies: dict[str, Document] = {}
        self.orders: dict[str, Document] = {}
        self.watermarks: dict[str, datetime] = {}
        self.waiting: dict[str, Document] = {}

    def order(self, order_id: str) -> Order:
        return to_order(self.orders[order_id])

    def offer(self, offer_id: str) -> Offer:
        return to_offer(self.offers[offer_id])

    def _offers(self, keep: Any) -> dict[str, Offer]:
        return {i: to_offer(d) for i, d in sorted(self.offers.items()) if keep(d)}

    async def load_offers(self, ids: Iterable[str]) -> dict[str, Offer]:
        wanted = set(ids)
        return self._offers(lambda d: d["_id"] in wanted)

    async def offers_for_products(
        self, product_ids: Iterable[str], *, live_only: bool = False
    ) -> dict[str, Offer]:
        wanted = set(product_ids)
        return self._offers(
            lambda d: d["product_id"] in wanted and not (live_only and d["withdrawn"])
        )

    async def live_offers(self) -> dict[str, Offer]:
        return self._offers(lambda d: not d["withdrawn"])

    async def offers_held_by(self, hold: str) -> dict[str, Offer]:
        return self._offers(lambda d: hold in d["holds"])

    async def save_offers(self, offers: Iterable[Offer]) -> None:
        self.offers.update({o.offer_id: offer_to_document(o) for o in offers})

    async def load_products(self, ids: Iterable[str]) -> dict[str, ProductView]:
        return {i: to_product(self.products[i]) for i in set(ids) if i in self.products}

    async def products_with_source_kinds(self, kinds: Iterable[str]) -> dict[str, ProductView]:
        wanted = set(kinds)
        return {
            i: to_product(d)
            for i, d in self.products.items()
            if (d.get("source") or {}).get("kind") in wanted
        }

    async def save_products(self, products: Iterable[ProductView]) -> None:
        self.products.update({p.product_id: product_to_document(p) for p in products})

    async def load_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        return {i: account_from_document(self.accounts[i]) for i in set(ids) if i in self.accounts}

    async def save_accounts(self, accounts: Iterable[Account]) -> None:
        self.accounts.update({a.account_id: account_document(a) for a in accounts})

    async def load_policies(self, ids: Iterable[str]) -> dict[str, PolicyView]:
        return {i: to_policy(self.policies[i]) for i in set(ids) if i in self.policies}

    async def policies_in_force(self) -> list[PolicyView]:
        return [to_policy(d) for d in self.policies.values() if not d["lifted"]]

    async def save_policy(self, policy: PolicyView, *, affected: int | None = None) -> None:
        doc = policy_to_document(policy, affected)
        self.policies[policy.policy_id] = {**self.policies.get(policy.policy_id, {}), **doc}

    async def load_orders(self, ids: Iterable[str]) -> dict[str, OrderRecord]:
        return {i: to_record(self.orders[i]) for i in set(ids) if i in self.orders}

    async def held_orders(self, offer_ids: Iterable[str]) -> dict[str, OrderRecord]:
        wanted = set(offer_ids)
        return {
            i: to_record(d)
            for i, d in self.orders.items()
            if d["status"] == "held" and d["offer_id"] in wanted
        }

    async def held_since(self, before: datetime) -> dict[str, OrderRecord]:
        return {
            i: to_record(d)
            for i, d in self.orders.items()
            if d["status"] == "held" and d["paid_at"] < before
        }

    async def save_orders(self, records: Iterable[OrderRecord]) -> None:
        self.orders.update({r.order.order_id: order_to_document(r) for r in records})

    async def load_watermark(self, topic: str) -> datetime | None:
        return self.watermarks.get(topic)

    async def save_watermark(self, topic: str, time: datetime) -> None:
        self.watermarks[topic] = time

    async def waiting_offers(self, offer_ids: Iterable[str]) -> set[str]:
        wanted = set(offer_ids)
        return {d["offer_id"] for d in self.waiting.values() if d["offer_id"] in wanted}

    async def waiting_for(self, product_ids: Iterable[str]) -> bool:
        wanted = set(product_ids)
        return any(d["product_id"] in wanted for d in self.waiting.values())

    async def keep_waiting(self, commands: list[Document]) -> None:
        self.waiting.update({d["_id"]: d for d in commands})

    async def release_waiting(
        self, product_ids: Iterable[str], before: datetime
    ) -> list[Event[Any]]:
        wanted = set(product_ids)
        offers = {
            d["offer_id"]
            for d in self.waiting.values()
            if d["product_id"] in wanted or d["time"] < before
        }
        docs = [d for d in self.waiting.values() if d["offer_id"] in offers]
        for d in docs:
            del self.waiting[d["_id"]]
        return [to_waiting(d) for d in sorted(docs, key=lambda d: d["seq"])]
