"""Commission rates over time: a raise takes effect at once, a cut at the next 00:00 Asia/Shanghai.

Pure: no I/O. An offer keeps every rate it was ever published with (:class:`RateEntry`), so
the rate in force at any instant is answerable with :func:`rate_at` — which is what an order
paid at ``paid_at`` earns, however late its ``order.paid`` arrives.

Rules (as Douyin's alliance does, DESIGN.md §4):

- "raise" means: the new rate is at least the rate in force *now*; it takes effect now;
- "cut" means: the new rate is lower than the rate in force now; it takes effect at the next
  00:00 Asia/Shanghai strictly after now (a cut published at 00:00:00 waits a full day);
- every publish supersedes any rate that was scheduled but had not yet taken effect (the
  merchant's latest instruction wins for the future). A superseded entry is kept in the history
  with ``superseded_at`` set, and :func:`rate_at` ignores it: it never was in force.

"Now" is the ``offer.published`` event's own ``time`` (DESIGN.md §6 event time), so a lagging
consumer or a replay schedules exactly as a prompt one; the offer clamps it to its latest change
(``offers.effective_time``) so a back-dated publish cannot reach into the past, and the
pipeline dead-letters events stamped more than 5 minutes ahead (``clock_skew``).
All times are UTC and truncated to milliseconds, the precision
MongoDB stores, so a history reloaded from the database answers exactly as the one in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def to_ms(t: datetime) -> datetime:
    """``t`` in UTC, truncated to the millisecond (MongoDB's datetime precision)."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: every time in Vitrine is timezone-aware")
    t = t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def next_midnight_shanghai(t: datetime) -> datetime:
    """The first 00:00 Asia/Shanghai strictly after ``t`` (as UTC)."""
    local = t.astimezone(SHANGHAI)
    day = local.date() + timedelta(days=1)
    return datetime.combine(day, dtime(0), tzinfo=SHANGHAI).astimezone(UTC)


@dataclass(frozen=True)
class RateEntry:
    """One published rate: in force from ``effective_at`` until the next entry takes effect."""

    commission_bps: int
    effective_at: datetime
    published_at: datetime
    superseded_at: datetime | None = None

    @property
    def kind(self) -> str:
        return "scheduled_cut" if self.effective_at > self.published_at else "immediate"


def rate_at(history: Sequence[RateEntry], instant: datetime) -> int | None:
    """The rate (bps) in force at ``instant``; ``None`` before the first rate took effect.

    Entries are in publish order; among those not superseded, effective times never go
    backwards, so the answer is the last one already effective (a later one wins a tie).
    """
    found: int | None = None
    for entry in history:
        if entry.superseded_at is None and entry.effective_at <= instant:
            found = entry.commission_bps
    return found


def schedule(
    history: Sequence[RateEntry], commission_bps: int, now: datetime
) -> tuple[tuple[RateEntry, ...], RateEntry]:
    """Add a newly published rate: the new history and the entry added (with its effective time)."""
    now = to_ms(now)
    current = rate_at(history, now)
    raise_ = current is None or commission_bps >= current
    effective = now if raise_ else next_midnight_shanghai(now)
    kept = tuple(
        replace(e, superseded_at=now) if e.superseded_at is None and e.effective_at > now else e
        for e in history
    )
    entry = RateEntry(commission_bps=commission_bps, effective_at=effective, published_at=now)
    return (*kept, entry), entry


def scheduled(history: Sequence[RateEntry], now: datetime) -> RateEntry | None:
    """The rate waiting to take effect after ``now`` (a cut before midnight), if any."""
    pending = [e for e in history if e.superseded_at is None and e.effective_at > now]
    return pending[-1] if pending else None
