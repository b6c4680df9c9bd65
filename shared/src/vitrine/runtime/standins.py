"""What the embedded stand-ins need that production does not — one place per stand-in.

Vitrine is written for Apache Kafka and a MongoDB replica set. Where a stand-in of the
embedded stack behaves differently, the difference is compensated here and nowhere else, and
the compensation is switched on only for that stand-in (settings name it; the dev stack sets
them for the services it starts). With none named, every path is the plain production one.

Tansu (``VITRINE_KAFKA_STANDIN=tansu``):

- no idempotent producer (InitProducerId fails) → idempotence off;
- parks a fetch for its whole max wait even when data arrives → 20 ms fetch wait instead of
  Kafka's 500 ms default (Kafka answers a fetch as soon as data is there);
- ListOffsets "latest" answers the base offset of the last batch + 1 → the CLI reads the high
  watermark from a fetch instead (``vitrine.tools.cli._kafka.end_offsets``).

nx-27017 (detected from the server itself, see :class:`DatabaseProfile`): an orphaned
transaction survives its client, and a transaction must begin with a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KafkaStandin = Literal["none", "tansu"]


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    """How the clients talk to this broker."""

    name: str
    #: The idempotent producer (no duplicates from producer retries).
    idempotent_producer: bool
    #: How long a consumer fetch may wait for data.
    fetch_max_wait_ms: int
    #: How long a fetch naming every assigned partition may wait (nothing queues behind it:
    #: ``vitrine.runtime.messaging.fetch_wait``); Tansu parks every fetch for its whole wait.
    idle_fetch_wait_ms: int
    #: How long a poll that returned prefetched records looks once more for those behind them
    #: (``vitrine.runtime.messaging.subscriber``); 0 on Tansu, whose parked fetch can't be back
    #: that soon.
    poll_gather_ms: int
    #: ListOffsets "latest" gives the partition's end (the CLI trusts it).
    list_offsets_exact: bool


APACHE_KAFKA = BrokerProfile(
    "kafka",
    idempotent_producer=True,
    fetch_max_wait_ms=500,
    idle_fetch_wait_ms=3000,
    poll_gather_ms=5,
    list_offsets_exact=True,
)
TANSU = BrokerProfile(
    "tansu",
    idempotent_producer=False,
    fetch_max_wait_ms=20,
    idle_fetch_wait_ms=20,
    poll_gather_ms=0,
    list_offsets_exact=False,
)


def broker_profile(standin: KafkaStandin) -> BrokerProfile:
    """The broker profile for the stand-in named in settings (``none`` = production)."""
    return TANSU if standin == "tansu" else APACHE_KAFKA


# --- the database ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseProfile:
    """What transactions need on this MongoDB server (``TransactionGuard`` reads it).

    nx-27017 (detected: ``buildInfo.process == "nx_27017"``) runs every session of a database
    on one SQLite connection, so:

    - a transaction left open by a killed client is committed by the next commit → the guard
      journals its open session id and ends that session at restart (rolls it back);
    - it does not start a transaction whose first command reads a missing collection → the
      guard begins each transaction with a read of a collection that exists.

    A MongoDB replica set aborts a dead client's transaction by itself and starts
    transactions on any command: neither compensation runs there.
    """

    name: str
    journal_open_sessions: bool
    begin_with_read: bool


#: What nx-27017 answers when two processes' transactions on one database interleave (they
#: share its SQLite connection: one's commit releases the other's savepoint). It is that
#: server's write conflict — mongod's is code 112, ``TransientTransactionError`` — so it is
#: waited out and retried like one (``mongo.is_transient``), not dead-lettered after the
#: handler's few retries. Seen only with two replicas of a service on one nx-27017
#: (``tests/faults/test_replicas.py``).
NX_27017_CONFLICT = "no such savepoint"


MONGOD = DatabaseProfile("mongod", journal_open_sessions=False, begin_with_read=False)
NX_27017 = DatabaseProfile("nx-27017", journal_open_sessions=True, begin_with_read=True)


def database_profile(build_info: dict[str, object]) -> DatabaseProfile:
    """The profile for the server that answered ``buildInfo`` with ``build_info``."""
    return NX_27017 if build_info.get("process") == "nx_27017" else MONGOD
