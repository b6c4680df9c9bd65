"""The dashboard's wiring: what it consumes and serves (a read model: it publishes nothing)."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_dashboard import handlers, http, repository

DEFINITION = ServiceDefinition(
    name="dashboard",
    description="The real-time dashboard (数据大屏): GMV, orders, refunds and commission per "
    "minute for creators, merchants, live sessions and products; policies and their "
    "enforcement; a web page that updates live.",
    handlers=handlers.make_handlers(repository.MongoBoard),
    acts_on=handlers.ACTS_ON,
    setup=repository.setup,
    routes=http.routes,
)
