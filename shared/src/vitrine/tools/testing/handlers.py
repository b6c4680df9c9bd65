"""Handler-tier test support (``pytest -m handlers``): run one batch of typed inputs through a
service's real handlers over its in-memory store, and build the upstream facts most services
consume (a listed product, an activated offer, a ruling in force) with one set of defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vitrine.contract.events import EventData, OfferActivated, PolicyInForce, ProductListed
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME, InMemoryUnitOfWork, incoming

__all__ = [
    "SUBJECT_FIELDS",
    "offer_activated",
    "policy_in_force",
    "product_listed",
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
