"""Showcase's wiring: what it consumes, publishes and serves."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_showcase import handlers, http, repository

DEFINITION = ServiceDefinition(
    name="showcase",
    description=(
        "Creators' showcases (橱窗): ordered items that follow the catalog, the shops, the "
        "offers and the policies in force; policy enforcement in bulk."
    ),
    handlers=handlers.make_handlers(repository.MongoShowcaseStore),
    publishes=["showcase.items", "compliance.reports"],
    setup=repository.setup,
    routes=http.routes,
)
