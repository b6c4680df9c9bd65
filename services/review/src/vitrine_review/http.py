"""Review's read-only HTTP queries: the manual queue and a product's audit trail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.http import not_found
from vitrine.runtime.service import Runtime
from vitrine_review import repository

_MAX_LIMIT = 1000


def _limit(request: Request, default: int = 100) -> int:
    try:
        value = int(request.query_params.get("limit", default))
    except ValueError:
        value = default
    return max(1, min(value, _MAX_LIMIT))


def _json(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in doc.items()}


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def queue(request: Request) -> Response:
        """Escalations waiting for a reviewer, oldest first."""
        cursor = (
            runtime()
            .db[repository.QUEUE]
            .find({}, {"_id": 0})
            .sort([("escalated_at", 1), ("_id", 1)])
            .limit(_limit(request))
        )
        items = [_json(doc) async for doc in cursor]
        return JSONResponse({"items": items, "count": len(items)})

    async def decisions(request: Request) -> Response:
        """Every decision about one product, in the order they were taken."""
        pid = request.path_params["product_id"]
        cursor = (
            runtime()
            .db[repository.DECISIONS]
            .find({"product_id": pid})
            .sort("n", 1)
            .limit(_limit(request, _MAX_LIMIT))
        )
        items = []
        async for doc in cursor:
            doc["decision_id"] = doc.pop("_id")
            items.append(_json(doc))
        if not items:
            return not_found(product_id=pid)
        return JSONResponse({"product_id": pid, "decisions": items})

    return [
        Route("/queue", queue),
        Route("/products/{product_id}/decisions", decisions),
    ]
