"""Distribution's own settings (environment: ``VITRINE_DISTRIBUTION_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DistributionConfig(BaseSettings):
    """How long an order waits for its offer (README "Event time")."""

    model_config = SettingsConfigDict(
        env_prefix="VITRINE_DISTRIBUTION_", extra="ignore", frozen=True
    )

    #: An ``order.paid`` naming an offer not consumed yet is held until the offers topic's
    #: event time passes ``paid_at`` + this many hours, then refused ``offer_unknown``.
    offer_wait_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    #: An offer command naming a product not consumed yet waits for its ``product.listed``
    #: until the catalog topic's event time passes its ``time`` + this many hours. 0 (the
    #: default): refused ``product_not_listed`` at once — prompt answers to merchants, at the
    #: cost of replay-exactness for an offer consumed before its product (README).
    product_wait_hours: float = Field(default=0.0, ge=0, le=24 * 90)

    @property
    def product_wait(self) -> timedelta:
        return timedelta(hours=self.product_wait_hours)

    @property
    def offer_wait(self) -> timedelta:
        return timedelta(hours=self.offer_wait_hours)
