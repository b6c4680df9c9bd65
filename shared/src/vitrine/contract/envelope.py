"""The CloudEvents 1.0 envelope (structured JSON mode) and how raw Kafka records become events.

docs/CONTRACT.md: every message is one JSON object, key == ``subject``; anything that cannot be
trusted becomes an :class:`InvalidEvent` with a reason for the DLQ, never an exception.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)

from vitrine.contract.events.base import EventData, Id, dump
from vitrine.contract.ids import EVENT_ID_NAMESPACE, dedupe_key, output_event_id

__all__ = ["EVENT_ID_NAMESPACE", "CloudEvent", "Event", "InvalidEvent", "decode", "new_event"]

CONTENT_TYPE = "application/cloudevents+json"
#: Largest message a consumer accepts (bytes). Larger ones are dead-lettered as ``too_large``.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
#: How far in the future an event's ``time`` may be (producers' clocks drift a little); later
#: ones are dead-lettered as ``clock_skew``: event time drives decisions (DESIGN.md §6), so a
#: producer stamping the future could otherwise schedule, or back-date, what others decide.
MAX_CLOCK_SKEW = timedelta(minutes=5)

D = TypeVar("D", bound=EventData)


class CloudEvent(BaseModel):
    """A CloudEvent as it travels on every topic; ``data`` is validated separately per type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    subject: Id
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: Annotated[str, StringConstraints(max_length=128)] | None = None
    causationid: Annotated[str, StringConstraints(max_length=128)] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        """Wire form: compact UTF-8 JSON, ``None`` extensions omitted."""
        return self.model_dump_json(exclude_none=True).encode()

    @property
    def dedupe_key(self) -> str:
        """Consumers dedupe on (source, id) per subject: :func:`vitrine.contract.ids.dedupe_key`."""
        return dedupe_key(self.source, self.id, self.subject)

    @property
    def identity(self) -> tuple[str, str, str]:
        """``(source, id, subject)``: this event as a cause of output ids."""
        return (self.source, self.id, self.subject)


@dataclass(frozen=True, slots=True)
class Event(Generic[D]):
    """A valid incoming event: its envelope and its typed, validated ``data``."""

    envelope: CloudEvent
    data: D

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def subject(self) -> str:
        return self.envelope.subject

    @property
    def time(self) -> datetime:
        return self.envelope.time

    @property
    def correlationid(self) -> str:
        return self.envelope.correlationid or self.envelope.id


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """Why a record cannot be processed: ``reason`` is a stable code, ``error`` the detail."""

    reason: str
    error: str


def new_event(
    type: str,
    subject: str,
    data: EventData,
    *,
    source: str,
    cause: Event[Any] | CloudEvent | None = None,
    seq: int | str = 0,
    time: datetime | None = None,
) -> CloudEvent:
    """Build an output event.

    With a ``cause`` the id is :func:`~vitrine.contract.ids.output_event_id` of this event's
    source, type and subject, the cause and ``seq`` (the n-th such event of that cause, or a
    caller's key), so reprocessing a redelivered cause produces the same ids and downstream
    consumers dedupe them; correlation id propagates and causation id points at the cause.
    """
    envelope = cause.envelope if isinstance(cause, Event) else cause
    if envelope is not None:
        event_id = output_event_id(
            source=source, type=type, subject=subject, cause=envelope.identity, key=seq
        )
        correlation = envelope.correlationid or envelope.id
        causation: str | None = envelope.id
    else:
        event_id = str(uuid.uuid4())
        correlation, causation = event_id, None
    return CloudEvent(
        specversion="1.0",
        id=event_id,
        source=source,
        type=type,
        subject=subject,
        time=time or datetime.now(UTC),
        correlationid=correlation,
        causationid=causation,
        data=dump(data),
    )


class _ForbiddenKeyError(ValueError):
    """A JSON object key that MongoDB could read as an operator or a path."""


def _checked_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: refuse ``$x``, ``a.b`` and NUL keys while parsing (one pass)."""
    for key, _ in pairs:
        if key.startswith("$") or "." in key or "\x00" in key:
            raise _ForbiddenKeyError(key)
    return dict(pairs)


class _NotJsonError(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json module reads them, JSON has none."""


def _refuse_constant(name: str) -> Any:
    """``json.loads`` hook, called only for those three tokens, so valid JSON pays nothing."""
    raise _NotJsonError(f"{name} is not JSON")


@functools.cache
def _typed(model: type[EventData]) -> type[CloudEvent]:
    """The envelope with ``data`` typed as ``model``: one validation pass over the raw bytes."""
    return create_model(f"{model.__name__}CloudEvent", __base__=CloudEvent, data=(model, ...))


def decode(
    value: bytes | None,
    key: bytes | None,
    data_models: dict[str, type[EventData]],
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    latest: datetime | None = None,
) -> Event[Any] | InvalidEvent:
    """Turn one Kafka record into an :class:`Event`, or say why it cannot be one.

    ``data_models`` maps the types allowed on this topic to their data models. ``latest`` is
    the latest ``time`` accepted (the consumer's wall clock + :data:`MAX_CLOCK_SKEW`, computed
    once per batch): a later event is ``clock_skew``. ``None`` skips that check.
    """
    if value is None:
        return InvalidEvent("empty", "record has no value (tombstone)")
    if len(value) > max_bytes:
        return InvalidEvent("too_large", f"{len(value)} bytes > limit {max_bytes}")
    fast = _decode_clean(value, key, data_models, latest)
    if fast is not None:
        return fast
    try:
        raw = json.loads(value, object_pairs_hook=_checked_object, parse_constant=_refuse_constant)
    except _ForbiddenKeyError as exc:
        return InvalidEvent("forbidden_key", f"key {str(exc)[:80]!r} is not allowed")
    except (UnicodeDecodeError, json.JSONDecodeError, _NotJsonError) as exc:
        return InvalidEvent("not_json", str(exc)[:500])
    except RecursionError:
        return InvalidEvent("not_json", "nesting too deep")
    if not isinstance(raw, dict):
        return InvalidEvent("not_cloudevent", f"expected a JSON object, got {type(raw).__name__}")
    model = data_models.get(raw["type"]) if isinstance(raw.get("type"), str) else None
    if model is not None and isinstance(raw.get("data"), dict):
        # The usual case, in one pass: envelope and data validated together, strictly, in
        # JSON mode. Whatever fails here is classified by the step-by-step checks below.
        try:
            typed = _typed(model).model_validate_json(value, strict=True)
        except ValidationError:
            pass
        else:
            if key is not None and key.decode("utf-8", "replace") == typed.subject:
                if latest is not None and typed.time > latest:
                    return _skewed(typed.time, latest)
                return Event(typed, typed.data)
    try:
        envelope = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        return InvalidEvent("not_cloudevent", _errors(exc))
    model = data_models.get(envelope.type)
    if model is None:
        return InvalidEvent("unknown_type", f"type {envelope.type!r} is not allowed on this topic")
    if key is None or key.decode("utf-8", "replace") != envelope.subject:
        return InvalidEvent(
            "key_mismatch",
            f"key {key[:80]!r} != subject {envelope.subject!r}" if key else "record has no key",
        )
    try:
        # JSON-mode strict validation: numbers stay numbers, RFC 3339 strings become datetimes.
        data = model.model_validate_json(json.dumps(envelope.data), strict=True)
    except ValidationError as exc:
        return InvalidEvent("invalid_data", _errors(exc))
    if latest is not None and envelope.time > latest:
        return _skewed(envelope.time, latest)
    return Event(envelope, data)


#: The first ``"type": "<name>"`` pair in the bytes: the envelope's type in every event our
#: producers write (a nested one is caught by comparing with the validated envelope's).
_FIRST_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]{1,128})"')
#: The bytes that say where keys are: quotes, colons, and the two characters a key must not
#: hold (``$`` first, ``.`` anywhere); everything else is deleted before the search below.
_KEY_MARKS = bytes(b for b in range(256) if b not in b'":.$')
#: In that skeleton, a ``$`` or ``.`` followed by the rest of a string and a colon: a key that
#: may be forbidden (values are never followed by a colon). A false alarm costs one careful pass.
_SUSPECT_KEY = re.compile(rb'[.$][^"]*":')


def _maybe_forbidden_key(value: bytes) -> bool:
    """Could a key in ``value`` be one :func:`_checked_object` refuses? Never wrong when it
    says no: with no escaped quote, every ``"`` delimits a string, and with no ``\\u00``
    escape, ``$``, ``.`` and NUL can only be written as themselves (a raw NUL is not JSON)."""
    if b'\\"' in value or b"\\u00" in value:
        return True
    return _SUSPECT_KEY.search(value.translate(None, _KEY_MARKS)) is not None


def _decode_clean(
    value: bytes,
    key: bytes | None,
    data_models: dict[str, type[EventData]],
    latest: datetime | None,
) -> Event[Any] | InvalidEvent | None:
    """The usual record in ONE parse (pydantic's, in Rust): an :class:`Event`, or
    ``clock_skew``; ``None`` when anything is unusual, for :func:`decode`'s careful path.

    Only taken when the careful path would accept the record too: no key that could be
    forbidden, no ``NaN``/``Infinity`` token (pydantic reads them, JSON has none), the type
    named first is the envelope's, the key is the subject. Against ``json.loads`` with its
    per-object hook then the typed validation: ~15 % less time per record, and no Python
    dict or list built per JSON object (less for the garbage collector).
    """
    found = _FIRST_TYPE.search(value)
    if found is None or key is None:
        return None
    name = found.group(1).decode("utf-8", "replace")
    model = data_models.get(name)
    if model is None or b"NaN" in value or b"Infinity" in value or _maybe_forbidden_key(value):
        return None
    try:
        typed = _typed(model).model_validate_json(value, strict=True)
    except ValidationError:
        return None
    if typed.type != name or key.decode("utf-8", "replace") != typed.subject:
        return None
    if latest is not None and typed.time > latest:
        return _skewed(typed.time, latest)
    return Event(typed, typed.data)


def _skewed(time: datetime, latest: datetime) -> InvalidEvent:
    ahead = time - (latest - MAX_CLOCK_SKEW)
    return InvalidEvent(
        "clock_skew", f"time {time.isoformat()} is {ahead} ahead of the consumer's clock"
    )


def latest_accepted(now: datetime | None = None) -> datetime:
    """The latest event ``time`` a consumer accepts now (its wall clock + the skew allowed)."""
    return (now or datetime.now(UTC)) + MAX_CLOCK_SKEW


def _errors(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)[:10]
    ]
    return "; ".join(parts)[:1000]
