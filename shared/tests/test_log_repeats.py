"""Library lines repeated while a broker is down are folded, with a count."""

from __future__ import annotations

import logging

from vitrine.runtime.logging import RepeatFilter


def _record(name: str, msg: str, at: float) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)
    record.created = at
    return record


def test_a_repeated_library_line_passes_once_per_window_then_says_how_many_were_folded() -> None:
    f = RepeatFilter(window=10.0)
    passed = [
        f.filter(_record("aiokafka.conn", "Unable connect to node", 100.0 + i * 0.01))
        for i in range(500)
    ]
    assert passed.count(True) == 1
    later = _record("aiokafka.conn", "Unable connect to node", 111.0)
    assert f.filter(later)
    assert "499 more like it" in later.getMessage()


def test_other_lines_and_our_own_loggers_are_never_folded() -> None:
    f = RepeatFilter(window=10.0)
    assert f.filter(_record("aiokafka.conn", "Unable connect to node", 1.0))
    assert f.filter(_record("aiokafka.cluster", "Unable to update metadata", 1.1))
    assert all(f.filter(_record("vitrine.pipeline", "event.handled", 1.0 + i)) for i in range(5))
