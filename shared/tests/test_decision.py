"""The shared decision type: topics from the contract, refusals, ignores, emitting in order."""

from __future__ import annotations

import pytest

from vitrine.contract.envelope import CloudEvent
from vitrine.contract.events import (
    EventData,
    ProductDelisted,
    ProductRefused,
    Reason,
    ReviewApproved,
)
from vitrine.runtime.decision import Decision, Emit, topic_of


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, EventData]] = []

    def emit(
        self,
        topic: str,
        data: EventData,
        *,
        subject: str,
        cause: object,
        type: str | None = None,
        key: str | None = None,
    ) -> CloudEvent:
        self.calls.append((topic, subject, key, data))
        return None  # type: ignore[return-value]


DELISTED = ProductDelisted(product_id="p1", merchant_id="m1", reason="withdrawn")


def test_topic_defaults_to_the_contract_topic_of_the_model() -> None:
    assert Emit(DELISTED, "p1").topic == "catalog.products"
    assert Emit(ReviewApproved(product_id="p1", version=1), "p1").topic == "review.decisions"
    assert Emit(DELISTED, "p1", topic="elsewhere").topic == "elsewhere"
    assert topic_of(ProductRefused) == "catalog.products"


def test_a_model_on_no_topic_is_a_programming_error() -> None:
    class Orphan(EventData):
        event_type = "orphan.happened"

    with pytest.raises(ValueError, match="Orphan"):
        Emit(Orphan(), "x")


def test_changed_only_when_neither_refused_nor_ignored() -> None:
    reason = Reason(code="not_product_owner")
    refusal = ProductRefused(product_id="p1", merchant_id="m2", command="c", reasons=[reason])
    assert Decision("new", [Emit(DELISTED, "p1")]).changed
    ignored = Decision.ignore("old", "stale_decision")
    assert not ignored.changed and ignored.ignored == "stale_decision" and not ignored.emits
    refused = Decision.refuse("old", [reason], Emit(refusal, "p1"))
    assert not refused.changed and refused.refused == (reason,) and refused.events == [refusal]


def test_emit_stages_every_event_in_order_with_its_key() -> None:
    approved = ReviewApproved(product_id="p1", version=2)
    uow = _Recorder()
    Decision(None, [Emit(DELISTED, "p1"), Emit(approved, "p1", key="item-7")]).emit(uow, cause=None)
    assert uow.calls == [
        ("catalog.products", "p1", None, DELISTED),
        ("review.decisions", "p1", "item-7", approved),
    ]
