"""P3 latency: submit → listed at a steady offered rate (default 500/s for 60 s).

The probe publishes ``product.submitted`` on a fixed schedule (each message's due time is
``start + i / rate``; late ticks catch up) and reads ``catalog.products`` in the same process;
a product's latency is the probe's read time of its ``product.listed`` minus the time the
probe handed its submission to the producer. Catalog and review run as subprocesses at
``VITRINE_LOG_LEVEL=WARNING``. Percentiles are over every product submitted in the measured
``duration``; before it, the same rate is offered for ``warmup`` seconds (default 60), reported
apart: the broker is a JVM a minute old, and its JIT compiles through the first minute of
load. After a 10 s warm-up its C2 compiler still took 5.0 of the broker's 12.4 CPU seconds in
a 30 s window (17 % of a core, on two cores shared by everything); after 60 s, 0.4–0.9 s
(docs/PERFORMANCE.md). The report lists the broker's busiest threads so this stays visible.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from aiokafka import AIOKafkaProducer

from benchmarks.common import (
    HEADERS,
    LOGS,
    Arrival,
    CpuMeter,
    Profiler,
    ThreadMeter,
    broker_runtime,
    embedded_stack,
    log,
    profile_of,
    services,
    stack_pids,
    submission,
    watching,
)
from benchmarks.report import Report
from vitrine.tools.devstack import Broker

TARGET_P99_MS = 200.0
#: The upstream publisher's linger: Kafka 4.0's producer default (KIP-1030: 0 → 5 ms), what an
#: upstream on the Java client sends with unless it says otherwise. With aiokafka's 0 the
#: probe could send a produce request per submission. The linger counts in every latency: the
#: clock starts when the probe hands the record to its producer.
PROBE_LINGER_MS = 5


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def offer(
    prod: AIOKafkaProducer,
    bodies: list[tuple[str, bytes]],
    rate: float,
    sent: dict[str, float],
) -> float:
    """Send ``bodies`` at ``rate`` per second on a fixed schedule; returns the seconds taken."""
    total = len(bodies)
    start = time.perf_counter()
    i = 0
    while i < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        while i < due:
            pid, body = bodies[i]
            sent[pid] = time.perf_counter()
            await prod.send("merchants.products", body, key=pid.encode(), headers=HEADERS)
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    return time.perf_counter() - start


async def measure(
    rate: float,
    duration: float,
    extra_env: dict[str, str],
    broker: Broker | None = None,
    warmup: float = 60.0,
) -> Report:
    total = int(rate * duration)
    report = Report(
        "p3",
        f"P3 latency — submit → listed at {rate:,.0f}/s offered for {duration:.0f} s",
        broker=broker or "",
    )
    sent: dict[str, float] = {}
    warm_sent: dict[str, float] = {}
    listed: dict[str, float] = {}
    # Where the time goes: each hop's output record carries its producer's timestamp (the
    # relay's send), so submit → requested → decided → listed → read splits per service.
    stamps: dict[str, dict[str, int]] = {"requested": {}, "decided": {}, "listed": {}}
    wall = time.time() - time.perf_counter()  # perf_counter → epoch seconds

    def on_record(a: Arrival) -> None:
        if not a.key.startswith("l"):
            return
        if a.type == "product.listed":
            listed.setdefault(a.key, a.at)
            stamps["listed"].setdefault(a.key, a.timestamp_ms)
        elif a.type == "product.review_requested":
            stamps["requested"].setdefault(a.key, a.timestamp_ms)
        elif a.topic == "review.decisions":
            stamps["decided"].setdefault(a.key, a.timestamp_ms)

    logs = LOGS / "p3" / (broker or "default")
    async with (
        embedded_stack(broker) as stack,
        services(stack, ["catalog", "review"], logs, extra_env=extra_env) as procs,
    ):
        report.broker = stack.broker or ""
        pids = {**{s: p.pid for s, p in procs.items()}, **stack_pids(stack)}
        prod = AIOKafkaProducer(
            bootstrap_servers=stack.kafka_bootstrap,
            acks="all",
            enable_idempotence=profile_of(stack).idempotent_producer,
            linger_ms=PROBE_LINGER_MS,
        )
        await prod.start()
        try:
            async with watching(
                stack.kafka_bootstrap, ["catalog.products", "review.decisions"], on_record
            ) as w:
                joining = [f"lw-{i}" for i in range(20)]  # until both groups consume
                for n, pid in enumerate(joining):
                    await prod.send(
                        "merchants.products",
                        submission(pid, "m-warm", n),
                        key=pid.encode(),
                        headers=HEADERS,
                    )
                await w.wait(lambda: all(p in listed for p in joining), 120, "P3 group join")
                bodies = [
                    (f"l-{i:07d}", submission(f"l-{i:07d}", f"m-l-{i % 97}", i))
                    for i in range(total)
                ]
                warming = [
                    (f"lu-{i:07d}", submission(f"lu-{i:07d}", f"m-u-{i % 97}", i))
                    for i in range(int(rate * warmup))
                ]
                if warming:
                    log(f"P3 warming up: {rate}/s for {warmup}s, not measured")
                    await offer(prod, warming, rate, warm_sent)
                meter = CpuMeter(pids).start()
                threads = ThreadMeter(stack.processes["kafka"].pid).start()
                profiler = Profiler("p3", pids).start()
                log(f"P3 offering {rate}/s for {duration}s ({total} submissions)")
                offered_for = await offer(prod, bodies, rate, sent)
                await prod.flush()
                try:
                    await w.wait(
                        lambda: sum(1 for p in sent if p in listed) >= total,
                        60,
                        "P3 stragglers",
                    )
                except TimeoutError as exc:
                    log(str(exc))
                meter.stop()
                threads.stop()
                profiler.stop()
                peak = {s: p.peak_rss_mb() or 0.0 for s, p in procs.items()}
                batches = [p.batch_stats() for p in procs.values()]
        finally:
            await prod.stop()

    lat = sorted((listed[p] - t) * 1000 for p, t in sent.items() if p in listed)
    warm_lat = sorted((listed[p] - t) * 1000 for p, t in warm_sent.items() if p in listed)
    missing = total - len(lat)
    p50, p90, p99 = (percentile(lat, q) for q in (0.5, 0.9, 0.99))
    worst = lat[-1] if lat else float("nan")
    report.table(
        ["submitted", "listed", "offered for", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
            [
                f"{total:,}",
                f"{len(lat):,}",
                f"{offered_for:.1f} s ({total / offered_for:,.0f}/s)",
                f"{p50:.0f}",
                f"{p90:.0f}",
                f"{p99:.0f}",
                f"{worst:.0f}",
            ]
        ],
    )
    hops = hop_breakdown(sent, listed, stamps, wall)
    order = sorted(sent, key=sent.__getitem__)
    tenth = max(1, len(order) // 10)
    trend = []
    for k in range(0, len(order), tenth):
        part = sorted((listed[p] - sent[p]) * 1000 for p in order[k : k + tenth] if p in listed)
        trend.append(f"{percentile(part, 0.5):.0f}")
    met = p99 <= TARGET_P99_MS and not missing
    verdict = "met" if met else "missed"
    report.headline = {
        "listed / submitted": f"{len(lat):,} / {total:,}",
        "p50 / p90 ms": f"{p50:.0f} / {p90:.0f}",
        f"p99 ms (target ≤ {TARGET_P99_MS:.0f} on Kafka)": f"**{p99:.0f}**"
        + (f" ({verdict})" if report.broker == "apache" else ""),
        "max ms": f"{worst:.0f}",
        "CPU % of one core while offering, by process": ", ".join(
            f"{k} {v / offered_for * 100:.0f}" for k, v in meter.used.items()
        ),
    }
    report.add(
        "- p50 by tenth of the run (ms): " + " → ".join(trend),
        (
            f"- warm-up before the measured run, not in its percentiles: {len(warm_sent):,} "
            f"submissions at {rate:,.0f}/s over {warmup:.0f} s, p50 "
            f"{percentile(warm_lat, 0.5):.0f} / p99 {percentile(warm_lat, 0.99):.0f} ms"
            if warm_sent
            else "- no warm-up at the offered rate (`--warmup 0`)"
        ),
        f"- p99 {p99:.0f} ms: target ≤ {TARGET_P99_MS:.0f} ms "
        + ("**met**" if met else "**missed**"),
        f"- not listed within 60 s after the last submission: {missing}",
        "- CPU seconds by process: " + ", ".join(f"{k} {v:.1f}" for k, v in meter.used.items()),
        "- peak RSS: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in peak.items()),
        "- batches (each service's /metrics, warm-up included): " + "; ".join(batches),
        "- the broker's busiest threads, CPU seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in threads.busiest()),
        *broker_runtime(stack),
        "- per hop, p50 / p99 ms (from each output record's producer timestamp, 1 ms "
        "resolution): " + "; ".join(f"{k} {v}" for k, v in hops.items()),
        *(f"- service environment: `{k}={v}`" for k, v in extra_env.items()),
        "",
    )
    return report


def hop_breakdown(
    sent: dict[str, float],
    listed: dict[str, float],
    stamps: dict[str, dict[str, int]],
    wall: float,
) -> dict[str, str]:
    """p50 / p99 of each hop: submitted → review requested (catalog), → decided (review),
    → listed (catalog), → read by the probe (delivery); times as epoch milliseconds."""
    legs: dict[str, list[float]] = {
        "catalog (submitted → review_requested sent)": [],
        "review (→ decision sent)": [],
        "catalog (→ listed sent)": [],
        "delivery (→ read by the probe)": [],
    }
    for pid, t in sent.items():
        requested = stamps["requested"].get(pid)
        decided = stamps["decided"].get(pid)
        out = stamps["listed"].get(pid)
        if requested is None or decided is None or out is None or pid not in listed:
            continue
        points = [(t + wall) * 1000, requested, decided, out, (listed[pid] + wall) * 1000]
        for leg, (a, b) in zip(legs.values(), itertools.pairwise(points), strict=True):
            leg.append(b - a)
    result = {}
    for name, values in legs.items():
        values.sort()
        result[name] = f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f}"
    return result


def run(
    rate: float,
    duration: float,
    extra_env: dict[str, str] | None = None,
    broker: Broker | None = None,
    warmup: float = 60.0,
) -> Report:
    return asyncio.run(measure(rate, duration, extra_env or {}, broker, warmup)).finish()
