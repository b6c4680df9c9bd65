"""P2 enforcement: a policy whose ``enforce_existing`` suspends half of 100,000 showcase items.

The showcase database is seeded directly, in bulk, in the showcase service's document shape
(``vitrine_showcase.repository.item_document``): ``items`` over ``creators`` creators, every
other item from a ``wechat_mini_shop`` source. Then ``python -m vitrine_showcase`` starts (its
setup builds its indexes), and the probe publishes ``policy.in_force`` (phase
``enforce_existing``, ``disallow_source wechat_mini_shop`` on ``showcase``) on
``compliance.rulings`` as compliance would. Measured from that publish until
``enforcement.reported`` is read on ``compliance.reports``, and until the last
``showcase.item_suspended`` is read on ``showcase.items``.

Ceiling, on a copy of the same documents in another database of the same server: ONE raw
``update_many`` adding the hold to the matching items — by ``_id $in`` (what the service can
do, keyed by ``_id``) and by the ``source.kind`` filter (nx-27017 scans for it).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from benchmarks.common import (
    LOGS,
    Arrival,
    CpuMeter,
    Profiler,
    ServiceProcess,
    cloud_event,
    embedded_stack,
    log,
    producer,
    send_all,
    stack_pids,
    watching,
)
from benchmarks.report import Report
from vitrine.runtime import mongo
from vitrine.tools.devstack import Broker, EmbeddedStack

POLICY = "pol-bench-mini-shop"
HOLD_TARGET = 2.0
INSERT_CHUNK = 10_000


def item_docs(n: int, creators: int) -> list[dict[str, object]]:
    """Items in the showcase's shape; even-numbered ones come from a WeChat Mini Shop."""
    from vitrine.contract.events import Source
    from vitrine.contract.events.base import SourceKind
    from vitrine_showcase.domain import Item
    from vitrine_showcase.repository import item_document

    per = max(1, n // creators)
    docs = []
    for i in range(n):
        creator = f"cr-{i // per:06d}"
        kind: SourceKind = "wechat_mini_shop" if i % 2 == 0 else "channels_shop"
        item = Item(
            creator_id=creator,
            product_id=f"pr-{i:07d}",
            merchant_id=f"me-{i % 1000:04d}",
            source=Source(kind=kind),
            position=i % per,
            holds=frozenset(),
            offer_id=None,
        )
        docs.append(item_document(item))
    return docs


async def seed(url: str, db_name: str, docs: list[dict[str, object]]) -> float:
    client = mongo.connect(url, app_name="bench-seed")
    try:
        coll = mongo.database(client, db_name)["items"]
        started = time.perf_counter()
        for i in range(0, len(docs), INSERT_CHUNK):
            async with mongo.transaction(client) as session:
                await coll.insert_many(docs[i : i + INSERT_CHUNK], session=session)
        return time.perf_counter() - started
    finally:
        await client.close()


async def ceiling(url: str, db_name: str, ids: list[str]) -> dict[str, float]:
    """One raw update_many over the same documents, two ways."""
    client = mongo.connect(url, app_name="bench-ceiling")
    out: dict[str, float] = {}
    try:
        coll = mongo.database(client, db_name)["items"]
        started = time.perf_counter()
        res = await coll.update_many(
            {"_id": {"$in": ids}}, {"$addToSet": {"holds": "policy:ceiling-a"}}
        )
        out["update_many by _id $in"] = time.perf_counter() - started
        assert res.modified_count == len(ids), res.modified_count
        started = time.perf_counter()
        res = await coll.update_many(
            {"source.kind": "wechat_mini_shop"}, {"$addToSet": {"holds": "policy:ceiling-b"}}
        )
        out["update_many by source.kind"] = time.perf_counter() - started
        assert res.modified_count == len(ids), res.modified_count
        started = time.perf_counter()
        async with mongo.transaction(client) as session:
            res = await coll.update_many(
                {"_id": {"$in": ids}}, {"$addToSet": {"holds": "policy:ceiling-c"}}, session=session
            )
        out["update_many by _id $in, in one transaction"] = time.perf_counter() - started
        assert res.modified_count == len(ids), res.modified_count
        return out
    finally:
        await client.close()


def in_force() -> bytes:
    now = datetime.now(UTC).isoformat()
    return cloud_event(
        "policy.in_force",
        POLICY,
        {
            "policy_id": POLICY,
            "phase": "enforce_existing",
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["showcase"],
                    "sources": [{"kind": "wechat_mini_shop"}],
                }
            ],
            "exemptions": {"merchant_ids": [], "service_provider_built": True},
            "effective_at": now,
            "enforce_existing_at": now,
        },
        source="/vitrine/compliance",
        id=f"{POLICY}:enforce_existing",
    )


async def system(stack: EmbeddedStack, docs_n: int, report: Report) -> dict[str, float]:
    suspended: list[float] = []
    reported: list[float] = []

    def on_record(a: Arrival) -> None:
        if a.type == "showcase.item_suspended":
            suspended.append(a.at)
        elif a.type == "enforcement.reported" and a.key == POLICY:
            reported.append(a.at)

    # INFO: one input event only, and showcase logs its enforcement timings (find/stage/update).
    logs = LOGS / "p2" / (stack.broker or "default")
    svc = ServiceProcess.of(stack, "showcase", logs, log_level="INFO")
    svc.start()
    try:
        log("P2 waiting for showcase (setup builds indexes over the seeded items)")
        await svc.wait_ready(timeout=600)
        pids = {"showcase": svc.pid, **stack_pids(stack)}
        prod = producer(stack.kafka_bootstrap)
        await prod.start()
        try:
            async with watching(
                stack.kafka_bootstrap, ["showcase.items", "compliance.reports"], on_record
            ) as w:
                await asyncio.sleep(1.0)  # the watcher reached the (empty) ends of its topics
                meter = CpuMeter(pids).start()
                profiler = Profiler("p2", pids).start()
                t0 = time.perf_counter()
                await send_all(prod, "compliance.rulings", [(POLICY.encode(), in_force())])
                want = docs_n // 2
                await w.wait(lambda: bool(reported), 900, "enforcement.reported")
                await w.wait(lambda: len(suspended) >= want, 900, f"{want} item_suspended")
                meter.stop()
                profiler.stop()
        finally:
            await prod.stop()
        peak = svc.peak_rss_mb() or 0.0
    finally:
        svc.stop()
    timings = [
        line
        for line in (logs / "showcase.log").read_text().splitlines()
        if '"enforcement.applied"' in line and POLICY in line
    ]
    if timings:
        t = json.loads(timings[-1])
        keys = ("seconds", "find_seconds", "stage_seconds", "update_seconds")
        report.notes.append(
            "- showcase's own timing of the enforcing transaction (its log): "
            + ", ".join(f"{k.replace('_seconds', '')} {t[k]} s" for k in keys if k in t)
        )
    report.notes += [
        "- CPU seconds by process: " + ", ".join(f"{k} {v:.1f}" for k, v in meter.used.items()),
        f"- peak RSS (P4): showcase {peak:.0f} MiB",
    ]
    return {
        "reported": reported[0] - t0,
        "last suspended": max(suspended) - t0,
        "suspended": float(len(suspended)),
    }


async def measure(items: int, creators: int, broker: Broker | None = None) -> Report:
    report = Report(
        "p2",
        f"P2 enforcement — {items:,} showcase items over {creators:,} creators, half suspended",
        broker=broker or "",
    )
    docs = item_docs(items, creators)
    ids = [str(d["_id"]) for d in docs if d["source"] == {"kind": "wechat_mini_shop"}]
    async with embedded_stack(broker) as stack:
        report.broker = stack.broker or ""
        log(f"P2 seeding {items} items into showcase and into a ceiling copy")
        seeded = await seed(stack.mongo_url, "showcase", docs)
        await seed(stack.mongo_url, "p2ceiling", docs)
        log(f"  seeded in {seeded:.1f}s per copy")
        raw = await ceiling(stack.mongo_url, "p2ceiling", ids)
        log(f"  ceiling {raw}")
        measured = await system(stack, items, report)
        log(f"  system {measured}")
    best = min(raw.values())
    rows = [
        [
            "system: `policy.in_force` → `enforcement.reported`",
            f"{measured['reported']:.2f}",
            f"{measured['reported'] / best:.1f}×",
        ],
        [
            "system: → last `showcase.item_suspended` read",
            f"{measured['last suspended']:.2f}",
            f"{measured['last suspended'] / best:.1f}×",
        ],
        *[[f"ceiling: one raw {k}", f"{v:.2f}", f"{v / best:.1f}×"] for k, v in raw.items()],
    ]
    report.table(["what", "seconds", "vs best ceiling"], rows)
    verdict = measured["reported"] / best
    report.headline = {
        "`policy.in_force` → `enforcement.reported` (s)": f"{measured['reported']:.2f}",
        "→ last `item_suspended` read (s)": f"{measured['last suspended']:.2f}",
        "best raw ceiling (s)": f"{best:.2f}",
        "÷ ceiling (target ≤ 2×)": f"**{verdict:.1f}×**",
    }
    report.add(
        f"- suspended items read: {int(measured['suspended']):,} of {len(ids):,}",
        f"- to `enforcement.reported`: **{verdict:.1f}× the ceiling** (target ≤ {HOLD_TARGET:.0f}×)"
        f"; until the last `item_suspended`: **{measured['last suspended'] / best:.1f}×**",
        f"- seeding one copy ({items:,} `insert_many` in transactions of {INSERT_CHUNK:,}): "
        f"{seeded:.1f} s",
        *report.notes,
        "",
    )
    return report


def run(items: int, creators: int, broker: Broker | None = None) -> Report:
    return asyncio.run(measure(items, creators, broker)).finish()
