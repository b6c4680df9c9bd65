"""Showcase's read-only HTTP queries."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.http import not_found
from vitrine.runtime.service import Runtime
from vitrine_showcase import domain, repository

_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_TRUE = {"1", "true", "yes", "on"}


def _suspensions(holds: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for hold in sorted(holds):
        reason, policy_id = domain.hold_reason(hold)
        out.append({"reason": reason, "policy_id": policy_id} if policy_id else {"reason": reason})
    return out


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def showcase(request: Request) -> Response:
        """A creator's showcase in order: active items, plus suspended ones (with why) when
        ``include_suspended=true``. ``position`` is the item's place among all items."""
        creator_id = request.path_params["creator_id"]
        if not _ID.match(creator_id):
            return JSONResponse({"error": "invalid_creator_id"}, status_code=400)
        include = request.query_params.get("include_suspended", "").lower() in _TRUE
        cursor = (
            runtime()
            .db[repository.ITEMS]
            .find({"creator_id": creator_id})
            .sort("position", 1)
            .limit(domain.MAX_ITEMS * 2)
        )
        items: list[dict[str, Any]] = []
        total = active = 0
        async for doc in sorted_docs(cursor):
            total += 1
            holds = doc.get("holds") or []
            if not holds:
                active += 1
            elif not include:
                continue
            entry: dict[str, Any] = {
                "product_id": doc["product_id"],
                "position": doc["position"],
                "merchant_id": doc["merchant_id"],
                "source": doc["source"],
                "offer_id": doc.get("offer_id"),
                "active": not holds,
            }
            if holds:
                entry["suspensions"] = _suspensions(holds)
            items.append(entry)
        return JSONResponse(
            {
                "creator_id": creator_id,
                "items": items,
                "total": total,
                "active": active,
                "suspended": total - active,
            }
        )

    def projection(collection: str, param: str) -> Callable[[Request], Any]:
        async def one(request: Request) -> Response:
            """One document of a projection (what this service knows of others' facts)."""
            key = request.path_params[param]
            if not _ID.match(key):
                return JSONResponse({"error": f"invalid_{param}"}, status_code=400)
            doc = await runtime().db[collection].find_one({"_id": key})
            if doc is None:
                return not_found()
            doc[param] = doc.pop("_id")
            return JSONResponse(doc)

        return one

    async def policies(request: Request) -> Response:
        """Policies as this service holds them (``?in_force=true``: only those in force)."""
        only = request.query_params.get("in_force", "").lower() in _TRUE
        docs = await runtime().db[repository.POLICIES].find({}).sort("_id", 1).to_list(1000)
        out = []
        for doc in docs:
            policy = repository.to_policy(doc)
            if only and not policy.in_force:
                continue
            doc["policy_id"] = doc.pop("_id")
            doc["in_force"] = policy.in_force
            out.append(doc)
        return JSONResponse({"policies": out})

    return [
        Route("/creators/{creator_id}/showcase", showcase),
        Route("/products/{product_id}", projection(repository.PRODUCTS, "product_id")),
        Route("/accounts/{account_id}", projection(repository.ACCOUNTS, "account_id")),
        Route("/offers/{offer_id}", projection(repository.OFFERS, "offer_id")),
        Route("/policies", policies),
    ]


async def sorted_docs(cursor: Any) -> Any:
    """The cursor's documents by position (the sort is also done here: cheap, ≤ 500 items)."""
    docs = [doc async for doc in cursor]
    for doc in sorted(docs, key=lambda d: (d.get("position", 0), d["_id"])):
        yield doc
