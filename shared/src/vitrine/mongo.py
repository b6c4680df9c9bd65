"""MongoDB access through PyMongo's async API (``AsyncMongoClient``), one database per service.

Writes are journaled (j:true) and majority-acknowledged where the server supports it; state
changes and the events they cause are committed in one transaction (DESIGN.md §6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
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


def database(client: AsyncMongoClient[Document], name: str) -> AsyncDatabase[Document]:
    """This service's database with journaled writes."""
    return client.get_database(name, write_concern=JOURNALED)


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """True when the server answers (used by ``/readyz``)."""
    try:
        await client.admin.command("ping")
    except PyMongoError:
        return False
    return True
