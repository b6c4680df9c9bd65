"""Idle: CPU the whole stack burns with no traffic at all, per process, as % of one core.

Every service (``vitrine.tools.acls.SERVICES``) runs as a subprocess, as in production, beside
the broker and nx-27017. After every service is ready and a settling time (group joins, JIT,
start-up indexes) the benchmark reads each process's ``utime + stime`` from
``/proc/<pid>/stat`` (the broker's JVM counts all its threads), waits ``duration`` seconds
without publishing anything, and reads them again. The benchmark process itself does
nothing meanwhile and is not counted.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import (
    LOGS,
    CpuMeter,
    Profiler,
    ThreadMeter,
    broker_label,
    broker_runtime,
    embedded_stack,
    log,
    services,
    stack_pids,
)
from benchmarks.report import Report
from vitrine.tools.acls import SERVICES
from vitrine.tools.devstack import Broker

#: The whole stack idle, % of one core (issue 11: on Apache Kafka).
TARGET_PERCENT = 5.0


async def measure(
    duration: float, settle: float, broker: Broker | None, extra_env: dict[str, str]
) -> Report:
    report = Report(
        "idle",
        f"Idle — the whole stack ({len(SERVICES)} services, broker, nx-27017) for "
        f"{duration:.0f} s with no traffic",
        broker=broker or "",
    )
    logs = LOGS / "idle" / (broker or "default")
    stack_started = time.perf_counter()
    async with (
        embedded_stack(broker) as stack,
        services(stack, list(SERVICES), logs, extra_env=extra_env) as procs,
    ):
        report.broker = stack.broker or ""
        pids = {**{s: p.pid for s, p in procs.items()}, **stack_pids(stack)}
        pids.pop("bench")
        log(f"idle: every service ready; settling {settle:.0f} s, then measuring {duration:.0f} s")
        await asyncio.sleep(settle)
        broker_pid = stack.processes["kafka"].pid
        startup = time.perf_counter() - stack_started
        meter = CpuMeter(pids).start()
        threads = ThreadMeter(broker_pid).start()
        profiler = Profiler("idle", pids).start()
        started = time.perf_counter()
        await asyncio.sleep(duration)
        elapsed = time.perf_counter() - started
        used = meter.stop()
        threads.stop()
        profiler.stop()
    percent = {k: v / elapsed * 100 for k, v in used.items()}
    total = sum(percent.values())
    services_total = sum(v for k, v in percent.items() if k in procs)
    broker_name = broker_label(stack)
    met = total <= TARGET_PERCENT
    jit = sum(v for k, v in threads.used.items() if "CompilerThre" in k) / elapsed * 100
    report.table(
        ["process", "CPU seconds", "% of one core"],
        [[k, f"{used[k]:.2f}", f"{v:.1f}"] for k, v in percent.items()]
        + [["**whole stack**", f"{sum(used.values()):.2f}", f"**{total:.1f}**"]],
    )
    report.add(
        f"- whole stack: **{total:.1f} %** of one core (target ≤ {TARGET_PERCENT:.0f} % on "
        f"Apache Kafka{(': met' if met else ': missed') if report.broker == 'apache' else ''}); "
        f"services {services_total:.1f} %, "
        f"{broker_name} {percent[broker_name]:.1f} %, nx-27017 {percent['nx-27017']:.1f} %",
        f"- {broker_name}'s busiest threads (% of one core): "
        + ", ".join(f"{k} {v / elapsed * 100:.2f}" for k, v in threads.busiest()),
        *(
            [
                f"- of which the JVM's JIT compiler threads (C1/C2, still compiling a broker "
                f"that started {startup:.0f} s earlier; nil in a long-running one): "
                f"{jit:.1f} % — the stack without them: {total - jit:.1f} %"
            ]
            if jit
            else []
        ),
        f"- measured over {elapsed:.1f} s after every service was ready and {settle:.0f} s of "
        "settling",
        *broker_runtime(stack),
        *(f"- service environment: `{k}={v}`" for k, v in extra_env.items()),
        "",
    )
    report.headline = {
        f"{'broker' if k == broker_name else k} %": f"{v:.1f}" for k, v in percent.items()
    }
    report.headline[f"**whole stack %** (target ≤ {TARGET_PERCENT:.0f} on Kafka)"] = (
        f"**{total:.1f}**"
        + ((" (met)" if met else " (missed)") if report.broker == "apache" else "")
    )
    return report


def run(
    duration: float = 60.0,
    settle: float = 15.0,
    broker: Broker | None = None,
    extra_env: dict[str, str] | None = None,
) -> Report:
    return asyncio.run(measure(duration, settle, broker, extra_env or {})).finish()
