"""Review's documents in MongoDB, loaded and saved in bulk.

- ``cases``: one per product (``_id`` = product id): last version seen, pending escalation.
- ``queue``: one per pending escalation (``_id`` = product id), what ``/queue`` lists; kept
  in step with ``cases`` in the same transaction.
- ``decisions``: the audit trail, insert-only (``_id`` = ``product_id:version:n``).
- ``titles``: the duplicate index (``_id`` = merchant id + normalised-title hash).
- ``held_verdicts``: reviewers' verdicts read before their escalation, waiting on
  ``catalog.products`` (``vitrine.runtime.held``), and its ``watermarks``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

from pymongo import ASCENDING, DeleteOne, InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from vitrine.contract.events import Reason
from vitrine.runtime import held
from vitrine.runtime.held import HeldInputs, InMemoryHeldInputs, MongoHeldInputs
from vitrine.runtime.messaging.inbox import APPLIED_FIELD
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document, find_in
from vitrine_review.domain import AuditEntry, Case, Escalation

CASES = "cases"
QUEUE = "queue"
DECISIONS = "decisions"
TITLES = "titles"
HELD_VERDICTS = "held_verdicts"
#: The topic whose event time ends a held verdict's wait.
REQUESTS = "catalog.products"


def _reasons_doc(reasons: Iterable[Reason]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json", exclude_none=True) for r in reasons]


def _reasons(docs: Iterable[dict[str, Any]]) -> tuple[Reason, ...]:
    return tuple(Reason.model_validate(d) for d in docs)


def to_case(doc: Document) -> Case:
    p = doc.get("pending")
    pending = (
        Escalation(
            version=p["version"],
            reasons=_reasons(p["reasons"]),
            escalated_at=p["escalated_at"],
            title=p.get("title"),
            title_key=p.get("title_key"),
        )
        if p
        else None
    )
    return Case(
        product_id=doc["_id"],
        merchant_id=doc["merchant_id"],
        last_version=doc["last_version"],
        pending=pending,
        entries=doc["entries"],
        title_key=doc.get("title_key"),
    )


def _pending_doc(e: Escalation) -> Document:
    return {
        "version": e.version,
        "reasons": _reasons_doc(e.reasons),
        "escalated_at": e.escalated_at,
        "title": e.title,
        "title_key": e.title_key,
    }


def to_document(c: Case) -> Document:
    return {
        "_id": c.product_id,
        "merchant_id": c.merchant_id,
        "last_version": c.last_version,
        "pending": _pending_doc(c.pending) if c.pending else None,
        "entries": c.entries,
        "title_key": c.title_key,
    }


def queue_document(c: Case) -> Document:
    """The ``/queue`` row of a case with a pending escalation."""
    assert c.pending is not None
    return {
        "_id": c.product_id,
        "product_id": c.product_id,
        "merchant_id": c.merchant_id,
        "version": c.pending.version,
        "reasons": _reasons_doc(c.pending.reasons),
        "escalated_at": c.pending.escalated_at,
        "title": c.pending.title,
    }


def audit_document(e: AuditEntry) -> Document:
    return {
        "_id": e.id,
        "product_id": e.product_id,
        "merchant_id": e.merchant_id,
        "version": e.version,
        "n": e.number,
        "outcome": e.outcome,
        "reasons": _reasons_doc(e.reasons),
        "decided_by": e.decided_by,
        "at": e.at,
        "cause_id": e.cause_id,
    }


async def load_cases(
    db: AsyncDatabase[Document], ids: Iterable[str], session: AsyncClientSession | None = None
) -> tuple[dict[str, Case], dict[str, list[str]]]:
    """The cases with these product ids that exist, and the events each has applied (one
    round trip; see ``vitrine.runtime.messaging.inbox.with_applied``)."""
    cases: dict[str, Case] = {}
    applied: dict[str, list[str]] = {}
    for doc in await find_in(db[CASES], ids, session):
        cases[doc["_id"]] = to_case(doc)
        applied[doc["_id"]] = doc.get(APPLIED_FIELD) or []
    return cases, applied


async def load_titles(
    db: AsyncDatabase[Document], keys: Iterable[str], session: AsyncClientSession | None = None
) -> dict[str, list[str]]:
    """Duplicate-index entries for these keys: key → product ids (one round trip)."""
    return {
        doc["_id"]: list(doc["product_ids"]) for doc in await find_in(db[TITLES], keys, session)
    }


async def save(
    db: AsyncDatabase[Document],
    cases: Iterable[Case],
    audit: list[AuditEntry],
    titles: dict[str, list[str]],
    session: AsyncClientSession | None = None,
    *,
    applied: dict[str, list[str]],
    queued: set[str],
    new_cases: frozenset[str] | set[str] = frozenset(),
    new_titles: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Write changed cases with the events they applied (and their queue rows: ``queued``
    are the cases in the queue before the batch), new audit entries and changed title keys:
    one bulk round trip per collection touched.

    ``new_cases``, ``new_titles``: case ids and title keys this transaction looked up and
    did not find. Those are inserted, and so are the audit entries of a new case (no case,
    no entries: cases are never deleted) — on nx-27017 an insert costs a third less than an
    upsert, which looks the document up again. One that appeared meanwhile (another replica)
    fails the insert and the batch is retried.
    """
    case_ops: list[InsertOne[Document] | ReplaceOne[Document]] = []
    queue_ops: list[ReplaceOne[Document] | DeleteOne] = []
    for c in cases:
        doc = {**to_document(c), APPLIED_FIELD: applied.get(c.product_id, [])}
        if c.product_id in new_cases:
            case_ops.append(InsertOne(doc))
        else:
            case_ops.append(ReplaceOne({"_id": c.product_id}, doc, upsert=True))
        if c.pending is not None:
            queue_ops.append(ReplaceOne({"_id": c.product_id}, queue_document(c), upsert=True))
        elif c.product_id in queued:  # only delete rows that exist: each is a write
            queue_ops.append(DeleteOne({"_id": c.product_id}))
    if case_ops:
        await db[CASES].bulk_write(case_ops, ordered=False, session=session)
    if queue_ops:
        await db[QUEUE].bulk_write(queue_ops, ordered=False, session=session)
    if audit:
        # Upserts for an existing case: an entry's id is fixed by the case it was cut from.
        audit_ops: list[InsertOne[Document] | ReplaceOne[Document]] = [
            InsertOne(audit_document(e))
            if e.product_id in new_cases
            else ReplaceOne({"_id": e.id}, audit_document(e), upsert=True)
            for e in audit
        ]
        await db[DECISIONS].bulk_write(audit_ops, ordered=False, session=session)
    title_ops: list[InsertOne[Document] | ReplaceOne[Document] | DeleteOne] = []
    for key, pids in titles.items():
        if pids:
            merchant = key.rsplit(":", 1)[0]
            doc = {"_id": key, "merchant_id": merchant, "product_ids": pids}
            if key in new_titles:
                title_ops.append(InsertOne(doc))
            else:
                title_ops.append(ReplaceOne({"_id": key}, doc, upsert=True))
        elif key not in new_titles:  # only delete what exists: each is a write
            title_ops.append(DeleteOne({"_id": key}))
    if title_ops:
        await db[TITLES].bulk_write(title_ops, ordered=False, session=session)


class Cases(Protocol):
    """What review's handlers need: cases (with the events each applied), the duplicate
    index, one bulk save of what a batch changed, and the verdicts held for escalations not
    consumed yet."""

    @property
    def held(self) -> HeldInputs:
        """The reviewers' verdicts held until their version is requested."""
        ...

    async def load_cases(
        self, ids: Iterable[str]
    ) -> tuple[dict[str, Case], dict[str, list[str]]]: ...

    async def load_titles(self, keys: Iterable[str]) -> dict[str, list[str]]: ...

    async def save(
        self,
        cases: Iterable[Case],
        audit: list[AuditEntry],
        titles: dict[str, list[str]],
        *,
        applied: dict[str, list[str]],
        queued: set[str],
    ) -> None: ...


class MongoCases:
    """:class:`Cases` in this batch's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.db, self.session = uow.db, uow.session
        self.held = MongoHeldInputs(uow.db, uow.session, collection=HELD_VERDICTS, awaits=REQUESTS)
        #: Case ids and title keys looked up in this transaction and not found.
        self._new_cases: set[str] = set()
        self._new_titles: set[str] = set()

    async def load_cases(self, ids: Iterable[str]) -> tuple[dict[str, Case], dict[str, list[str]]]:
        wanted = set(ids)
        cases, applied = await load_cases(self.db, wanted, self.session)
        self._new_cases |= wanted - cases.keys()
        return cases, applied

    async def load_titles(self, keys: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(keys)
        titles = await load_titles(self.db, wanted, self.session)
        self._new_titles |= wanted - titles.keys()
        return titles

    async def save(
        self,
        cases: Iterable[Case],
        audit: list[AuditEntry],
        titles: dict[str, list[str]],
        *,
        applied: dict[str, list[str]],
        queued: set[str],
    ) -> None:
        await save(
            self.db,
            cases,
            audit,
            titles,
            self.session,
            applied=applied,
            queued=queued,
            new_cases=self._new_cases,
            new_titles=self._new_titles,
        )
        self._new_cases.clear()  # saved: they exist now
        self._new_titles.clear()


class InMemoryCases:
    """:class:`Cases` in dicts, for handler tests (kept across batches like the database)."""

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.applied: dict[str, list[str]] = {}
        self.titles: dict[str, list[str]] = {}
        self.audit: dict[str, AuditEntry] = {}
        self.held: InMemoryHeldInputs = InMemoryHeldInputs()

    async def load_cases(self, ids: Iterable[str]) -> tuple[dict[str, Case], dict[str, list[str]]]:
        found = {i: self.cases[i] for i in set(ids) if i in self.cases}
        return found, {i: list(self.applied.get(i, [])) for i in found}

    async def load_titles(self, keys: Iterable[str]) -> dict[str, list[str]]:
        return {k: list(self.titles[k]) for k in set(keys) if k in self.titles}

    @property
    def queue(self) -> list[str]:
        """The products waiting for a reviewer (the ``queue`` collection)."""
        return sorted(pid for pid, c in self.cases.items() if c.pending is not None)

    async def save(
        self,
        cases: Iterable[Case],
        audit: list[AuditEntry],
        titles: dict[str, list[str]],
        *,
        applied: dict[str, list[str]],
        queued: set[str],
    ) -> None:
        for c in cases:
            self.cases[c.product_id] = c
            self.applied[c.product_id] = list(applied.get(c.product_id, []))
        self.audit.update((e.id, e) for e in audit)
        for key, pids in titles.items():
            if pids:
                self.titles[key] = list(pids)
            else:
                self.titles.pop(key, None)


async def setup(db: AsyncDatabase[Document]) -> None:
    """Every collection up front, and indexes for the read-only queries (the queue oldest
    first, a product's audit trail).

    Created here, outside any transaction, because on nx-27017 a transaction whose first
    command is a read of a collection that does not exist yet never starts: its writes are
    applied one by one and the commit fails ("No session specified").
    """
    existing = set(await db.list_collection_names())
    for name in (CASES, QUEUE, DECISIONS, TITLES):
        if name not in existing:
            with contextlib.suppress(CollectionInvalid, OperationFailure):  # a racing replica
                await db.create_collection(name)
    # Not (escalated_at, _id): nx-27017 then fails every upsert by _id ("JSON path error").
    await db[QUEUE].create_index("escalated_at")
    await db[DECISIONS].create_index([("product_id", ASCENDING), ("n", ASCENDING)])
    await held.setup(db, HELD_VERDICTS)
