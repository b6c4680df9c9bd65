"""Distribution's read-only HTTP queries (JSON; money in integer fen, times RFC 3339 UTC).

- ``GET /offers/{offer_id}[?at=<RFC 3339>]`` — an offer: status and holds, terms, the rate in
  force now and any scheduled cut, the full rate history, status history; with ``at``, the
  rate, activity and plan in force at that instant.
- ``GET /creators/{creator_id}/ledger[?limit=]`` — totals (accrued, cancelled, settled,
  pending, clawback, net) and the ledger entries of the creator's orders.
- ``GET /merchants/{merchant_id}/payable`` — what the merchant owes creators.
- ``GET /orders/{order_id}`` — one order's commission and its entries.
- ``GET /products/{product_id}``, ``GET /policies/{policy_id}``, ``GET /accounts/{account_id}``
  — distribution's projections (what it judges offers against).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.http import jsonable, not_found
from vitrine.runtime.mongo import Document
from vitrine.runtime.service import Runtime
from vitrine_distribution import repository
from vitrine_distribution.domain import Offer, rates, to_ms

MAX_LIMIT = 1000


def _not_found(what: str) -> Response:
    return not_found(what=what)


def _limit(request: Request, default: int = MAX_LIMIT) -> int:
    try:
        return max(1, min(int(request.query_params.get("limit", default)), MAX_LIMIT))
    except ValueError:
        return default


def _ledger(ledger: repository.Ledger) -> dict[str, Any]:
    return {
        "totals": {**ledger.totals.as_dict(), "net_fen": ledger.totals.net_fen},
        "accruals": ledger.accruals,
        "refusals": ledger.refusals,
        "orders": ledger.orders,
    }


def offer_view(offer: Offer, now: datetime, at: datetime | None) -> dict[str, Any]:
    scheduled = rates.scheduled(offer.rates, now)
    view: dict[str, Any] = {
        "offer_id": offer.offer_id,
        "product_id": offer.product_id,
        "merchant_id": offer.merchant_id,
        "status": offer.status,
        "holds": sorted(offer.holds),
        "plan": offer.plan,
        "creator_ids": list(offer.creator_ids),
        "commission_bps": offer.rate_at(now),
        "scheduled": (
            {"commission_bps": scheduled.commission_bps, "effective_at": scheduled.effective_at}
            if scheduled
            else None
        ),
        "rate_history": [
            {
                "commission_bps": r.commission_bps,
                "effective_at": r.effective_at,
                "published_at": r.published_at,
                "superseded_at": r.superseded_at,
                "kind": r.kind,
            }
            for r in offer.rates
        ],
        "terms_history": [
            {"at": t.at, "plan": t.plan, "creator_ids": list(t.creator_ids)} for t in offer.terms
        ],
        "status_history": [
            {"at": h.at, "status": h.status, "reason": h.reason, "policy_id": h.policy_id}
            for h in offer.history
        ],
    }
    if at is not None:
        view["at"] = {
            "instant": at,
            "commission_bps": offer.rate_at(at),
            "active": offer.active_at(at),
        }
    return jsonable(view)  # type: ignore[no-any-return]


def _entries(order: Document) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order["_id"],
            "offer_id": order.get("offer_id"),
            "merchant_id": order.get("merchant_id"),
            "creator_id": order.get("creator_id"),
            **entry,
        }
        for entry in order.get("entries", [])
    ]


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def offer(request: Request) -> Response:
        rt = runtime()
        doc = await rt.db[repository.OFFERS].find_one({"_id": request.path_params["offer_id"]})
        if doc is None:
            return _not_found("offer")
        at_param = request.query_params.get("at")
        at: datetime | None = None
        if at_param:
            try:
                at = to_ms(datetime.fromisoformat(at_param))
            except ValueError:
                return JSONResponse(
                    {"error": "bad_request", "message": "at: an RFC 3339 time with offset"},
                    status_code=400,
                )
        return JSONResponse(offer_view(repository.to_offer(doc), to_ms(rt.clock()), at))

    async def creator_ledger(request: Request) -> Response:
        creator_id = request.path_params["creator_id"]
        db = runtime().db
        ledger = await repository.ledger(db, "creator_id", creator_id)
        limit = _limit(request)
        cursor = (
            db[repository.ORDERS]
            .find({"creator_id": creator_id}, projection={"applied": 0})
            .sort("_id", 1)
        )
        orders = await cursor.limit(limit + 1).to_list(None)
        entries = [e for o in orders[:limit] for e in _entries(o)]
        body = {"creator_id": creator_id, **_ledger(ledger)}
        body.update(entries=entries, truncated=len(orders) > limit)
        return JSONResponse(jsonable(body))

    async def merchant_payable(request: Request) -> Response:
        merchant_id = request.path_params["merchant_id"]
        ledger = await repository.ledger(runtime().db, "merchant_id", merchant_id)
        t = ledger.totals
        return JSONResponse(
            {
                "merchant_id": merchant_id,
                # settled commission (net of clawbacks): due to creators
                "payable_fen": t.settled_fen,
                # accrued, not settled yet: may still shrink with refunds
                "pending_fen": t.pending_fen,
                # taken back from settled commission after refunds: owed back to the merchant
                "clawback_fen": t.clawback_fen,
                **_ledger(ledger),
            }
        )

    async def order(request: Request) -> Response:
        doc = (
            await runtime()
            .db[repository.ORDERS]
            .find_one({"_id": request.path_params["order_id"]}, projection={"applied": 0})
        )
        if doc is None:
            return _not_found("order")
        doc["order_id"] = doc.pop("_id")
        return JSONResponse(jsonable(doc))

    async def product(request: Request) -> Response:
        doc = (
            await runtime()
            .db[repository.PRODUCTS]
            .find_one({"_id": request.path_params["product_id"]})
        )
        if doc is None:
            return _not_found("product")
        doc["product_id"] = doc.pop("_id")
        # the listing history names its events; their envelopes stay internal
        doc["history"] = [
            {**{k: v for k, v in c.items() if k != "cause"}, "event_id": c["cause"]["id"]}
            for c in doc.get("history", [])
        ]
        return JSONResponse(jsonable(doc))

    async def policy(request: Request) -> Response:
        doc = (
            await runtime()
            .db[repository.POLICIES]
            .find_one({"_id": request.path_params["policy_id"]})
        )
        if doc is None:
            return _not_found("policy")
        doc["policy_id"] = doc.pop("_id")
        return JSONResponse(jsonable(doc))

    async def account(request: Request) -> Response:
        doc = (
            await runtime()
            .db[repository.ACCOUNTS]
            .find_one({"_id": request.path_params["account_id"]})
        )
        if doc is None:
            return _not_found("account")
        shops = doc.get("shops", [])
        return JSONResponse(
            {
                "account_id": doc["_id"],
                "shops": shops,
                "service_provider_built": any(s.get("service_provider_built") for s in shops),
            }
        )

    return [
        Route("/offers/{offer_id}", offer),
        Route("/creators/{creator_id}/ledger", creator_ledger),
        Route("/merchants/{merchant_id}/payable", merchant_payable),
        Route("/orders/{order_id}", order),
        Route("/products/{product_id}", product),
        Route("/policies/{policy_id}", policy),
        Route("/accounts/{account_id}", account),
    ]
