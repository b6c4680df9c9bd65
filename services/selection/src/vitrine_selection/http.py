"""Selection's read-only HTTP queries: ``GET /offers``, ``GET /offers/{offer_id}``,
``GET /suppliers``. Malformed parameters get a 400 with a JSON message, never a 500.

``GET /offers`` and ``GET /suppliers`` are answered from the in-process index
(``index.py``, kept by ``feed.py``), 503 while it loads; ``GET /offers/{offer_id}`` reads
the offer's whole document from MongoDB (one lookup by ``_id``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.http import jsonable, not_found
from vitrine.runtime.service import Runtime
from vitrine_selection import domain, feed, repository, search
from vitrine_selection.search import BadQuery

#: Time ``GET /offers`` spends answering from the index (eligibility, page, rows): the
#: service's own work, apart from HTTP and from waiting for the event loop or a CPU.
QUERY_SECONDS = Histogram(
    "vitrine_selection_query_seconds",
    "Time to answer one GET /offers from the in-process index",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)

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
HIDDEN = ("_id", "tokens", "seen_at", "due_at", "published_ms", "policy_ids", "sales", "rev")


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


def unavailable() -> Response:
    return JSONResponse(
        {"error": "unavailable", "message": "the offer index is loading; retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def offers(request: Request) -> Response:
        """Visible offers matching the query, one page, with the cursor of the next."""
        try:
            query = search.parse_query(_params(request))
        except BadQuery as exc:
            return bad_request(str(exc))
        index = feed.ready_index(runtime().guard)
        if index is None:
            return unavailable()
        started = time.perf_counter()
        eligibility = None
        if query.creator_id is not None and query.surface is not None:
            eligibility = domain.eligibility_terms(
                query.creator_id,
                query.surface,
                index.account(query.creator_id),
                index.policies_now(),
            )
        page = index.page(query, eligibility)
        next_cursor = search.encode_cursor(query, *page.after) if page.after else None
        QUERY_SECONDS.observe(time.perf_counter() - started)
        return JSONResponse(
            {
                "offers": jsonable(page.rows),
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
            return not_found()
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
        return JSONResponse(jsonable(body))

    async def suppliers(request: Request) -> Response:
        """Visible offers grouped by source kind and supplier platform: counts, rate ranges."""
        if request.query_params:
            return bad_request("GET /suppliers takes no parameters")
        index = feed.ready_index(runtime().guard)
        if index is None:
            return unavailable()
        rows = []
        for g in index.suppliers():
            kind, _, platform = str(g["supplier"]).partition(":")
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
