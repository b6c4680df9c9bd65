"""Distribution's wiring: what it consumes, publishes and serves."""

from __future__ import annotations

from vitrine.runtime.service import ServiceDefinition
from vitrine_distribution import handlers, http, repository
from vitrine_distribution.config import DistributionConfig


def make_definition(config: DistributionConfig | None = None) -> ServiceDefinition:
    """The distribution service with the given wait for offers (default: the environment)."""
    config = config or DistributionConfig()
    return ServiceDefinition(
        name="distribution",
        description=(
            "The selection center: merchants' commission offers (rates over time, holds by "
            "product and policy) and an exact per-order commission ledger per creator and "
            "merchant."
        ),
        handlers=handlers.make_handlers(
            repository.MongoStore, offer_wait=config.offer_wait, product_wait=config.product_wait
        ),
        publishes=["distribution.offers", "distribution.commissions", "compliance.reports"],
        setup=repository.setup,
        routes=http.routes,
        # Distribution reads every catalog event and ruling but acts on these: the rest need
        # no inbox entries.
        acts_on={
            "catalog.products": handlers.CATALOG_TYPES,
            "compliance.rulings": handlers.RULING_TYPES,
        },
    )


DEFINITION = make_definition()
