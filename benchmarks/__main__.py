"""``python -m benchmarks [p1|p2|p3|p4|dashboard|all]``: run, print, write docs/PERFORMANCE.md."""

from __future__ import annotations

import argparse

from benchmarks import report as reporting
from benchmarks.common import PROFILE, log


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["p1", "p2", "p3", "p4", "selection", "dashboard", "all"],
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
    parser.add_argument("--duration", type=float, default=None, help="P3 (60) / dashboard (30) s")
    parser.add_argument("--viewers", type=int, default=50, help="dashboard SSE viewers")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the services and nx-27017 while measuring"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/PERFORMANCE.md")
    args = parser.parse_args()

    PROFILE["enabled"] = args.profile
    reports: list[reporting.Report] = []
    if args.which in ("p1", "p4", "all"):
        from benchmarks import p1_ingest

        n = args.n or 20_000
        reports.append(
            p1_ingest.run(
                n,
                min(n, 3000) if args.naive_n is None else args.naive_n,
                tuple(v for v in args.variants.split(",") if v),
            )
        )
    if args.which in ("p2", "p4", "all"):
        from benchmarks import p2_enforcement

        items = args.n or 100_000 if args.which == "p2" else 100_000
        reports.append(p2_enforcement.run(items, max(1, items // 10)))
    if args.which in ("p3", "all"):
        from benchmarks import p3_latency

        reports.append(p3_latency.run(args.rate, args.duration or 60.0))
    if args.which in ("selection", "all"):
        from benchmarks import selection

        reports.append(selection.run(args.n or 100_000, 50.0, min(args.duration or 30.0, 30.0)))
    if args.which in ("dashboard", "all"):
        from benchmarks import dashboard

        reports.append(dashboard.run(args.rate, args.duration or 30.0, args.viewers))
    for report in reports:
        print(report.markdown())
        if not args.no_doc:
            reporting.write(report)
            log(f"wrote {report.name} into {reporting.DOC}")


if __name__ == "__main__":
    main()
