"""Catalog's own settings (environment: ``VITRINE_CATALOG_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CatalogConfig(BaseSettings):
    """How long a review verdict waits for its submission (README "Event time")."""

    model_config = SettingsConfigDict(env_prefix="VITRINE_CATALOG_", extra="ignore", frozen=True)

    #: A verdict on a version not submitted yet is held until the submissions topic's event
    #: time passes the verdict's ``time`` + this many hours, then ignored ``stale_decision``.
    verdict_wait_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    @property
    def verdict_wait(self) -> timedelta:
        return timedelta(hours=self.verdict_wait_hours)
