"""The outbox row format: what is staged comes back as exactly the records to produce."""

from __future__ import annotations

from datetime import UTC, datetime

from vitrine.contract.envelope import CloudEvent, new_event
from vitrine.contract.events import ProductRejected, Reason
from vitrine.runtime.messaging import outbox
from vitrine.runtime.messaging.producer import OutgoingRecord

CAUSE = CloudEvent(
    specversion="1.0",
    id="cause-1",
    source="/upstream",
    type="product.submitted",
    subject="p-1",
    time=datetime(2022, 11, 30, tzinfo=UTC),
)


def _event(i: int, message: str = "") -> CloudEvent:
    data = ProductRejected(
        product_id=f"p-{i}",
        merchant_id="m-1",
        version=1,
        reasons=[Reason(code="prohibited_category", message=message)],
    )
    return new_event(data.event_type, f"p-{i}", data, source="/vitrine/review", cause=CAUSE, seq=i)


def _expected(topic: str, event: CloudEvent) -> OutgoingRecord:
    return OutgoingRecord(
        topic, event.subject.encode(), event.to_json(), outbox.event_headers(event)
    )


def test_rows_round_trip_to_the_exact_records() -> None:
    # Newlines, U+2028 and quotes inside values must not break the line framing.
    tricky = 'line\nbreak \u2028 "quoted" \\ 视频号'
    events = [("review.decisions", _event(i, tricky if i % 2 else "")) for i in range(1203)]
    rows = outbox.outbox_rows(events)
    assert [row["n"] for row in rows] == [500, 500, 203]
    assert [row["_id"] for row in rows] == sorted(row["_id"] for row in rows)
    got = [record for row in rows for record in outbox.records(row)]
    assert got == [_expected(t, e) for t, e in events]


def test_rows_are_bounded_by_bytes_too(monkeypatch) -> None:
    monkeypatch.setattr(outbox, "BYTES_PER_ROW", 10_000)
    events = [("review.decisions", _event(i, "x" * 1500)) for i in range(40)]
    rows = outbox.outbox_rows(events)
    assert len(rows) > 1
    assert all(len(row["events"]) < 10_000 + 2_500 for row in rows)
    assert sum(row["n"] for row in rows) == 40


def test_rows_staged_by_an_older_release_are_still_published() -> None:
    event = _event(7)
    old_row = {
        "_id": "00000000000000000001",
        "events": [
            {
                "topic": "review.decisions",
                "key": event.subject,
                "type": event.type,
                "value": event.to_json(),
                "headers": [[k, v] for k, v in outbox.event_headers(event)],
            }
        ],
    }
    assert outbox.records(old_row) == [_expected("review.decisions", event)]


def test_the_database_keeps_rows_compressed_and_they_read_back_the_same() -> None:
    events = [("review.decisions", _event(i, "the same words again " * 5)) for i in range(300)]
    (row,) = outbox.outbox_rows(events)
    kept = outbox.stored(row)
    assert isinstance(kept["events"], bytes)
    assert len(kept["events"]) * 5 < len(row["events"])
    assert (kept["_id"], kept["n"]) == (row["_id"], row["n"])
    assert outbox.records(kept) == outbox.records(row) == [_expected(t, e) for t, e in events]
    assert outbox.stored(kept) == kept  # only text is compressed
