"""``accounts.shops``: which shops an account (merchant or creator) holds."""

from __future__ import annotations

from typing import ClassVar

from vitrine.contract.events.base import EventData, Id, ShopKind


class ShopRegistered(EventData):
    """An account opened a shop. ``service_provider_built`` marks a provider-built mall (§5)."""

    event_type: ClassVar[str] = "shop.registered"

    account_id: Id
    shop_id: Id
    shop_kind: ShopKind
    service_provider_built: bool = False


class ShopClosed(EventData):
    event_type: ClassVar[str] = "shop.closed"

    account_id: Id
    shop_id: Id
