"""``python -m benchmarks [p1|p2|p3|p4|idle|selection|dashboard|all ...]
[--broker apache|tansu|both]``: run, print, and write docs/PERFORMANCE.md.

P1–P4 and idle run on each chosen broker (default both, Apache Kafka first), each on its own
fresh stack, and are written side by side: one block per benchmark, a column per broker.
Selection and dashboard run once, on the first chosen broker.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmarks import report as reporting
from benchmarks.common import BROKER, BROKERS, PROFILE, log
from vitrine.tools.devstack import Broker

BENCHMARKS = ("p1", "p2", "p3", "p4", "idle", "selection", "dashboard", "all")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; no benchmark named means all of them (``make bench``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    # Checked below, not with ``choices``: Python 3.11's argparse checks an empty ``*``
    # positional (or its list default) against ``choices`` as one value and refuses it.
    parser.add_argument(
        "which", nargs="*", metavar="|".join(BENCHMARKS), help="benchmarks to run (default all)"
    )
    parser.add_argument(
        "--broker",
        choices=[*BROKERS, "both"],
        default="both",
        help="the embedded stack's broker (default: both, side by side)",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="P1 submissions (20,000) / P2 items (100,000)",
    )
    parser.add_argument(
        "--naive-n",
        type=int,
        default=None,
        help="P1 naive baseline N (default: min(N, 3000): it runs at ~100/s)",
    )
    parser.add_argument(
        "--variants",
        default="system,info,raw,naive",
        help="P1 variants to run, comma-separated (system,info,raw,naive)",
    )
    parser.add_argument("--rate", type=float, default=500.0, help="P3 submissions per second")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="P3: seconds at the offered rate before the measured run (not measured): the "
        "broker's JIT compiles through the first minute of load (docs/PERFORMANCE.md)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="P3 / idle (60) / dashboard (30) s"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="P1: system/raw pairs run back to back; the ratio reported is their median (3)",
    )
    parser.add_argument("--viewers", type=int, default=50, help="dashboard SSE viewers")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="idle: seconds after ready before measuring"
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="idle/P3: set in every service (e.g. VITRINE_FETCH_MAX_WAIT_MS=5000)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the services and nx-27017 while measuring"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    unknown = [w for w in args.which if w not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})"
        )
    args.which = args.which or ["all"]
    return args


def main() -> None:
    args = parse()

    PROFILE["enabled"] = args.profile
    service_env = dict(v.split("=", 1) for v in args.service_env)
    brokers: tuple[Broker, ...] = BROKERS if args.broker == "both" else (args.broker,)
    chosen = set(args.which)
    duration = args.duration or 60.0
    n = args.n or 20_000
    per_broker: list[tuple[str, Callable[[Broker], reporting.Report]]] = []
    if chosen & {"idle", "all"}:
        from benchmarks import idle

        per_broker.append(("idle", lambda b: idle.run(duration, args.settle, b, service_env)))
    if chosen & {"p1", "p4", "all"}:
        from benchmarks import p1_ingest

        naive_n = min(n, 3000) if args.naive_n is None else args.naive_n
        variants = tuple(v for v in args.variants.split(",") if v)
        per_broker.append(("p1", lambda b: p1_ingest.run(n, naive_n, variants, b, args.pairs)))
    if chosen & {"p2", "p4", "all"}:
        from benchmarks import p2_enforcement

        items = args.n or 100_000 if chosen == {"p2"} else 100_000
        per_broker.append(("p2", lambda b: p2_enforcement.run(items, max(1, items // 10), b)))
    if chosen & {"p3", "all"}:
        from benchmarks import p3_latency

        per_broker.append(
            ("p3", lambda b: p3_latency.run(args.rate, duration, service_env, b, args.warmup))
        )

    def publish(report: reporting.Report) -> None:
        # As soon as it is measured: a later benchmark failing does not lose this one.
        print(report.markdown(), flush=True)
        if not args.no_doc:
            reporting.write(report)
            log(f"wrote {report.name} into {reporting.DOC}")

    for name, bench in per_broker:
        runs = []
        # Brokers back to back for each benchmark, so both see about the same machine load.
        for broker in brokers:
            log(f"{name} on {broker}")
            runs.append(bench(broker))
        publish(reporting.side_by_side(runs))
    BROKER["name"] = brokers[0]
    if chosen & {"selection", "all"}:
        from benchmarks import selection

        publish(selection.run(args.n or 100_000, 50.0, min(args.duration or 30.0, 30.0)))
    if chosen & {"dashboard", "all"}:
        from benchmarks import dashboard

        publish(dashboard.run(args.rate, args.duration or 30.0, args.viewers))


if __name__ == "__main__":
    main()
