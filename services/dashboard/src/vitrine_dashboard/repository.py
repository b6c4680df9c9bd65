"""Where the dashboard keeps its numbers: the :class:`Board` protocol the handlers use, MongoDB
and an in-memory twin for handler tests.

Collections (every hot document keyed by ``_id``; ids are contract ``Id``s, ``[A-Za-z0-9._:-]``,
and never become field names):

- ``minutes``: one document per scope, id and Asia/Shanghai minute,
  ``_id = "{scope}:{id}:{YYYYMMDDHHMM}"``, with ``scope``, ``key``, ``day`` (``YYYY-MM-DD``),
  ``minute`` (ISO time) and the figures, written with ``$inc`` upserts (one bulk per batch;
  deltas to the same bucket are summed first).
- ``totals``: one per scope and id, ``_id = "{scope}:{id}"``: lifetime figures (a live
  session's totals; whether an id is known at all) and ``last_minute``.
- ``session_products``: one per live session and product, ``_id = "{session}|{product}"``
  (``|`` is not an id character): the session's top products.
- ``orders``, ``sessions``, ``policies``: state documents loaded and replaced in bulk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document, find_in
from vitrine_dashboard.domain import (
    Delta,
    Figures,
    Order,
    Parked,
    Placement,
    Policy,
    Report,
    Sale,
    Scope,
    Session,
)

MINUTES = "minutes"
TOTALS = "totals"
SESSION_PRODUCTS = "session_products"
ORDERS = "orders"
SESSIONS = "sessions"
POLICIES = "policies"
COLLECTIONS = (MINUTES, TOTALS, SESSION_PRODUCTS, ORDERS, SESSIONS, POLICIES)
SALE_FIELDS = ("gmv_fen", "orders", "units", "refunds_fen")


def minute_id(scope: Scope | str, key: str, minute: datetime) -> str:
    return f"{scope}:{key}:{minute:%Y%m%d%H%M}"


def total_id(scope: Scope | str, key: str) -> str:
    return f"{scope}:{key}"


def sale_id(session_id: str, product_id: str) -> str:
    return f"{session_id}|{product_id}"


def _sum_deltas(deltas: Iterable[Delta]) -> dict[tuple[str, str, datetime], Figures]:
    summed: dict[tuple[str, str, datetime], Figures] = defaultdict(Figures)
    for d in deltas:
        summed[d.scope, d.key, d.minute] = summed[d.scope, d.key, d.minute] + d.figures
    return summed


def _sum_sales(sales: Iterable[Sale]) -> dict[tuple[str, str], dict[str, int]]:
    summed: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(SALE_FIELDS, 0)
    )
    for s in sales:
        row = summed[s.session_id, s.product_id]
        for name in SALE_FIELDS:
            row[name] += getattr(s, name)
    return summed


# --- documents <-> domain ----------------------------------------------------------------------


def order_to_document(o: Order) -> Document:
    return {
        "_id": o.order_id,
        "placement": asdict(o.placement) if o.placement else None,
        "paid_at": o.paid_at,
        "amount_fen": o.amount_fen,
        "refunded_fen": o.refunded_fen,
        "commission_fen": o.commission_fen,
        "parked": [
            {"at": p.at, "figures": asdict(p.figures), "placement_only": p.placement_only}
            for p in o.parked
        ],
    }


def to_order(doc: Document) -> Order:
    placement = doc.get("placement")
    return Order(
        order_id=doc["_id"],
        placement=Placement(**placement) if placement else None,
        paid_at=_aware(doc.get("paid_at")),
        amount_fen=doc.get("amount_fen", 0),
        refunded_fen=doc.get("refunded_fen", 0),
        commission_fen=doc.get("commission_fen", 0),
        parked=tuple(
            Parked(_aware(p["at"]) or p["at"], Figures.of(p["figures"]), p["placement_only"])
            for p in doc.get("parked", [])
        ),
    )


def session_to_document(s: Session) -> Document:
    doc = asdict(s)
    doc["_id"] = doc.pop("session_id")
    return doc


def to_session(doc: Document) -> Session:
    return Session(
        session_id=doc["_id"],
        creator_id=doc["creator_id"],
        title=doc.get("title"),
        started_at=_aware(doc.get("started_at")),
        ended_at=_aware(doc.get("ended_at")),
        explaining=doc.get("explaining"),
        explaining_at=_aware(doc.get("explaining_at")),
    )


def policy_to_document(p: Policy) -> Document:
    return {
        "_id": p.policy_id,
        "stage": p.stage,
        "title": p.title,
        "effective_at": p.effective_at,
        "enforce_existing_at": p.enforce_existing_at,
        "surfaces": list(p.surfaces),
        "phase": p.phase,
        "impact": dict(p.impact),
        # A list of records, not a map keyed by service names from the data.
        "reports": [asdict(r) for r in p.reports],
        "completed_at": p.completed_at,
        "completed_counts": [{"service": k, "count": v} for k, v in p.completed_counts.items()],
        "lifted_at": p.lifted_at,
        "updated_at": p.updated_at,
    }


def to_policy(doc: Document) -> Policy:
    return Policy(
        policy_id=doc["_id"],
        stage=doc["stage"],
        title=doc.get("title"),
        effective_at=_aware(doc.get("effective_at")),
        enforce_existing_at=_aware(doc.get("enforce_existing_at")),
        surfaces=tuple(doc.get("surfaces") or ()),
        phase=doc.get("phase"),
        impact=dict(doc.get("impact") or {}),
        reports=tuple(
            Report(r["service"], r["phase"], r["affected"], _aware(r["at"]) or r["at"])
            for r in doc.get("reports") or ()
        ),
        completed_at=_aware(doc.get("completed_at")),
        completed_counts={c["service"]: c["count"] for c in doc.get("completed_counts") or ()},
        lifted_at=_aware(doc.get("lifted_at")),
        updated_at=_aware(doc.get("updated_at")),
    )


def _aware(value: Any) -> Any:
    """MongoDB gives naive UTC datetimes back: make them aware again."""
    from datetime import UTC

    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- the protocol ------------------------------------------------------------------------------


class Board(Protocol):
    """What the dashboard's handlers need: state in bulk, and figures to add in bulk."""

    async def load_orders(self, ids: Iterable[str]) -> dict[str, Order]: ...

    async def save_orders(self, orders: Iterable[Order]) -> None: ...

    async def add(self, deltas: Iterable[Delta], sales: Iterable[Sale]) -> None:
        """Add to the minute buckets, the totals and the sessions' product tallies."""
        ...

    async def load_sessions(self, ids: Iterable[str]) -> dict[str, Session]: ...

    async def save_sessions(self, sessions: Iterable[Session]) -> None: ...

    async def load_policies(self, ids: Iterable[str]) -> dict[str, Policy]: ...

    async def save_policies(self, policies: Iterable[Policy]) -> None: ...


class MongoBoard:
    """:class:`Board` in this batch's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session

    async def _load(self, name: str, ids: Iterable[str]) -> list[Document]:
        return await find_in(self.db[name], ids, self.session)

    async def _replace(self, name: str, docs: list[Document]) -> None:
        if docs:
            ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
            await self.db[name].bulk_write(ops, ordered=False, session=self.session)

    async def load_orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {d["_id"]: to_order(d) for d in await self._load(ORDERS, ids)}

    async def save_orders(self, orders: Iterable[Order]) -> None:
        await self._replace(ORDERS, [order_to_document(o) for o in orders])

    async def add(self, deltas: Iterable[Delta], sales: Iterable[Sale]) -> None:
        minute_ops: list[UpdateOne] = []
        lifetime: dict[tuple[str, str], Figures] = defaultdict(Figures)
        last: dict[tuple[str, str], datetime] = {}
        for (scope, key, minute), figures in _sum_deltas(deltas).items():
            inc = figures.nonzero()
            if not inc:
                continue
            minute_ops.append(
                UpdateOne(
                    {"_id": minute_id(scope, key, minute)},
                    {
                        "$inc": inc,
                        "$setOnInsert": {
                            "scope": scope,
                            "key": key,
                            "day": minute.date().isoformat(),
                            "minute": minute.isoformat(),
                        },
                    },
                    upsert=True,
                )
            )
            lifetime[scope, key] = lifetime[scope, key] + figures
            last[scope, key] = max(minute, last.get((scope, key), minute))
        total_ops = [
            UpdateOne(
                {"_id": total_id(scope, key)},
                {
                    "$inc": figures.nonzero() or {"orders": 0},
                    "$max": {"last_minute": last[scope, key].isoformat()},
                    "$setOnInsert": {"scope": scope, "key": key},
                },
                upsert=True,
            )
            for (scope, key), figures in lifetime.items()
        ]
        sale_ops = [
            UpdateOne(
                {"_id": sale_id(session_id, product_id)},
                {
                    "$inc": row,
                    "$setOnInsert": {"session_id": session_id, "product_id": product_id},
                },
                upsert=True,
            )
            for (session_id, product_id), row in _sum_sales(sales).items()
        ]
        for name, ops in ((MINUTES, minute_ops), (TOTALS, total_ops), (SESSION_PRODUCTS, sale_ops)):
            if ops:
                await self.db[name].bulk_write(ops, ordered=False, session=self.session)

    async def load_sessions(self, ids: Iterable[str]) -> dict[str, Session]:
        return {d["_id"]: to_session(d) for d in await self._load(SESSIONS, ids)}

    async def save_sessions(self, sessions: Iterable[Session]) -> None:
        await self._replace(SESSIONS, [session_to_document(s) for s in sessions])

    async def load_policies(self, ids: Iterable[str]) -> dict[str, Policy]:
        return {d["_id"]: to_policy(d) for d in await self._load(POLICIES, ids)}

    async def save_policies(self, policies: Iterable[Policy]) -> None:
        await self._replace(POLICIES, [policy_to_document(p) for p in policies])


class InMemoryBoard:
    """:class:`Board` in dicts, for handler tests (kept across batches like the database)."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.minutes: dict[tuple[str, str, datetime], Figures] = defaultdict(Figures)
        self.sales: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(SALE_FIELDS, 0)
        )
        self.sessions: dict[str, Session] = {}
        self.policies: dict[str, Policy] = {}

    async def load_orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {i: self.orders[i] for i in set(ids) if i in self.orders}

    async def save_orders(self, orders: Iterable[Order]) -> None:
        self.orders.update((o.order_id, o) for o in orders)

    async def add(self, deltas: Iterable[Delta], sales: Iterable[Sale]) -> None:
        for bucket, figures in _sum_deltas(deltas).items():
            self.minutes[bucket] = self.minutes[bucket] + figures
        for pair, row in _sum_sales(sales).items():
            for name, v in row.items():
                self.sales[pair][name] += v

    def day(self, scope: Scope, key: str, day: str) -> Figures:
        """A scope's figures for one Asia/Shanghai day (what the API answers)."""
        return sum(
            (
                f
                for (s, k, m), f in self.minutes.items()
                if (s, k, m.date().isoformat()) == (scope, key, day)
            ),
            Figures(),
        )

    def per_minute(self, scope: Scope, key: str) -> Mapping[datetime, Figures]:
        return {m: f for (s, k, m), f in sorted(self.minutes.items()) if (s, k) == (scope, key)}

    async def load_sessions(self, ids: Iterable[str]) -> dict[str, Session]:
        return {i: self.sessions[i] for i in set(ids) if i in self.sessions}

    async def save_sessions(self, sessions: Iterable[Session]) -> None:
        self.sessions.update((s.session_id, s) for s in sessions)

    async def load_policies(self, ids: Iterable[str]) -> dict[str, Policy]:
        return {i: self.policies[i] for i in set(ids) if i in self.policies}

    async def save_policies(self, policies: Iterable[Policy]) -> None:
        self.policies.update((p.policy_id, p) for p in policies)


async def setup(db: AsyncDatabase[Document]) -> None:
    """Create every collection a batch reads (nx-27017) and the indexes of the queries."""
    existing = set(await db.list_collection_names())
    for name in COLLECTIONS:
        if name not in existing:
            await db.create_collection(name)
    await db[MINUTES].create_index([("scope", ASCENDING), ("key", ASCENDING), ("day", ASCENDING)])
    await db[MINUTES].create_index(
        [("scope", ASCENDING), ("key", ASCENDING), ("minute", ASCENDING)]
    )
    await db[TOTALS].create_index([("scope", ASCENDING), ("last_minute", DESCENDING)])
    await db[SESSION_PRODUCTS].create_index([("session_id", ASCENDING), ("gmv_fen", DESCENDING)])
    await db[POLICIES].create_index([("updated_at", DESCENDING)])
