"""Catalog's wiring: what it consumes, publishes and serves."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_catalog import handlers, http, repository
from vitrine_catalog.config import CatalogConfig

DEFINITION = ServiceDefinition(
    name="catalog",
    description=(
        "System of record for products: live versions, drafts under review, SKUs and stock,"
        " listing and platform delisting."
    ),
    handlers=handlers.make_handlers(
        repository.MongoProducts, verdict_wait=CatalogConfig().verdict_wait
    ),
    publishes=["catalog.products"],
    # Products record the events they applied (handlers.py): no inbox entry per event.
    dedupes_in_aggregate=frozenset({"merchants.products", "review.decisions", "platform.actions"}),
    setup=repository.setup,
    routes=http.routes,
)
