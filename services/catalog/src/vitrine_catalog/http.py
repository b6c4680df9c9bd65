"""Catalog's read-only HTTP queries."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.http import not_found
from vitrine.runtime.messaging.inbox import APPLIED_FIELD
from vitrine.runtime.service import Runtime
from vitrine_catalog import repository
from vitrine_catalog.domain import status_of


def _limit(raw: str | None, default: int = 100, most: int = 1000) -> int:
    """``?limit=`` clamped to 1..most; junk means the default (not a 500, not ``limit(-n)``)."""
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    return max(1, min(value, most))


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def product(request: Request) -> Response:
        """One product: live version, pending draft, ``status`` with the WeChat shop
        ``status_code`` beside it, and the draft's ``audit_state``."""
        doc = (
            await runtime()
            .db[repository.PRODUCTS]
            .find_one({"_id": request.path_params["product_id"]}, {APPLIED_FIELD: 0})
        )
        if doc is None:
            return not_found()
        product = repository.to_product(doc)
        doc["product_id"] = doc.pop("_id")
        # Computed from the state, not read from the stored copy (older documents lack it).
        doc.update(status_of(product))
        doc["draft_version"] = product.draft.number if product.draft else None
        return JSONResponse(doc)

    async def merchant_products(request: Request) -> Response:
        """A merchant's products (newest first is not tracked; ordered by id), paginated."""
        limit = _limit(request.query_params.get("limit"))
        cursor = (
            runtime()
            .db[repository.PRODUCTS]
            .find({"merchant_id": request.path_params["merchant_id"]})
            .sort("_id", 1)
            .limit(limit)
        )
        items = []
        async for doc in cursor:
            items.append(
                {
                    "product_id": doc["_id"],
                    "listed": doc["listed"],
                    "status": doc.get("status"),
                    "live_version": (doc.get("live") or {}).get("number"),
                    "draft_version": (doc.get("draft") or {}).get("number"),
                }
            )
        return JSONResponse({"merchant_id": request.path_params["merchant_id"], "products": items})

    return [
        Route("/products/{product_id}", product),
        Route("/merchants/{merchant_id}/products", merchant_products),
    ]
