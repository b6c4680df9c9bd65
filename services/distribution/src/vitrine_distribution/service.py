"""Distribution's wiring: what it consumes, publishes and serves."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_distribution import handlers, http, repository

DEFINITION = ServiceDefinition(
    name="distribution",
    description=(
        "The selection center: merchants' commission offers (rates over time, holds by product "
        "and policy) and an exact per-order commission ledger per creator and merchant."
    ),
    handlers={
        "merchants.offers": handlers.apply_offer_commands,
        "catalog.products": handlers.apply_catalog,
        "accounts.shops": handlers.apply_shops,
        "compliance.rulings": handlers.apply_rulings,
        "orders.lifecycle": handlers.apply_orders,
    },
    publishes=["distribution.offers", "distribution.commissions", "compliance.reports"],
    setup=repository.setup,
    routes=http.routes,
)
