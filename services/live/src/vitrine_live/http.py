"""Live's read-only HTTP queries."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.contract.holds import hold_reason
from vitrine.runtime.service import Runtime
from vitrine_live import repository
from vitrine_live.domain import Session

_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_TRUE = {"1", "true", "yes", "on"}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def session_view(session: Session, *, include_suspended: bool) -> dict[str, Any]:
    """A session as the queries answer it: its cart in order (suspended items with why, when
    asked), the product presented now, and counts."""
    items: list[dict[str, Any]] = []
    for item in session.items:
        if item.holds and not include_suspended:
            continue
        entry: dict[str, Any] = {
            "product_id": item.product_id,
            "position": item.position,
            "merchant_id": item.merchant_id,
            "source": None if item.source is None else item.source.model_dump(exclude_none=True),
            "offer_id": item.offer_id,
            "active": item.active,
        }
        if item.holds:
            entry["suspensions"] = [
                {"reason": r, "policy_id": p} if p else {"reason": r}
                for r, p in map(hold_reason, sorted(item.holds))
            ]
        items.append(entry)
    active = sum(1 for i in session.items if i.active)
    return {
        "session_id": session.session_id,
        "creator_id": session.creator_id,
        "title": session.title,
        "status": "open" if session.open else "ended",
        "started_at": _time(session.started_at),
        "ended_at": _time(session.ended_at),
        "explaining": session.explaining,
        "items": items,
        "total": len(session.items),
        "active": active,
        "suspended": len(session.items) - active,
    }


def _not_found(what: str, key: str) -> Response:
    return JSONResponse({"error": "not_found", "message": f"no {what} {key}"}, status_code=404)


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def creator_live(request: Request) -> Response:
        """The creator's open session with its cart (``?include_suspended=true``: suspended
        items too, with their causes); 404 when the creator has no open session."""
        creator_id = request.path_params["creator_id"]
        if not _ID.match(creator_id):
            return JSONResponse({"error": "invalid_creator_id"}, status_code=400)
        include = request.query_params.get("include_suspended", "").lower() in _TRUE
        doc = (
            await runtime()
            .db[repository.SESSIONS]
            .find_one({"creator_id": creator_id, "open": True})
        )
        if doc is None:
            return _not_found("open live session for creator", creator_id)
        return JSONResponse(session_view(repository.to_session(doc), include_suspended=include))

    async def session(request: Request) -> Response:
        """One session, open or ended, with its whole cart (suspended items included)."""
        session_id = request.path_params["session_id"]
        if not _ID.match(session_id):
            return JSONResponse({"error": "invalid_session_id"}, status_code=400)
        doc = await runtime().db[repository.SESSIONS].find_one({"_id": session_id})
        if doc is None:
            return _not_found("live session", session_id)
        return JSONResponse(session_view(repository.to_session(doc), include_suspended=True))

    return [
        Route("/creators/{creator_id}/live", creator_live),
        Route("/sessions/{session_id}", session),
    ]
