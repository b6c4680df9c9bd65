"""The in-memory unit of work: production ids, a fixed clock, typed outputs, no database."""

from __future__ import annotations

import pytest

from vitrine.contract.events import ProductDelisted, ProductWithdrawn
from vitrine.runtime.messaging.unit_of_work import (
    FIXED_TIME,
    InMemoryUnitOfWork,
    UnitOfWork,
    incoming,
)

WITHDRAWN = ProductWithdrawn(product_id="p1", merchant_id="m1")
DELISTED = ProductDelisted(product_id="p1", merchant_id="m1", reason="withdrawn")


def test_emit_derives_ids_like_production_and_returns_typed_models() -> None:
    cause = incoming(WITHDRAWN, "p1")
    uow = InMemoryUnitOfWork(service="catalog")
    real = UnitOfWork(db=uow.db, session=None, service="catalog", clock=uow.clock)
    assert uow.emit("catalog.products", DELISTED, subject="p1", cause=cause).id == (
        real.emit("catalog.products", DELISTED, subject="p1", cause=cause).id
    )
    assert uow.events() == [DELISTED]
    assert uow.events("catalog.products", "product.delisted") == [DELISTED]
    assert uow.events("review.decisions") == []
    assert uow.emitted[0][1].time == FIXED_TIME


def test_clock_is_fixed_until_advanced() -> None:
    uow = InMemoryUnitOfWork()
    assert uow.now() == uow.now() == FIXED_TIME
    uow.advance(hours=2)
    assert (uow.now() - FIXED_TIME).total_seconds() == 7200


def test_the_database_refuses_every_use() -> None:
    uow = InMemoryUnitOfWork()
    with pytest.raises(RuntimeError, match="in-memory repository"):
        uow.db["products"]
    with pytest.raises(RuntimeError, match="in-memory repository"):
        _ = uow.db.list_collection_names


def test_incoming_is_a_valid_typed_event() -> None:
    event = incoming(WITHDRAWN, "p1", id="e-1")
    assert (event.type, event.subject, event.id, event.data) == (
        "product.withdrawn",
        "p1",
        "e-1",
        WITHDRAWN,
    )
