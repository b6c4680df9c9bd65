"""MongoDB access through PyMongo's async API (``AsyncMongoClient``), one database per service.

Writes are journaled (j:true) and majority-acknowledged where the server supports it; state
changes and the events they cause are committed in one transaction (DESIGN.md §6).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from vitrine.runtime.standins import NX_27017, NX_27017_CONFLICT, DatabaseProfile, database_profile

Document = dict[str, Any]
T = TypeVar("T")

#: j:true because nx-27017 lost acknowledged w:1 writes on kill -9 without it.
JOURNALED = WriteConcern(w=1, j=True)


def connect(url: str, *, app_name: str, timeout_ms: int = 5000) -> AsyncMongoClient[Document]:
    """A client with short server-selection timeouts so outages surface as retryable errors."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        tz_aware=True,
    )


def is_transient(exc: BaseException) -> bool:
    """Errors worth waiting out: the database is down, failing over, or the txn must retry."""
    if isinstance(
        exc,
        (
            AutoReconnect,
            ConnectionFailure,
            NetworkTimeout,
            NotPrimaryError,
            ServerSelectionTimeoutError,
            WriteConcernError,
        ),
    ):
        return True
    if isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError")
        or exc.has_error_label("UnknownTransactionCommitResult")
    ):
        return True
    if isinstance(exc, OperationFailure) and NX_27017_CONFLICT in str(exc):
        return True  # nx-27017's write conflict (vitrine.runtime.standins)
    return isinstance(exc, OperationFailure) and exc.code in {
        6,
        7,
        89,
        91,
        189,
        262,
        9001,
        10107,
        11600,
        11602,
        13435,
        13436,
        112,
    }


@asynccontextmanager
async def transaction(
    client: AsyncMongoClient[Document],
) -> AsyncIterator[AsyncClientSession]:
    """One multi-document transaction (single database), committed on exit."""
    async with (
        client.start_session() as session,
        await session.start_transaction(write_concern=JOURNALED, read_concern=ReadConcern("local")),
    ):
        yield session


async def in_transaction(
    client: AsyncMongoClient[Document],
    work: Callable[[AsyncClientSession], Awaitable[T]],
) -> T:
    """Run ``work`` inside one transaction and return its result."""
    async with transaction(client) as session:
        return await work(session)


#: The server's default first batch of a find (MongoDB and nx-27017).
_FIRST_BATCH = 101


async def find_in(
    collection: AsyncCollection[Document],
    values: Iterable[Any],
    session: AsyncClientSession | None = None,
    *,
    field: str = "_id",
    also: Document | None = None,
    projection: Document | None = None,
) -> list[Document]:
    """The documents whose ``field`` is one of ``values`` (and that match ``also``), in one
    round trip — and none, without asking, for no values: nx-27017 answers an empty ``$in``
    by scanning the whole collection (docs/DECISIONS.md, nx-27017).

    One round trip also for more than 101 matches: a find's first reply holds 101 documents
    unless told otherwise, and every further 101 cost a ``getMore`` (a catalog batch of 490
    products was five round trips). The first reply is sized for one match per value (the
    server still caps a reply at 16 MiB; more matches come by ``getMore`` as usual)."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    query = {**(also or {}), field: {"$in": wanted}}
    cursor = collection.find(query, projection, session=session)
    return await cursor.batch_size(max(len(wanted), _FIRST_BATCH)).to_list(None)


def database(client: AsyncMongoClient[Document], name: str) -> AsyncDatabase[Document]:
    """This service's database with journaled writes."""
    return client.get_database(name, write_concern=JOURNALED)


async def ping(client: AsyncMongoClient[Document], timeout: float = 1.0) -> bool:
    """True when the server answers within ``timeout`` seconds (used by ``/readyz``).

    Bounded so a probe with a 1 s timeout gets a 503, not a timeout, while the database is
    down (server selection alone would wait 5 s).
    """
    import asyncio

    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout)
    except (PyMongoError, TimeoutError):
        return False
    return True


#: The journal's first bytes: a transaction of the session it names is open, or is not.
_OPEN, _DONE = b"open:", b"done:"


class TransactionGuard:
    """Keeps one service's transactions atomic on every server, including nx-27017.

    nx-27017 runs all sessions of a database on one SQLite connection: a transaction is
    not isolated from other operations, and a transaction left open by a killed process is
    committed by whoever commits next (measured: a kill -9 mid-transaction, then any later
    commit, made the partial writes permanent). So:

    - in a process, transactions and the outbox relay's reads/deletes take turns (``lock``);
      listeners registered with :meth:`after_commit` run after each commit, lock still held
      (the outbox hands what a transaction staged to the relay that way);
    - before a transaction begins, a small journal file says "open" with its session id, and
      "done" after it ends; after a restart, :meth:`recover` ends a session left "open",
      which makes nx-27017 roll the orphaned transaction back (``endSessions`` aborts a
      session's open transaction). The file stays open and only its first bytes are
      rewritten per transaction (the id only when the pooled session changes): 2 µs
      against 230 µs for writing the file whole, twice per transaction;
    - every transaction begins with a read of a collection that exists (nx-27017 does not
      start a transaction whose first command reads a missing collection).

    On a MongoDB replica set none of this is needed (the server aborts a dead client's
    transaction and isolates them): :meth:`recover` asks the server what it is
    (``vitrine.runtime.standins.DatabaseProfile``) and the journal and the begin-read run only
    on nx-27017. Until then the guard assumes the stand-in (the safe side). Write conflicts
    between replicas on mongod abort with ``TransientTransactionError``, which the pipeline
    retries like any transient fault.
    """

    BEGIN_COLLECTION = "inbox"

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db_name: str,
        state_dir: str | None = None,
        instance: str = "",
    ) -> None:
        import asyncio
        import hashlib
        import tempfile
        from pathlib import Path

        self.client = client
        self.db = database(client, db_name)
        self.lock = asyncio.Lock()
        addresses = ",".join(
            f"{h}:{p}" for h, p in client.topology_description.server_descriptions()
        )
        digest = hashlib.sha1(f"{addresses}/{db_name}".encode(), usedforsecurity=False).hexdigest()
        folder = Path(state_dir or Path(tempfile.gettempdir()) / "vitrine-txn")
        folder.mkdir(parents=True, exist_ok=True)
        # One journal per process: two replicas on one machine must not end each other's
        # sessions at restart.
        who = f"{db_name}-{instance}" if instance else db_name
        self.journal = folder / f"{who}-{digest[:12]}.lsid"
        self._journal_fd: int | None = None
        self._journaled = ""  # the session id the journal holds
        self._after_commit: list[Callable[[AsyncClientSession], None]] = []
        self.profile: DatabaseProfile = NX_27017

    def after_commit(self, listener: Callable[[AsyncClientSession], None]) -> None:
        """Call ``listener(session)`` after each transaction of this guard commits.

        It runs while the lock is still held, so nothing else touches the database between
        the commit and the listener; it must be quick and must not raise (the transaction is
        committed whatever happens to it). Never called for a transaction that aborted.
        """
        self._after_commit.append(listener)

    async def recover(self) -> bool:
        """End the session of a transaction a previous process left open; True if there was one."""
        from bson import Binary

        self.profile = database_profile(await self.client.admin.command("buildInfo"))
        if not self.profile.journal_open_sessions:
            self.journal.unlink(missing_ok=True)
            return False
        if not self.journal.exists():
            return False
        text = self.journal.read_text().strip()
        # "open:<id>" / "done:<id>"; a bare id (an earlier release's journal) was open.
        state, _, lsid = text.rpartition(":")
        orphan = bool(lsid) and state != "done"
        if orphan:
            await self.client.admin.command(
                {"endSessions": [{"id": Binary(bytes.fromhex(lsid), 4)}]}
            )
        self._close_journal()
        self.journal.unlink(missing_ok=True)
        return orphan

    def _journal_open(self, lsid: str) -> None:
        """Mark ``lsid``'s transaction open in the journal (before it begins)."""
        if self._journal_fd is None:
            self._journal_fd = os.open(self.journal, os.O_RDWR | os.O_CREAT, 0o600)
        if lsid != self._journaled:
            os.ftruncate(self._journal_fd, 0)
            os.pwrite(self._journal_fd, _OPEN + lsid.encode(), 0)
            self._journaled = lsid
        else:
            os.pwrite(self._journal_fd, _OPEN, 0)

    def _journal_done(self) -> None:
        if self._journal_fd is not None:
            os.pwrite(self._journal_fd, _DONE, 0)

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd, self._journaled = None, ""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncClientSession]:
        """One transaction, committed on exit, taking its turn with the relay."""
        journal = self.profile.journal_open_sessions
        async with self.lock, self.client.start_session() as session:
            if journal:
                self._journal_open(session.session_id["id"].hex())
            try:
                async with await session.start_transaction(
                    write_concern=JOURNALED, read_concern=ReadConcern("local")
                ):
                    if self.profile.begin_with_read:
                        await self.db[self.BEGIN_COLLECTION].find_one(
                            {"_id": "~transaction-begin"}, session=session
                        )
                    yield session
                    # Still open (not aborted by the body): leaving the block commits it.
                    committing = session.in_transaction
                if committing:
                    for listener in self._after_commit:
                        listener(session)
            finally:
                if journal:
                    self._journal_done()
