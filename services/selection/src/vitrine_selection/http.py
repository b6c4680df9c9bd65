"""Selection's read-only HTTP queries: ``GET /offers``, ``GET /offers/{offer_id}``,
``GET /suppliers``. Malformed parameters get a 400 with a JSON message, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.service import Runtime
from vitrine_selection import domain, repository, search
from vitrine_selection.search import BadQuery, OfferQuery

#: What a result row shows (the rest of the document is for filtering or rebuilding).
SUMMARY = {
    "_id": 0,
    "offer_id": 1,
    "product_id": 1,
    "merchant_id": 1,
    "title": 1,
    "category": 1,
    "images": 1,
    "price_fen": 1,
    "source_kind": 1,
    "source_platform": 1,
    "plan": 1,
    "rate_bps": 1,
    "next_rate_bps": 1,
    "next_rate_at": 1,
    "commission_fen": 1,
    "sales_orders_30d": 1,
    "sales_gmv_30d_fen": 1,
    "sold_out": 1,
    "published_at": 1,
}
HIDDEN = ("_id", "tokens", "seen_at", "due_at", "published_ms", "policy_ids", "sales")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def bad_request(message: str) -> Response:
    return JSONResponse({"error": "bad_request", "message": message}, status_code=400)


def _params(request: Request) -> dict[str, str]:
    items = request.query_params.multi_items()
    seen: dict[str, str] = {}
    for key, value in items:
        if key in seen:
            raise BadQuery(f"{key}: given more than once")
        seen[key] = value
    return seen


async def creator_filter(rt: Runtime, query: OfferQuery) -> dict[str, Any] | None:
    """The eligibility part of the filter, judged by the policy kernel for this creator."""
    if query.creator_id is None or query.surface is None:
        return None
    store = repository.MongoStore.of(rt.db, None)
    creator = (await store.accounts([query.creator_id])).get(query.creator_id)
    policies = (await store.policies()).values()
    return domain.eligibility(query.creator_id, query.surface, creator, policies)


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def offers(request: Request) -> Response:
        """Visible offers matching the query, one page, with the cursor of the next."""
        try:
            query = search.parse_query(_params(request))
        except BadQuery as exc:
            return bad_request(str(exc))
        rt = runtime()
        eligibility = await creator_filter(rt, query)
        flt = search.offer_filter(query, eligibility)
        cursor = (
            rt.db[repository.OFFERS]
            .find(flt, {**SUMMARY, search.SORT_FIELDS[query.sort]: 1})
            .sort(search.offer_sort(query))
            .limit(query.limit + 1)
        )
        rows = [row async for row in cursor]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = search.encode_cursor(
                query, last[search.SORT_FIELDS[query.sort]], last["offer_id"]
            )
        for row in rows:
            row.pop("published_ms", None)
        return JSONResponse(
            {
                "offers": _json(rows),
                "next_cursor": next_cursor,
                "sort": query.sort,
                "order": query.direction,
                "limit": query.limit,
            }
        )

    async def offer(request: Request) -> Response:
        """One offer with its product, rate schedule, sales and policy verdicts."""
        doc = (
            await runtime().db[repository.OFFERS].find_one({"_id": request.path_params["offer_id"]})
        )
        if doc is None or doc.get("status") is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        body = {k: v for k, v in doc.items() if k not in HIDDEN}
        body["rate_schedule"] = [
            {"commission_bps": r["bps"], "effective_at": r["effective_at"]}
            for r in body.pop("rates")
        ]
        body["product"] = {
            k: body.pop(k)
            for k in (
                "title",
                "category",
                "images",
                "price_fen",
                "source_kind",
                "source_platform",
                "listed",
                "sold_out",
            )
        }
        body["product"]["product_id"] = doc.get("product_id")
        body["sales_by_day"] = {
            d: {"orders": v[0], "gmv_fen": v[1]} for d, v in sorted(doc.get("sales", {}).items())
        }
        return JSONResponse(_json(body))

    async def suppliers(request: Request) -> Response:
        """Visible offers grouped by source kind and supplier platform: counts, rate ranges."""
        if request.query_params:
            return bad_request("GET /suppliers takes no parameters")
        pipeline: list[dict[str, Any]] = [
            {"$match": {"visible": True}},
            {
                "$group": {
                    "_id": "$supplier",
                    "offers": {"$sum": 1},
                    "min_rate_bps": {"$min": "$rate_bps"},
                    "max_rate_bps": {"$max": "$rate_bps"},
                }
            },
        ]
        groups = await (await runtime().db[repository.OFFERS].aggregate(pipeline)).to_list()
        rows = []
        for g in groups:
            if not g["_id"]:
                continue
            kind, _, platform = str(g["_id"]).partition(":")
            rows.append(
                {
                    "source_kind": kind,
                    "platform": platform or None,
                    "offers": g["offers"],
                    "min_rate_bps": g["min_rate_bps"],
                    "max_rate_bps": g["max_rate_bps"],
                }
            )
        rows.sort(key=lambda r: (-r["offers"], r["source_kind"], r["platform"] or ""))
        return JSONResponse({"suppliers": rows})

    return [
        Route("/offers", offers),
        Route("/offers/{offer_id}", offer),
        Route("/suppliers", suppliers),
    ]
