"""``make bench`` runs ``python -m benchmarks`` with no argument: that must mean every
benchmark (argparse once refused its own list default against ``choices``)."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import parse


def test_no_benchmark_named_means_all() -> None:
    args = parse([])
    assert args.which == ["all"] and args.broker == "both"


def test_benchmarks_and_broker_are_chosen_by_name() -> None:
    args = parse(["idle", "p1", "--broker", "apache", "--no-doc"])
    assert args.which == ["idle", "p1"] and args.broker == "apache" and args.no_doc


def test_an_unknown_benchmark_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse(["p9"])
