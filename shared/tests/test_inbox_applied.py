"""Dedupe inside the aggregate: the ids an aggregate keeps, and for how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vitrine.runtime.messaging import inbox

T0 = datetime(2022, 11, 30, tzinfo=UTC)


def test_recorded_keys_are_found_keys_with_spaces_included() -> None:
    entries = inbox.with_applied(None, "/upstream a-1", T0)
    entries = inbox.with_applied(entries, "/vitrine/review b 2", T0 + timedelta(seconds=1))
    assert inbox.applied_keys(entries) == {"/upstream a-1", "/vitrine/review b 2"}
    assert inbox.applied_keys(None) == set()


def test_ids_older_than_the_inbox_retention_are_dropped() -> None:
    old = inbox.with_applied(None, "/u old", T0)
    later = T0 + timedelta(seconds=inbox.RETENTION_SECONDS + 1)
    assert inbox.applied_keys(inbox.with_applied(old, "/u new", later)) == {"/u new"}
    just_in = T0 + timedelta(seconds=inbox.RETENTION_SECONDS)
    assert inbox.applied_keys(inbox.with_applied(old, "/u new", just_in)) == {"/u old", "/u new"}


def test_an_aggregate_keeps_at_most_the_newest_ids() -> None:
    entries: list[str] = []
    for i in range(inbox.MAX_APPLIED + 10):
        entries = inbox.with_applied(entries, f"/u e-{i}", T0)
    keys = inbox.applied_keys(entries)
    assert len(entries) == inbox.MAX_APPLIED
    assert f"/u e-{inbox.MAX_APPLIED + 9}" in keys and "/u e-9" not in keys and "/u e-10" in keys
