"""The topic registry: every topic of the contract (docs/CONTRACT.md), its key and partitions.

Tansu does not auto-create topics and real Kafka is configured not to either, so topics are
created from this registry (``vitrine topics ensure``); partitions bound how far each
service's consumer group scales out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from vitrine.contract.events.base import EventData

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of the contract."""

    name: str
    key: str
    partitions: int
    producer: str
    description: str
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        """Where this topic's consumers dead-letter what they cannot process."""
        return self.name + DLQ_SUFFIX

    @property
    def types(self) -> dict[str, type[EventData]]:
        """Event types allowed on this topic, with their data models."""
        from vitrine.contract.events import EVENT_TYPES_BY_TOPIC

        return EVENT_TYPES_BY_TOPIC[self.name]


_RETAIN_FOREVER = {"retention.ms": "-1"}

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in [
        Topic("accounts.shops", "account_id", 6, "upstream", "Shops registered and closed"),
        Topic("merchants.products", "product_id", 12, "upstream", "Merchants' product commands"),
        Topic("review.manual", "product_id", 3, "upstream", "Manual review verdicts"),
        Topic("creators.showcase", "creator_id", 12, "upstream", "Creators' showcase requests"),
        Topic("merchants.offers", "offer_id", 6, "upstream", "Distribution offers by merchants"),
        Topic("creators.live", "creator_id", 12, "upstream", "Creators' live-room requests"),
        Topic("orders.lifecycle", "order_id", 12, "upstream", "Orders paid, completed, refunded"),
        Topic(
            "platform.policies",
            "policy_id",
            1,
            "upstream",
            "Policy announcements",
            _RETAIN_FOREVER,
        ),
        Topic("platform.actions", "product_id", 3, "upstream", "Platform delistings of products"),
        Topic("catalog.products", "product_id", 12, "catalog", "Product lifecycle"),
        Topic("review.decisions", "product_id", 12, "review", "Automated and manual verdicts"),
        Topic("showcase.items", "creator_id", 12, "showcase", "Showcase item changes"),
        Topic("live.rooms", "creator_id", 12, "live", "Live sessions and their carts"),
        Topic("distribution.offers", "offer_id", 6, "distribution", "Offer lifecycle"),
        Topic("distribution.commissions", "order_id", 12, "distribution", "Commission ledger"),
        Topic(
            "compliance.rulings",
            "policy_id",
            1,
            "compliance",
            "Policy rulings",
            _RETAIN_FOREVER,
        ),
        Topic("compliance.reports", "policy_id", 1, "showcase, live, distribution", "Enforcement"),
    ]
}


def topic(name: str) -> Topic:
    """The registry entry for ``name`` (KeyError names the unknown topic)."""
    return TOPICS[name]


def all_topic_names(include_dlq: bool = True) -> list[str]:
    """Every topic to create: the contract's and, for each, its ``.dlq``."""
    names = list(TOPICS)
    if include_dlq:
        names += [t.dlq for t in TOPICS.values()]
    return names


async def ensure_topics(
    bootstrap: str, *, replication: int = 1, client_args: dict[str, object] | None = None
) -> list[str]:
    """Create every missing topic of the registry (and its DLQ); returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_args or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted: list[NewTopic] = []
        for t in TOPICS.values():
            if t.name not in existing:
                wanted.append(NewTopic(t.name, t.partitions, replication, topic_configs=t.configs))
            if t.dlq not in existing:
                wanted.append(NewTopic(t.dlq, 1, replication))
        created: list[str] = []
        for new in wanted:  # one by one: a racing creator must not fail the others
            try:
                response = await admin.create_topics([new])
            except TopicAlreadyExistsError:
                continue
            # The answer carries an error code per topic instead of raising: a broker that
            # is still starting refuses some creations (found on Apache Kafka).
            for topic, code, *message in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    continue
                if code:
                    error = for_code(code)
                    detail = message[0] if message and message[0] else error.description
                    raise error(f"creating {topic}: {detail}")
                created.append(topic)
        return created
    finally:
        await admin.close()


async def wait_for_topics(
    bootstrap: str, *, timeout: float = 60.0, client_args: dict[str, object] | None = None
) -> None:
    """Until the broker's metadata shows every topic of the registry (and its DLQ) with all
    its partitions.

    Apache Kafka (KRaft) acknowledges a creation before every broker's metadata cache has it;
    a consumer that subscribes in between is assigned only what it saw and learns the rest at
    its next metadata refresh (``metadata.max.age.ms``, 5 minutes by default).
    """
    import asyncio
    import time

    wanted = {t.name: t.partitions for t in TOPICS.values()}
    wanted.update({t.dlq: 1 for t in TOPICS.values()})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_args or {}))
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(list(wanted))
            seen = {
                d["topic"]: len(d.get("partitions") or [])
                for d in described
                if not d.get("error_code")
            }
            missing = [n for n, p in wanted.items() if seen.get(n, 0) < p]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not in the broker's metadata: {missing[:5]}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
