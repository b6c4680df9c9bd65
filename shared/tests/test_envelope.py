"""Decoding raw records: every kind of bad input gets a stable reason, never an exception."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from vitrine.contract.envelope import CloudEvent, Event, InvalidEvent, decode, new_event
from vitrine.contract.events import ProductWithdrawn
from vitrine.contract.topics import TOPICS
from vitrine.runtime.messaging.dlq import dead_letter
from vitrine.tools.testing.probe import cloud_event

MODELS = TOPICS["merchants.products"].types


def _raw(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


def _withdrawn(pid: str = "p-1", **over: object) -> dict[str, object]:
    event = cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": "m-1"})
    event.update(over)
    return event


def test_valid_event_decodes_with_typed_data() -> None:
    decoded = decode(_raw(_withdrawn()), b"p-1", MODELS)
    assert isinstance(decoded, Event)
    assert isinstance(decoded.data, ProductWithdrawn)
    assert decoded.data.merchant_id == "m-1"


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (None, b"p-1", "empty"),
        (b"\xff\xfe not utf8", b"p-1", "not_json"),
        (b'{"truncated": ', b"p-1", "not_json"),
        (b"[1, 2]", b"p-1", "not_cloudevent"),
        (_raw({"specversion": "1.0", "id": "x"}), b"p-1", "not_cloudevent"),
        (_raw(_withdrawn(type="product.exploded")), b"p-1", "unknown_type"),
        (_raw(_withdrawn()), b"p-2", "key_mismatch"),
        (_raw(_withdrawn()), None, "key_mismatch"),
        (_raw(_withdrawn(data={"product_id": "p-1"})), b"p-1", "invalid_data"),
        (_raw(_withdrawn(data={"product_id": "p-1", "merchant_id": 7})), b"p-1", "invalid_data"),
        (
            _raw(_withdrawn(data={"product_id": "p-1", "merchant_id": {"$ne": 1}})),
            b"p-1",
            "forbidden_key",
        ),
        (
            _raw(_withdrawn(data={"product_id": "p-1", "a.b": 1, "merchant_id": "m"})),
            b"p-1",
            "forbidden_key",
        ),
        (b" " * 300_000, b"p-1", "too_large"),
        (b"[" * 5000 + b"]" * 5000, b"p-1", "not_json"),
    ],
)
def test_bad_input_has_a_reason(value: bytes | None, key: bytes | None, reason: str) -> None:
    decoded = decode(value, key, MODELS)
    assert isinstance(decoded, InvalidEvent), decoded
    assert decoded.reason == reason


def test_bad_subject_id_is_rejected() -> None:
    bad = _withdrawn(subject="p 1 with spaces")
    decoded = decode(_raw(bad), b"p 1 with spaces", MODELS)
    assert isinstance(decoded, InvalidEvent)
    assert decoded.reason == "not_cloudevent"


def test_output_ids_derive_from_the_cause() -> None:
    cause = decode(_raw(_withdrawn()), b"p-1", MODELS)
    assert isinstance(cause, Event)
    data = ProductWithdrawn(product_id="p-1", merchant_id="m-1")
    first = new_event("product.withdrawn", "p-1", data, source="/vitrine/x", cause=cause)
    again = new_event("product.withdrawn", "p-1", data, source="/vitrine/x", cause=cause)
    other = new_event("product.withdrawn", "p-1", data, source="/vitrine/x", cause=cause, seq=1)
    assert first.id == again.id != other.id
    assert first.causationid == cause.id
    assert first.correlationid == cause.id
    assert decode(first.to_json(), b"p-1", MODELS).__class__ is Event


# --- crafted keys, and the one-pass validation agreeing with the step-by-step one ----------


@pytest.mark.parametrize(
    "data",
    [
        '{"product_id": "p-1", "merchant_id": "x", ":a.b": 1}',
        '{"product_id": "p-1", "merchant_id": "", "$ne": 1}',
        '{"product_id": "p-1", "merchant_id": "m", "\\u0024ne": 1}',  # escaped $
        '{"product_id": "p-1", "merchant_id": "m", "x" : {"a": [{"b.c": ""}]}}',
    ],
)
def test_crafted_keys_are_forbidden(data: str) -> None:
    envelope_only = {k: v for k, v in _withdrawn().items() if k != "data"}
    event = json.dumps(envelope_only)[:-1] + f', "data": {data}}}'
    decoded = decode(event.encode(), b"p-1", MODELS)
    assert isinstance(decoded, InvalidEvent), decoded
    assert decoded.reason == "forbidden_key", (event, decoded)


def test_one_pass_decoding_gives_what_step_by_step_validation_gives() -> None:
    event = _withdrawn(correlationid="c-1", custom="ext")
    decoded = decode(_raw(event), b"p-1", MODELS)
    assert isinstance(decoded, Event)
    envelope = CloudEvent.model_validate(event)
    data = ProductWithdrawn.model_validate_json(json.dumps(event["data"]), strict=True)
    assert decoded.data == data
    assert decoded.envelope.model_dump(exclude={"data"}) == envelope.model_dump(exclude={"data"})
    assert decoded.envelope.model_extra == {"custom": "ext"}
    assert decoded.envelope.dedupe_key == envelope.dedupe_key


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["extension", "data", "nested"])
def test_nan_and_infinity_are_not_json(token: str, where: str) -> None:
    """Python's json reads them; JSON has no such numbers: dead-lettered even where nobody
    looks (an envelope extension, an attribute)."""
    event = _withdrawn()
    marker = 12345.5  # replaced by the bare token in the bytes
    if where == "extension":
        event["x-score"] = marker
    elif where == "data":
        event["data"] = {**event["data"], "extra": marker}  # type: ignore[dict-item]
    else:
        event["data"] = {**event["data"], "attributes": {"w": [1, {"v": marker}]}}  # type: ignore[dict-item]
    value = _raw(event).replace(b"12345.5", token.encode())
    decoded = decode(value, b"p-1", MODELS)
    assert isinstance(decoded, InvalidEvent)
    assert (decoded.reason, decoded.error) == ("not_json", f"{token} is not JSON")


def test_nan_as_a_string_is_just_a_string() -> None:
    decoded = decode(_raw(_withdrawn(**{"x-note": "NaN"})), b"p-1", MODELS)
    assert isinstance(decoded, Event)


def test_a_tombstones_dead_letter_is_a_tombstone() -> None:
    """A record with no value goes to the DLQ with no value — not an empty string."""
    record = SimpleNamespace(
        topic="merchants.products", partition=0, offset=7, key=b"p-1", value=None, headers=[]
    )
    decoded = decode(record.value, record.key, MODELS)
    assert isinstance(decoded, InvalidEvent) and decoded.reason == "empty"
    letter = dead_letter(record, reason=decoded.reason, error=decoded.error, service="catalog")
    assert (letter.topic, letter.key, letter.value) == ("merchants.products.dlq", b"p-1", None)


def test_an_event_from_the_future_is_clock_skew() -> None:
    """More than 5 minutes ahead of the consumer's clock: dead-lettered; up to 5 is fine."""
    from datetime import UTC, datetime, timedelta

    from vitrine.contract.envelope import latest_accepted

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    latest = latest_accepted(now)
    for ahead, ok in ((timedelta(minutes=5), True), (timedelta(minutes=5, seconds=1), False)):
        raw = _raw(_withdrawn(time=(now + ahead).isoformat()))
        decoded = decode(raw, b"p-1", MODELS, latest=latest)
        if ok:
            assert isinstance(decoded, Event)
        else:
            assert isinstance(decoded, InvalidEvent)
            assert decoded.reason == "clock_skew"
            assert "0:05:01 ahead" in decoded.error
    late = _withdrawn(time=(now + timedelta(hours=1)).isoformat())
    # without a clock (tools decoding archives), no check
    assert isinstance(decode(_raw(late), b"p-1", MODELS), Event)


# --- the one-parse path for clean records agrees with the careful path ---------------------

_ENVELOPE = json.dumps({k: v for k, v in _withdrawn().items() if k != "data"})[:-1]


def _with_data(data: str, extra: str = "") -> bytes:
    return f'{_ENVELOPE}{extra}, "data": {data}}}'.encode()


_CLEAN = '{"product_id": "p-1", "merchant_id": "m-1"}'


@pytest.mark.parametrize(
    "value",
    [
        _raw(_withdrawn()),
        _raw(_withdrawn(correlationid="c-1", custom="ext")),
        _with_data(_CLEAN, ', "x-url": "https://a.b/c.d?e=f:g"'),  # dots and colons in values
        _with_data(_CLEAN, ', "x-note": "say \\"a.b\\": 1"'),  # a value that looks like a key
        _with_data(_CLEAN, ', "x-ok": {"price$": 1}'),  # "$" not first: allowed
        _with_data(_CLEAN, ', "x-t": "caf\\u00e9"'),  # a \u00 escape that is no $ . or NUL
        _with_data(_CLEAN, ', "x-n": "NaN"'),  # the token inside a string
        _with_data(_CLEAN, ', "x-type": {"type": "product.exploded"}'),  # a nested "type"
        _with_data('{"type": "product.exploded", "product_id": "p-1", "merchant_id": "m-1"}'),
        _raw(_withdrawn()).replace(b'"type": "product.withdrawn"', b'"type" : "product.nope"'),
        b'{"data": {"type": "product.withdrawn", "product_id": "p-1", "merchant_id": "m-1"}, '
        + _raw(_withdrawn(type="product.submitted"))[1:].replace(b', "data": {', b', "d": {'),
        _with_data('{"product_id": "p-1", "merchant_id": "m-1", "a\\u002eb": 1}'),
        _with_data('{"product_id": "p-1", "merchant_id": "m-1", "a\\"x.b": 1}'),
        _with_data('{"product_id": "p-1", "merchant_id": "m-1", "x" :{"b.c" : 1}}'),
        _with_data('{"product_id": "p-1", "merchant_id": "m-1", "\\u0000": 1}'),
        _with_data(_CLEAN, ', "x-score": NaN'),
        _with_data(_CLEAN, ', "type": "product.withdrawn"'),  # a duplicate type, last wins
        _with_data(_CLEAN, ', "type": "product.submitted"'),
        _raw(_withdrawn(time="2999-01-01T00:00:00+00:00")),
    ],
)
def test_the_one_parse_path_decides_as_the_careful_path(
    value: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vitrine.contract import envelope

    latest = envelope.latest_accepted()
    fast = decode(value, b"p-1", MODELS, latest=latest)
    monkeypatch.setattr(envelope, "_decode_clean", lambda *_: None)
    careful = decode(value, b"p-1", MODELS, latest=latest)
    assert type(fast) is type(careful)
    if isinstance(fast, Event):
        assert isinstance(careful, Event)
        assert fast.envelope == careful.envelope and fast.data == careful.data
    else:
        assert fast == careful


def test_a_clean_record_is_decoded_in_one_parse() -> None:
    from vitrine.contract import envelope

    decoded = envelope._decode_clean(_raw(_withdrawn()), b"p-1", MODELS, None)
    assert isinstance(decoded, Event) and isinstance(decoded.data, ProductWithdrawn)
    for suspicious in (
        _with_data('{"product_id": "p-1", "merchant_id": "m-1", "a.b": 1}'),
        _with_data('{"product_id": "p-1", "merchant_id": "m-1", "$x": 1}'),
        _with_data(_CLEAN, ', "x-score": Infinity'),
    ):
        assert envelope._decode_clean(suspicious, b"p-1", MODELS, None) is None
