"""Selection's wiring: what it consumes, serves and runs in the background (publishes nothing)."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_selection import feed, handlers, http, refresher, repository

DEFINITION = ServiceDefinition(
    name="selection",
    description=(
        "The selection center (选品中心): one query-shaped document per offer (product, rate now "
        "and scheduled, 30-day sales, policy verdicts) for creators to browse and search."
    ),
    handlers=handlers.make_handlers(repository.MongoStore),
    publishes=[],
    setup=repository.setup,
    routes=http.routes,
    background=[feed.run, refresher.run],
    acts_on=handlers.ACTS_ON,
)
