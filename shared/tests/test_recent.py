"""The documents a process wrote last (``vitrine.runtime.recent``): kept as BSON, bounded by
bytes, least recently used out first."""

from __future__ import annotations

from typing import Any

import bson
from bson.codec_options import CodecOptions

from vitrine.runtime.recent import ENTRY_OVERHEAD, REV, RecentDocuments, new_rev

OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)


def doc(i: int, size: int = 400) -> dict[str, Any]:
    return {"_id": f"p-{i}", "pad": "x" * size, REV: new_rev()}


def written(*docs: dict[str, Any]) -> dict[str, bytes]:
    return {d["_id"]: bson.encode(d) for d in docs}


def test_a_kept_document_reads_back_equal_and_a_missing_one_is_absent() -> None:
    recent = RecentDocuments(1 << 20, service="t")
    one = doc(1)
    recent.put("db", written(one))
    assert recent.get("db", ["p-1", "p-2"], OPTIONS) == {"p-1": one}
    assert recent.get("other-db", ["p-1"], OPTIONS) == {}  # per database


def test_the_bound_is_bytes_and_the_least_recently_used_go_first() -> None:
    entry = len(bson.encode(doc(0))) + ENTRY_OVERHEAD
    recent = RecentDocuments(5 * entry, service="t")  # room for 5
    recent.put("db", written(*(doc(i) for i in range(5))))
    assert recent.get("db", ["p-0"], OPTIONS)  # used: now the most recent
    recent.put("db", written(doc(5), doc(6)))
    kept = recent.get("db", [f"p-{i}" for i in range(7)], OPTIONS)
    assert set(kept) == {"p-0", "p-3", "p-4", "p-5", "p-6"}


def test_a_rewrite_replaces_the_copy_and_forget_drops_it() -> None:
    recent = RecentDocuments(1 << 20, service="t")
    recent.put("db", written(doc(1)))
    newer = doc(1, size=10)
    recent.put("db", written(newer))
    assert len(recent) == 1 and recent.get("db", ["p-1"], OPTIONS)["p-1"] == newer
    recent.forget("db", ["p-1", "p-9"])
    assert len(recent) == 0 and recent.get("db", ["p-1"], OPTIONS) == {}


def test_no_room_keeps_nothing() -> None:
    recent = RecentDocuments(0, service="t")
    recent.put("db", written(doc(1)))
    assert len(recent) == 0


def test_revisions_are_random_not_counters() -> None:
    revs = {new_rev() for _ in range(1000)}
    assert len(revs) == 1000 and max(revs) > 1000


async def test_a_rebalance_forgets_every_copy_of_every_store() -> None:
    """Partitions moved: another replica may write what this process kept (revoked), or did
    while it owned them (assigned back)."""
    from aiokafka.structs import TopicPartition

    from vitrine.runtime.recent import ForgetOnRebalance

    stores = [RecentDocuments(1 << 20, service="t"), RecentDocuments(1 << 20, service="u")]
    listener = ForgetOnRebalance()
    for hook in (listener.on_partitions_revoked, listener.on_partitions_assigned):
        for store in stores:
            store.put("db", written(doc(1), doc(2)))
        await hook([TopicPartition("catalog.products", 0)])
        assert [len(s) for s in stores] == [0, 0]
        assert stores[0].get("db", ["p-1"], OPTIONS) == {}
