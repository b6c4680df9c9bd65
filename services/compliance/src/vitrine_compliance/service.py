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
    handlers=handlers.make_handlers(repository.MongoStore),
    publishes=["compliance.rulings"],
    setup=repository.setup,
    routes=http.routes,
    background=[scheduler.run],
)
