"""Live's wiring: what it consumes, publishes and serves."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_live import handlers, http, repository

DEFINITION = ServiceDefinition(
    name="live",
    description=(
        "Creators' live rooms (直播间): one open session at a time, its cart (小黄车) fed from "
        "the showcase or usable offers, the product presented now; cart items follow the "
        "catalog, the offers and the policies in force on surface live (enforced in bulk)."
    ),
    handlers=handlers.make_handlers(repository.MongoLiveStore),
    publishes=["live.rooms", "compliance.reports"],
    setup=repository.setup,
    routes=http.routes,
)
