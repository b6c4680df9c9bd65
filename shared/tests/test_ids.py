"""Event identity: one id per event (DESIGN.md §6), minted in one place, stable under replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vitrine.contract.envelope import CloudEvent, Event, decode
from vitrine.contract.events import ProductDelisted
from vitrine.contract.ids import dedupe_key, output_event_id
from vitrine.contract.topics import TOPICS
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.tools.testing.probe import cloud_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Characters that break naive encodings: separators, digits, quotes, escapes, a lone surrogate.
TRICKY = st.text(alphabet='ab|:0 1()nk%"\\\ud800', max_size=6)
IDS = st.text(alphabet="abAB09._:-", min_size=1, max_size=6)  # the Id pattern's alphabet
CAUSES = st.one_of(
    st.tuples(TRICKY, TRICKY, IDS), st.tuples(st.just("schedule"), TRICKY), st.tuples(TRICKY)
)
INPUTS = st.fixed_dictionaries(
    {
        "source": TRICKY,
        "type": TRICKY,
        "subject": IDS,
        "cause": CAUSES,
        "key": st.one_of(st.integers(0, 20), TRICKY),
    }
)


@given(INPUTS, INPUTS)
def test_distinct_inputs_give_distinct_ids(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (output_event_id(**a) == output_event_id(**b)) == (a == b)


def _fields(a: dict[str, Any]) -> list[Any]:
    return [a["source"], a["type"], a["subject"], *a["cause"], a["key"]]


def _inputs(fields: list[Any], cause_len: int) -> dict[str, Any]:
    source, type_, subject, *rest = fields
    return {
        "source": source,
        "type": type_,
        "subject": subject,
        "cause": tuple(rest[:cause_len]),
        "key": rest[cause_len],
    }


@given(INPUTS, st.integers(0, 5), st.integers(1, 6), st.booleans())
def test_moving_text_across_a_boundary_changes_the_id(
    a: dict[str, Any], at: int, n: int, to_the_right: bool
) -> None:
    """The near-misses a naive join gets wrong: ("a|", "b") against ("a", "|b"), and the like."""
    fields = _fields(a)
    i = at % (len(fields) - 1)
    left, right = fields[i], fields[i + 1]
    if not (isinstance(left, str) and isinstance(right, str)):
        return
    if to_the_right and left:
        left, right = left[:-n], left[-n:] + right
    elif right:
        left, right = left + right[:n], right[n:]
    else:
        return
    b = _inputs([*fields[:i], left, right, *fields[i + 2 :]], len(a["cause"]))
    assert output_event_id(**a) != output_event_id(**b)


@given(INPUTS)
def test_an_output_id_is_a_deterministic_uuid5(a: dict[str, Any]) -> None:
    minted = output_event_id(**a)
    assert minted == output_event_id(**dict(a))
    assert uuid.UUID(minted).version == 5


def test_ordinal_and_key_of_the_same_spelling_differ() -> None:
    base: dict[str, Any] = {"source": "/s", "type": "t", "subject": "p", "cause": ("a", "b", "p")}
    assert output_event_id(**base, key=0) != output_event_id(**base, key="0")


@given(st.tuples(TRICKY, TRICKY, IDS), st.tuples(TRICKY, TRICKY, IDS))
def test_distinct_inputs_have_distinct_dedupe_keys(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    assert (dedupe_key(*a) == dedupe_key(*b)) == (a == b)


def test_a_dedupe_key_reads_as_source_id_subject() -> None:
    assert dedupe_key("/merchants/erp-7", "0b4c", "p-1") == "/merchants/erp-7 0b4c p-1"
    # a space in a source cannot move the boundary between source and id
    assert dedupe_key("/a b", "c", "p") != dedupe_key("/a", "b c", "p")


# --- the unit of work mints through it ----------------------------------------------------------


def _submitted(pid: str, event_id: str) -> Event[Any]:
    raw = cloud_event(
        "product.submitted",
        pid,
        {
            "product_id": pid,
            "merchant_id": "m-1",
            "title": "Teapot",
            "category": "kitchen",
            "images": ["https://img.example/1.jpg"],
            "price_fen": 1990,
            "stock": 1,
            "source": {"kind": "channels_shop"},
            "attributes": {},
        },
        source="/merchants/erp-7",
        id=event_id,
    )
    decoded = decode(CloudEvent.model_validate(raw).to_json(), pid.encode(), _MODELS)
    assert isinstance(decoded, Event), decoded
    return decoded


_MODELS = TOPICS["merchants.products"].types


def _uow() -> UnitOfWork:
    return UnitOfWork(db=None, session=None, service="catalog", clock=lambda: T0)  # type: ignore[arg-type]


def _delisted(pid: str) -> ProductDelisted:
    return ProductDelisted(product_id=pid, reason="withdrawn")


def _emit(uow: UnitOfWork, cause: Event[Any]) -> str:
    data = _delisted(cause.subject)
    return uow.emit("catalog.products", data, subject=cause.subject, cause=cause).id


def test_a_reused_upstream_id_on_two_products_gives_two_output_ids() -> None:
    first, second = _submitted("p-1", "dup-1"), _submitted("p-2", "dup-1")
    assert first.envelope.dedupe_key != second.envelope.dedupe_key
    uow = _uow()
    assert _emit(uow, first) != _emit(uow, second)


def test_re_consuming_a_cause_mints_the_same_ids_whatever_the_batch() -> None:
    first, second = _submitted("p-1", "dup-1"), _submitted("p-2", "dup-1")
    together = _uow()
    ids = [_emit(together, first), _emit(together, second)]
    # replayed in other batches, in the other order: the same ids
    assert _emit(_uow(), second) == ids[1]
    assert _emit(_uow(), first) == ids[0]


def test_repeats_of_one_type_and_subject_are_numbered_and_a_key_overrides() -> None:
    cause = _submitted("p-1", "e-1")
    uow = _uow()
    a, b = _emit(uow, cause), _emit(uow, cause)
    assert a != b
    data = _delisted("p-1")
    keyed = uow.emit("catalog.products", data, subject="p-1", cause=cause, key="item-9")
    again = _uow().emit("catalog.products", data, subject="p-1", cause=cause, key="item-9")
    assert keyed.id == again.id and keyed.id not in (a, b)
