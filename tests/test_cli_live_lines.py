"""``vitrine tail`` one-line summaries of the live room's events."""

from __future__ import annotations

import json

from vitrine.tools.cli._output import Record, event_line


def _line(topic: str, type_: str, subject: str, data: dict[str, object]) -> str:
    value = {"type": type_, "subject": subject, "time": "2022-11-30T20:00:00+08:00", "data": data}
    record = Record(topic, 0, 7, None, subject.encode(), json.dumps(value).encode(), ())
    return event_line(record).plain


def test_live_events_show_session_product_and_counts() -> None:
    started = _line(
        "live.rooms",
        "live.session_started",
        "c-1",
        {"creator_id": "c-1", "session_id": "s-1", "title": "秋季上新"},
    )
    assert "live.session_started  c-1  session_id=s-1 title=秋季上新" in started
    suspended = _line(
        "live.rooms",
        "live.item_suspended",
        "c-1",
        {
            "creator_id": "c-1",
            "session_id": "s-1",
            "product_id": "p-1",
            "reason": "policy",
            "policy_id": "pol-1",
        },
    )
    assert "session_id=s-1 product_id=p-1 reason=policy policy_id=pol-1" in suspended
    ended = _line(
        "live.rooms",
        "live.session_ended",
        "c-1",
        {"creator_id": "c-1", "session_id": "s-1", "items": 3},
    )
    assert ended.endswith("session_id=s-1 items=3")
    refused = _line(
        "creators.live",
        "live.session_refused",
        "c-1",
        {
            "creator_id": "c-1",
            "session_id": "s-2",
            "command": "live.start_requested",
            "reasons": [{"code": "session_already_open"}],
        },
    )
    assert "command=live.start_requested reasons=session_already_open" in refused
