"""Review's wiring: what it consumes, publishes and serves."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_review import handlers, http, repository
from vitrine_review.config import ReviewConfig


def make_definition(config: ReviewConfig | None = None) -> ServiceDefinition:
    """The review service with the given rule lists (default: from the environment)."""
    return ServiceDefinition(
        name="review",
        description="Automated product review with a manual queue and an audit trail.",
        handlers=handlers.make_handlers(config or ReviewConfig(), repository.MongoCases),
        publishes=["review.decisions"],
        setup=repository.setup,
        routes=http.routes,
        # Review reads every catalog event but acts on two: the rest need no inbox entries.
        acts_on={"catalog.products": handlers.CATALOG_TYPES},
        # Cases record the events they applied (handlers.py): no inbox entry per event.
        dedupes_in_aggregate=frozenset({"catalog.products", "review.manual"}),
    )


DEFINITION = make_definition()
