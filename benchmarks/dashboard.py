"""Dashboard: freshness (``order.paid`` published → reflected in ``/api/live/{id}``) at a steady
offered rate (default 500/s for 30 s), the service's peak RSS, and 50 concurrent viewers of the
page's update stream (server-sent events) held for the whole run.

Freshness is exact per order: every order goes to partition 0 of ``orders.lifecycle`` (keyed by
its ``order_id`` as always), so the dashboard applies them in the order they were sent, and order
*i* is reflected as soon as ``/api/live/{id}`` answers ``orders ≥ i + 1``. A poller reads the
API every 50 ms (the quantum of the measure); an order's freshness is the first poll that
shows it minus the time the benchmark handed it to the producer. The viewers are plain SSE
clients (``GET /api/stream?live=``); at the end each one's last view must show every order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaProducer

from benchmarks.common import (
    HEADERS,
    LOGS,
    CpuMeter,
    cloud_event,
    embedded_stack,
    log,
    services,
    stack_pids,
)
from benchmarks.report import Report

TARGET_P99_MS = 1000.0
TARGET_RSS_MIB = 150.0
SESSION = "bench-live-1"
POLL_SECONDS = 0.05


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def order_paid(i: int) -> tuple[bytes, bytes]:
    oid = f"bo-{i:07d}"
    data = {
        "order_id": oid,
        "product_id": f"bp-{i % 40}",
        "merchant_id": f"bm-{i % 7}",
        "creator_id": "bc-1",
        "amount_fen": 100 + i % 9000,
        "paid_at": datetime.now(UTC).isoformat(),
        "live_session_id": SESSION,
        "quantity": 1 + i % 3,
    }
    return oid.encode(), cloud_event("order.paid", oid, data, id=f"bench-{oid}")


@dataclass
class Viewer:
    """One SSE client: how many views it got, the last one, whether it stayed connected."""

    n: int
    events: int = 0
    first_after: float | None = None
    last_orders: int = -1
    error: str | None = None
    held: float = 0.0
    samples: list[int] = field(default_factory=list)

    async def watch(self, client: httpx.AsyncClient, url: str, stop: asyncio.Event) -> None:
        started = time.perf_counter()
        try:
            async with client.stream("GET", url) as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        body = json.loads(line[5:].strip())
                        self.events += 1
                        self.last_orders = body["orders"]
                        if self.first_after is None:
                            self.first_after = time.perf_counter() - started
                    if stop.is_set():
                        break
        except Exception as exc:
            self.error = repr(exc)[:200]
        finally:
            self.held = time.perf_counter() - started


async def measure(rate: float, duration: float, viewers: int) -> Report:
    total = int(rate * duration)
    report = Report(
        "dashboard",
        f"Dashboard — order.paid → /api/live at {rate:,.0f}/s offered for {duration:.0f} s, "
        f"{viewers} SSE viewers",
    )
    sent: list[float] = []
    seen_at: list[float] = []  # seen_at[i]: first poll showing order i
    async with (
        embedded_stack() as stack,
        services(stack, ["dashboard"], LOGS / "dashboard") as procs,
    ):
        svc = procs["dashboard"]
        pids = {"dashboard": svc.pid, **stack_pids(stack)}
        prod = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", linger_ms=1)
        await prod.start()
        limits = httpx.Limits(max_connections=viewers + 10)
        async with httpx.AsyncClient(base_url=svc.url(""), timeout=30, limits=limits) as client:
            try:
                # Warm-up: the session exists before the viewers connect.
                key, value = order_paid(0)
                sent.append(time.perf_counter())
                await prod.send_and_wait(
                    "orders.lifecycle", value, key=key, partition=0, headers=HEADERS
                )
                for _ in range(1200):
                    if (await client.get(f"/api/live/{SESSION}")).status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                seen_at.append(time.perf_counter())

                stop = asyncio.Event()
                watchers = [Viewer(n) for n in range(viewers)]
                tasks = [
                    asyncio.create_task(v.watch(client, f"/api/stream?live={SESSION}", stop))
                    for v in watchers
                ]

                async def poll() -> None:
                    while len(seen_at) < total + 1:
                        resp = await client.get(f"/api/live/{SESSION}")
                        now = time.perf_counter()
                        shown = resp.json()["orders"]
                        while len(seen_at) < min(shown, len(sent)):
                            seen_at.append(now)
                        await asyncio.sleep(POLL_SECONDS)

                bodies = [order_paid(i) for i in range(1, total + 1)]
                meter = CpuMeter(pids).start()
                poller = asyncio.create_task(poll())
                log(f"dashboard: {rate}/s for {duration}s ({total} orders), {viewers} viewers")
                start = time.perf_counter()
                i = 0
                while i < total:
                    due = min(total, int((time.perf_counter() - start) * rate) + 1)
                    while i < due:
                        key, value = bodies[i]
                        sent.append(time.perf_counter())
                        await prod.send(
                            "orders.lifecycle", value, key=key, partition=0, headers=HEADERS
                        )
                        i += 1
                    await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                offered_for = time.perf_counter() - start
                await prod.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(poller, 60)
                meter.stop()
                # Let every viewer receive the final view, then hang up.
                for _ in range(75):
                    if all(v.last_orders == total + 1 or v.error for v in watchers):
                        break
                    await asyncio.sleep(0.2)
                stop.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                peak = svc.peak_rss_mb() or 0.0
                batches = svc.batch_stats()
            finally:
                await prod.stop()

    lat = sorted((seen - s) * 1000 for s, seen in zip(sent[1:], seen_at[1:], strict=False))
    missing = total - len(lat)
    p50, p90, p99 = (percentile(lat, q) for q in (0.5, 0.9, 0.99))
    report.table(
        ["orders", "reflected", "offered for", "p50 ms", "p90 ms", "p99 ms", "max ms", "peak RSS"],
        [
            [
                f"{total:,}",
                f"{len(lat):,}",
                f"{offered_for:.1f} s ({total / offered_for:,.0f}/s)",
                f"{p50:.0f}",
                f"{p90:.0f}",
                f"{p99:.0f}",
                f"{lat[-1] if lat else float('nan'):.0f}",
                f"{peak:.0f} MiB",
            ]
        ],
    )
    exact = sum(1 for v in watchers if v.last_orders == total + 1)
    errors = [v.error for v in watchers if v.error]
    events = sorted(v.events for v in watchers)
    firsts = sorted(v.first_after or float("nan") for v in watchers)
    report.add(
        f"- freshness p99 {p99:.0f} ms: target ≤ {TARGET_P99_MS:.0f} ms "
        + ("**met**" if p99 <= TARGET_P99_MS and not missing else "**missed**"),
        f"- peak RSS {peak:.0f} MiB: target ≤ {TARGET_RSS_MIB:.0f} MiB "
        + ("**met**" if peak <= TARGET_RSS_MIB else "**missed**"),
        f"- SSE: {viewers} viewers held {min(v.held for v in watchers):.0f}–"
        f"{max(v.held for v in watchers):.0f} s; views received per viewer "
        f"{events[0]}–{events[-1]} (median {events[len(events) // 2]}); first view after "
        f"{firsts[0] * 1000:.0f}–{firsts[-1] * 1000:.0f} ms; last view exact "
        f"(orders = {total + 1:,}) for {exact} of {viewers}; errors: {len(errors)}"
        + (f" ({errors[0]})" if errors else ""),
        f"- not reflected within 60 s after the last order: {missing}",
        "- CPU seconds by process: " + ", ".join(f"{k} {v:.1f}" for k, v in meter.used.items()),
        f"- {batches}",
        "",
    )
    return report


def run(rate: float, duration: float, viewers: int = 50) -> Report:
    return asyncio.run(measure(rate, duration, viewers))
