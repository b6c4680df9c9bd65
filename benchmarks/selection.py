"""Selection: query latency and freshness of the selection center under load.

``N`` offers (default 100,000) from 7 suppliers are loaded through the service's own
projection path (``product.listed`` on catalog.products and ``offer.activated`` on
distribution.offers, bulk-published as catalog and distribution would). Then, for
``duration`` seconds, the probe sends mixed ``GET /offers`` queries at ``rate`` per second
(keyword, filters, sorts, a creator's eligibility on a surface) while new offers (5/s) and
orders (20/s) keep arriving. Query latency is each request's round trip; freshness is the
time from publishing a new offer's ``offer.activated`` to the first poll of
``/offers?category=fresh&sort=newest`` (every 0.2 s) that shows it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime

import httpx

from benchmarks.common import (
    LOGS,
    CpuMeter,
    Profiler,
    cloud_event,
    embedded_stack,
    log,
    producer,
    rss_mb,
    send_all,
    services,
    stack_pids,
)
from benchmarks.report import Report

SUPPLIERS: list[dict[str, str]] = [
    {"kind": "third_party_platform", "platform": p}
    for p in ("aiguang", "weimob", "mokuai", "vip", "dangdang")
] + [{"kind": "mini_program_alliance"}, {"kind": "mini_shop_alliance"}]
WORDS = ["白瓷", "茶杯", "保温杯", "茶壶", "咖啡", "手机壳", "运动鞋", "面膜", "零食", "玩具"]
CATEGORIES = ["家居", "数码", "美妆", "食品", "服饰"]
#: Rounds of the five sorts per shape in the one-at-a-time measurement.
SERIAL_ROUNDS = int(os.environ.get("VITRINE_BENCH_SERIAL_ROUNDS", "2"))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def offer_records(
    i: int, category: str | None = None
) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    rnd = random.Random(i)
    pid, oid = f"p{i}", f"o{i}"
    title = "".join(rnd.sample(WORDS, 3)) + f" {i}"
    product = {
        "product_id": pid,
        "merchant_id": f"m{i % 500}",
        "version": 1,
        "source": SUPPLIERS[i % len(SUPPLIERS)],
        "title": title,
        "price_fen": rnd.randint(100, 100_000),
        "category": category or CATEGORIES[i % len(CATEGORIES)],
    }
    targeted = i % 10 == 0
    offer = {
        "offer_id": oid,
        "product_id": pid,
        "merchant_id": f"m{i % 500}",
        "commission_bps": rnd.randint(100, 5000),
        "plan": "targeted" if targeted else "general",
        "creator_ids": [f"c{i % 50}"] if targeted else [],
        "effective_at": datetime.now(UTC).isoformat(),
    }
    return (
        (pid.encode(), cloud_event("product.listed", pid, product, source="/vitrine/catalog")),
        (oid.encode(), cloud_event("offer.activated", oid, offer, source="/vitrine/distribution")),
    )


SORTS = ["commission_rate", "commission_per_unit", "price", "sales", "newest"]
SHAPES = ["keyword", "category+rate", "supplier+price", "eligibility", "keyword+eligibility"]


def mixed_query(rnd: random.Random) -> str:
    return shaped_query(rnd, rnd.randrange(5), rnd.choice(SORTS))


def shaped_query(rnd: random.Random, kind: int, sort: str) -> str:
    """One query of shape ``SHAPES[kind]`` under ``sort``."""
    if kind == 0:
        return f"/offers?q={rnd.choice(WORDS)}&sort={sort}"
    if kind == 1:
        return f"/offers?category={rnd.choice(CATEGORIES)}&min_rate_bps=2000&sort={sort}"
    if kind == 2:
        s = rnd.choice(SUPPLIERS)
        return f"/offers?source_kind={s['kind']}&min_price_fen=1000&max_price_fen=50000&sort={sort}"
    if kind == 3:
        c = rnd.randrange(50)
        return f"/offers?creator_id=c{c}&surface={rnd.choice(['showcase', 'live'])}&sort={sort}"
    return f"/offers?q={rnd.choice(WORDS)}&creator_id=c1&surface=live&sort={sort}"


def query_work(metrics_url: str) -> str:
    """How long the service's own work per ``GET /offers`` took (its histogram), to tell it
    apart from the round trip the probe measures (HTTP, event loop, waiting for a CPU)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(metrics_url, timeout=5.0) as resp:  # noqa: S310
        text = resp.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vitrine_selection_query_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return "- index work per query: no samples"
    shares = ", ".join(
        f"≤ {le * 1000:g} ms: {buckets[le] / total:.1%}"
        for le in (0.002, 0.005, 0.01, 0.05)
        if le in buckets
    )
    return f"- index work per GET /offers (service histogram, all {total:,.0f} queries): {shares}"


async def measure(n: int, rate: float, duration: float) -> Report:
    report = Report(
        "selection", f"Selection — {n:,} offers, {rate:.0f} queries/s for {duration:.0f} s"
    )
    async with (
        embedded_stack() as stack,
        services(stack, ["selection"], LOGS / "selection") as procs,
    ):
        base = procs["selection"].url("")
        prod = producer(stack.kafka_bootstrap)
        await prod.start()
        http = httpx.AsyncClient(
            base_url=base, timeout=30.0, limits=httpx.Limits(max_connections=2000)
        )
        try:
            t0 = time.monotonic()
            pairs = [offer_records(i) for i in range(n)]
            await send_all(prod, "catalog.products", [p for p, _ in pairs])
            await send_all(prod, "distribution.offers", [o for _, o in pairs])
            loaded = 0
            while loaded < n:
                await asyncio.sleep(2.0)
                try:
                    body = (await http.get("/suppliers", timeout=300.0)).json()
                except (httpx.HTTPError, ValueError):
                    continue
                loaded = sum(s["offers"] for s in body.get("suppliers", []))
                log(f"selection: {loaded:,}/{n:,} offers visible")
            load_s = time.monotonic() - t0
            report.add(
                f"- load: {n:,} offers (+{n:,} products) projected in {load_s:,.1f} s "
                f"({n / load_s:,.0f} offers/s through the projection path)"
            )

            # One query at a time, no load: what a query costs by itself (no queueing).
            rnd_serial, serial_rows = random.Random(3), []
            for kind, shape in enumerate(SHAPES):
                took: list[float] = []
                for _round in range(SERIAL_ROUNDS):
                    for sort in SORTS:
                        path = shaped_query(rnd_serial, kind, sort)
                        started = time.perf_counter()
                        resp = await http.get(path, timeout=300.0)
                        took.append((time.perf_counter() - started) * 1000)
                        assert resp.status_code == 200, (path, resp.status_code, resp.text)
                serial_rows.append(
                    [
                        shape,
                        f"{percentile(took, 0.5):,.1f}",
                        f"{max(took):,.1f}",
                        f"{len(took)}",
                    ]
                )
            report.add("One query at a time (no load), per shape, all five sorts:")
            report.table(["shape", "p50 (ms)", "max (ms)", "queries"], serial_rows)
            report.add(
                f"- selection RSS after load: {rss_mb(procs['selection'].pid) or 0:,.0f} MiB"
            )
            if duration <= 0:
                return report

            latencies: list[float] = []
            errors = 0
            published: dict[str, float] = {}
            seen: dict[str, float] = {}
            stop = time.monotonic() + duration

            async def one(path: str) -> None:
                nonlocal errors
                started = time.perf_counter()
                try:
                    resp = await http.get(path)
                    errors += resp.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                # A failed or timed-out query counts with the time it took (not dropped).
                latencies.append((time.perf_counter() - started) * 1000)

            async def queries() -> None:
                rnd, tasks, i, start = random.Random(7), [], 0, time.monotonic()
                while time.monotonic() < stop:
                    due = start + i / rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    tasks.append(asyncio.create_task(one(mixed_query(rnd))))
                    i += 1
                await asyncio.gather(*tasks)

            async def arrivals() -> None:
                i = n
                while time.monotonic() < stop:
                    product, offer = offer_records(i, category="fresh")
                    await send_all(prod, "catalog.products", [product])
                    await send_all(prod, "distribution.offers", [offer])
                    published[f"o{i}"] = time.monotonic()
                    orders = []
                    for k in range(4):
                        oid = f"r{i}-{k}"
                        data = {
                            "order_id": oid,
                            "product_id": f"p{k * 997 % n}",
                            "merchant_id": "m0",
                            "amount_fen": 990,
                            "offer_id": f"o{k * 997 % n}",
                            "paid_at": datetime.now(UTC).isoformat(),
                        }
                        orders.append((oid.encode(), cloud_event("order.paid", oid, data)))
                    await send_all(prod, "orders.lifecycle", orders)
                    i += 1
                    await asyncio.sleep(0.2)

            async def freshness() -> None:
                while (
                    time.monotonic() < stop + 10 and len(seen) < len(published)
                ) or time.monotonic() < stop:
                    try:
                        resp = await http.get("/offers?category=fresh&sort=newest&limit=100")
                        body = resp.json()
                    except httpx.HTTPError:
                        continue
                    now = time.monotonic()
                    for o in body["offers"]:
                        seen.setdefault(o["offer_id"], now)
                    await asyncio.sleep(0.2)

            pids = {"selection": procs["selection"].pid, **stack_pids(stack)}
            meter = CpuMeter(pids).start()
            profiler = Profiler("selection", pids).start()
            await asyncio.gather(queries(), arrivals(), freshness())
            meter.stop()
            profiler.stop()
            fresh = [seen[o] - published[o] for o in published if o in seen]
            report.table(
                ["measure", "p50", "p99", "max", "count"],
                [
                    [
                        "query latency (ms)",
                        f"{percentile(latencies, 0.5):,.1f}",
                        f"{percentile(latencies, 0.99):,.1f}",
                        f"{max(latencies):,.1f}",
                        f"{len(latencies):,} ({errors} errors)",
                    ],
                    [
                        "freshness: published → visible (s)",
                        f"{percentile(fresh, 0.5):,.2f}",
                        f"{percentile(fresh, 0.99):,.2f}",
                        f"{max(fresh or [0]):,.2f}",
                        f"{len(fresh)}/{len(published)} seen",
                    ],
                ],
            )
            report.add(procs["selection"].batch_stats())
            report.add(query_work(procs["selection"].url("/metrics")))
            report.add(
                f"- CPU during the {duration:.0f} s of mixed load (2 cores = "
                f"{2 * duration:.0f} CPU-s): {meter.describe()}"
            )
            report.add(
                f"- selection peak RSS: {procs['selection'].peak_rss_mb() or 0:,.0f} MiB "
                f"(now {rss_mb(procs['selection'].pid) or 0:,.0f} MiB)"
            )
            # A restart rebuilds the query side from the durable projection: how long until
            # it answers again for every offer.
            svc = procs["selection"]
            await asyncio.to_thread(svc.stop)
            t0 = time.monotonic()
            await svc.start().wait_ready()
            ready_s = time.monotonic() - t0
            total = 0
            while time.monotonic() - t0 < 600:
                resp = await http.get("/suppliers", timeout=300.0)
                if resp.status_code == 200:
                    total = sum(s["offers"] for s in resp.json()["suppliers"])
                    break
                await asyncio.sleep(0.2)
            report.add(
                f"- restart: /readyz after {ready_s:,.1f} s; answering for all {total:,} visible "
                f"offers after {time.monotonic() - t0:,.1f} s (the index loaded from MongoDB)"
            )
        finally:
            await http.aclose()
            await prod.stop()
    return report


def run(n: int, rate: float, duration: float) -> Report:
    return asyncio.run(measure(n, rate, duration))
