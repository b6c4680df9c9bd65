"""Compliance's wiring: what it consumes, publishes, serves and runs in the background."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_compliance import handlers, http, repository, scheduler

DEFINITION = ServiceDefinition(
    name="compliance",
    description=(
        "Owns platform policies: validates announcements, assesses their impact, publishes "
        "policy.in_force on schedule, collects enforcement reports, lifts retracted policies."
    ),
    handlers={
        "platform.policies": handlers.on_policies,
        "compliance.reports": handlers.on_reports,
        "showcase.items": handlers.on_items,
        "distribution.offers": handlers.on_offers,
        "catalog.products": handlers.on_products,
        "accounts.shops": handlers.on_shops,
    },
    publishes=["compliance.rulings"],
    setup=repository.setup,
    routes=http.routes,
    background=[scheduler.run],
)
