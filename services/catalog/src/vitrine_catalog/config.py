"""Catalog's own settings (environment: ``VITRINE_CATALOG_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CatalogConfig(BaseSettings):
    """How long a review verdict waits for its submission (README "Event time"), and how many
    of the products it wrote last catalog keeps in memory."""

    model_config = SettingsConfigDict(env_prefix="VITRINE_CATALOG_", extra="ignore", frozen=True)

    #: A verdict on a version not submitted yet is held until the submissions topic's event
    #: time passes the verdict's ``time`` + this many hours, then ignored ``stale_decision``.
    verdict_wait_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    #: MiB of the products this process wrote last, kept (as BSON, ~600 bytes each) so that a
    #: verdict arriving soon after its submission is applied without reading the product
    #: back (``vitrine.runtime.recent``). 0: read every product from the database.
    recent_products_mib: float = Field(default=24.0, ge=0, le=4096)

    @property
    def recent_products_bytes(self) -> int:
        return int(self.recent_products_mib * 1024 * 1024)

    @property
    def verdict_wait(self) -> timedelta:
        return timedelta(hours=self.verdict_wait_hours)
