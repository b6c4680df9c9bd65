"""A fetch that names every assigned partition may wait long; any other keeps Kafka's bound.

An idle consumer sends a fetch every ``fetch_max_wait_ms`` (Kafka's 500 ms) only to hear
"nothing new": eight services, sixteen fetches a second, each naming every partition
(aiokafka has no incremental fetch sessions), a third of an idle stack's CPU. The wait is
there as a latency bound for one case only: aiokafka keeps one fetch in flight per broker,
so a partition left out of it (its records were still being consumed when it was sent) is
not fetched again until it returns. When the fetch names *every* partition the consumer is
assigned on that broker, nothing waits behind it — the broker answers the moment a record
arrives on any of them — so it can wait ``idle_wait_ms`` instead.

What the long wait does cost: the connection carries one request at a time, so a metadata
refresh, or the first fetch after a rebalance, may queue behind it (up to ``idle_wait_ms``,
once); keep it a few seconds. aiokafka has no option for this; the fetcher's request
builder is wrapped (a test pins the internals it relies on).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

#: Marks a fetcher already seen, wrapped or not (the subscriber calls this on every poll,
#: and FastStream may hand it a new consumer).
_WRAPPED = "_vitrine_idle_wait_ms"


def wait_long_when_whole(consumer: Any, idle_wait_ms: int) -> None:
    """Make ``consumer``'s (aiokafka) fetches that name all its partitions wait ``idle_wait_ms``.

    Idempotent; does nothing before the consumer has started (no fetcher yet) or when
    ``idle_wait_ms`` is not longer than the consumer's own wait.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or getattr(fetcher, _WRAPPED, None) is not None:
        return
    setattr(fetcher, _WRAPPED, idle_wait_ms)
    if idle_wait_ms <= fetcher._fetch_max_wait_ms:
        return
    build = fetcher._get_actions_per_node

    def actions_per_node(assignment: Any) -> Any:
        requests, *rest = build(assignment)
        if requests:
            led = Counter(fetcher._select_read_replica(tp) for tp in assignment.tps)
            for node_id, request in requests:
                named = sum(len(partitions) for _, partitions in request.topics)
                if named == led[node_id]:
                    request._max_wait_ms = idle_wait_ms
        return (requests, *rest)

    fetcher._get_actions_per_node = actions_per_node
