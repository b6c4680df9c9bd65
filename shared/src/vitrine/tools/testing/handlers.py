"""Handler-tier test support (``pytest -m handlers``): run one batch of typed inputs through a
service's real handlers over its in-memory store, and build the upstream facts most services
consume (a listed product, an activated offer, a ruling in force) with one set of defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vitrine.contract.events import (
    EventData,
    OfferActivated,
    PolicyInForce,
    ProductListed,
    ProductReviewRequested,
    ProductSubmitted,
)
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME, InMemoryUnitOfWork, incoming
from vitrine.tools.testing.probe import JSON, cloud_event

__all__ = [
    "SUBJECT_FIELDS",
    "as_cloud_event",
    "offer_activated",
    "policy_in_force",
    "product_listed",
    "product_submitted",
    "review_requested",
    "run_batch",
    "subject_of",
]

#: The id fields an input's subject (its Kafka key) is taken from, first present first.
SUBJECT_FIELDS: tuple[str, ...] = (
    "creator_id",
    "account_id",
    "offer_id",
    "policy_id",
    "product_id",
)


def subject_of(data: EventData, fields: Sequence[str] = SUBJECT_FIELDS) -> str:
    """The subject an upstream service would key ``data`` by: its first id field present."""
    for name in fields:
        if isinstance(value := getattr(data, name, None), str):
            return value
    raise AssertionError(f"no subject among {fields} in {data!r}")


async def run_batch(
    handlers: Mapping[str, BatchHandler],
    topic: str,
    *data: EventData,
    service: str,
    subject: str | None = None,
    fields: Sequence[str] = SUBJECT_FIELDS,
) -> InMemoryUnitOfWork:
    """One batch of ``data`` on ``topic`` through ``handlers`` in a fresh in-memory unit of
    work (each keyed ``subject``, else by :func:`subject_of`); the unit of work, to read what
    was emitted."""
    uow = InMemoryUnitOfWork(service=service)
    events = [incoming(d, subject or subject_of(d, fields)) for d in data]
    await handlers[topic](events, uow)
    return uow


def product_listed(
    pid: str = "p1", merchant: str = "m1", kind: str = "channels_shop", **over: Any
) -> ProductListed:
    """``product.listed`` of a one-SKU tea cup from a ``kind`` source (``over``: other fields)."""
    return ProductListed.model_validate(
        {
            "product_id": pid,
            "merchant_id": merchant,
            "version": 1,
            "source": {"kind": kind},
            "title": "Tea cup",
            "price_fen": 1990,
            "category": "home",
            "images": ["https://img.example/1.jpg"],
            "skus": [{"sku_id": "default", "price_fen": 1990, "stock": 5}],
            **over,
        }
    )


def offer_activated(
    offer: str = "o1", plan: str = "general", creators: Sequence[str] = (), **over: Any
) -> OfferActivated:
    """``offer.activated`` of product p1 by m1 at 10 %, effective at the fixed test time."""
    return OfferActivated.model_validate(
        {
            "offer_id": offer,
            "product_id": "p1",
            "merchant_id": "m1",
            "commission_bps": 1000,
            "plan": plan,
            "creator_ids": list(creators),
            "effective_at": FIXED_TIME,
            **over,
        }
    )


def policy_in_force(
    policy_id: str, phase: str, rules: Sequence[Mapping[str, Any]]
) -> PolicyInForce:
    """``policy.in_force`` of ``rules`` reaching ``phase`` at the fixed test time."""
    return PolicyInForce.model_validate(
        {"policy_id": policy_id, "phase": phase, "rules": list(rules), "effective_at": FIXED_TIME}
    )


#: The draft every product test starts from: one tea cup, submitted by m-1.
_DRAFT: dict[str, Any] = {
    "title": "Tea cup",
    "category": "kitchen",
    "images": ["https://img.example/1.jpg"],
    "price_fen": 1990,
    "stock": 10,
    "source": {"kind": "channels_shop"},
}


def product_submitted(pid: str = "p-1", merchant: str = "m-1", **over: Any) -> ProductSubmitted:
    """``product.submitted`` of a tea cup at 19.90 with 10 in stock (``over``: other fields)."""
    return ProductSubmitted.model_validate(
        {"product_id": pid, "merchant_id": merchant, **_DRAFT, **over}
    )


def review_requested(pid: str = "p-1", version: int = 1, **over: Any) -> ProductReviewRequested:
    """``product.review_requested`` of draft ``version`` of m-1's tea cup at 10.00, no stock
    given (``over``: other fields)."""
    draft = {k: v for k, v in _DRAFT.items() if k != "stock"}
    return ProductReviewRequested.model_validate(
        {
            "product_id": pid,
            "merchant_id": "m-1",
            "version": version,
            **draft,
            "price_fen": 1000,
            **over,
        }
    )


def as_cloud_event(data: EventData, *, subject: str | None = None, source: str = "/tests") -> JSON:
    """``data`` as the CloudEvent an upstream service would publish (keyed ``subject``, else
    by :func:`subject_of`), for stack tests: only the fields set, as JSON."""
    return cloud_event(
        data.event_type,
        subject or subject_of(data),
        data.model_dump(mode="json", exclude_unset=True),
        source=source,
    )
