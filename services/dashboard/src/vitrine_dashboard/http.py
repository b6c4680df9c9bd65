"""The dashboard's JSON API, its update stream (server-sent events) and the page.

Every number the page shows comes from the same view functions as the JSON API, so what is
on screen can be checked against ``/api/...``:

- ``GET /api/live/{session_id}``: the session's totals, ``per_minute[]``, ``explaining`` and
  ``top_products[]``; ``GET /api/live``: recent sessions.
- ``GET /api/creators/{id}?date=YYYY-MM-DD`` and ``/api/merchants/{id}?date=``: one
  Asia/Shanghai day (default today).
- ``GET /api/policies``: policies, their stage and enforcement per service.
- ``GET /api/stream?live=ID`` | ``?creator=ID&date=`` | ``?merchant=ID&date=`` | ``?policies``:
  the same bodies as server-sent events (``event: view``), sent when they change.
- ``GET /``: the page (static files of this package, no CDN).

``per_minute[]`` lists the minutes that have figures (sparse), each with its ISO time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from prometheus_client import Gauge
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from vitrine.runtime.logging import get_logger
from vitrine.runtime.service import Runtime
from vitrine_dashboard import repository
from vitrine_dashboard.domain import Figures, Scope, Session, day_of
from vitrine_dashboard.repository import (
    MINUTES,
    POLICIES,
    SESSION_PRODUCTS,
    SESSIONS,
    TOTALS,
    to_policy,
    total_id,
)

log = get_logger(__name__)
STATIC = Path(__file__).parent / "static"
TOP_PRODUCTS = 10
DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
#: How often a stream re-reads its view (one reader per distinct view, however many watch).
PUSH_SECONDS = float(os.environ.get("VITRINE_DASHBOARD_PUSH_SECONDS", "1.0"))

View = tuple[int, dict[str, Any]]
VIEWERS = Gauge("vitrine_dashboard_viewers", "Open update streams (SSE) of the dashboard page")


def _error(status: int, code: str, message: str) -> View:
    return status, {"error": code, "message": message}


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def to_session_view(s: Session | None) -> dict[str, Any]:
    """A session's live.rooms facts as the API shows them (``unknown`` before any)."""
    if s is None:
        return {"creator_id": None, "title": None, "status": "unknown", "explaining": None}
    explaining = None
    if s.explaining is not None:
        explaining = {"product_id": s.explaining, "since": _iso(s.explaining_at)}
    return {
        "creator_id": s.creator_id,
        "title": s.title,
        "status": s.status,
        "started_at": _iso(s.started_at),
        "ended_at": _iso(s.ended_at),
        "explaining": explaining,
    }


class Views:
    """The bodies of the API, read from the dashboard's own database."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self.runtime = runtime

    @property
    def db(self) -> Any:
        return self.runtime().db

    async def _minutes(self, query: dict[str, Any]) -> tuple[Figures, list[dict[str, Any]]]:
        per_minute: list[dict[str, Any]] = []
        total = Figures()
        cursor = self.db[MINUTES].find(query, {"_id": 0}).sort("minute", 1)
        async for doc in cursor:
            figures = Figures.of(doc)
            total = total + figures
            per_minute.append({"minute": doc["minute"], **figures.as_dict()})
        return total, per_minute

    async def live(self, session_id: str) -> View:
        known = await self.db[TOTALS].find_one({"_id": total_id("live", session_id)})
        session_doc = await self.db[SESSIONS].find_one({"_id": session_id})
        if known is None and session_doc is None:
            return _error(404, "unknown_session", f"no live session {session_id!r} is known")
        total, per_minute = await self._minutes({"scope": "live", "key": session_id})
        top: list[dict[str, Any]] = []
        cursor = (
            self.db[SESSION_PRODUCTS]
            .find({"session_id": session_id}, {"_id": 0, "session_id": 0})
            .sort([("gmv_fen", -1), ("product_id", 1)])
            .limit(TOP_PRODUCTS)
        )
        async for doc in cursor:
            top.append({**doc, "net_fen": doc.get("gmv_fen", 0) - doc.get("refunds_fen", 0)})
        session = to_session_view(repository.to_session(session_doc) if session_doc else None)
        return 200, {
            "session_id": session_id,
            **session,
            **total.as_dict(),
            "per_minute": per_minute,
            "top_products": top,
        }

    async def sessions(self) -> View:
        """Recent sessions: those with sales (newest activity first) and those started."""
        out: dict[str, dict[str, Any]] = {}
        cursor = self.db[TOTALS].find({"scope": "live"}).sort("last_minute", -1).limit(20)
        async for doc in cursor:
            out[doc["key"]] = {"session_id": doc["key"], "gmv_fen": doc.get("gmv_fen", 0)}
        async for doc in self.db[SESSIONS].find({}).sort("started_at", -1).limit(20):
            view = to_session_view(repository.to_session(doc))
            out.setdefault(doc["_id"], {"session_id": doc["_id"], "gmv_fen": 0}).update(view)
        return 200, {"sessions": list(out.values())}

    async def day(self, scope: Scope, key: str, raw_date: str | None) -> View:
        label = {"creator": "creator_id", "merchant": "merchant_id"}[scope]
        if raw_date is None:
            day = day_of(self.runtime().clock())
        else:
            try:
                # Exactly YYYY-MM-DD: fromisoformat alone also takes 20220701 and 2022-W01-1.
                if not DATE.fullmatch(raw_date):
                    raise ValueError(raw_date)
                day = date.fromisoformat(raw_date)
            except ValueError:
                return _error(400, "bad_date", f"date must be YYYY-MM-DD, got {raw_date[:40]!r}")
        if await self.db[TOTALS].find_one({"_id": total_id(scope, key)}, {"_id": 1}) is None:
            return _error(404, f"unknown_{scope}", f"no {scope} {key!r} has any figures")
        total, per_minute = await self._minutes({"scope": scope, "key": key, "day": str(day)})
        return 200, {
            label: key,
            "date": str(day),
            "timezone": "Asia/Shanghai",
            **total.as_dict(),
            "per_minute": per_minute,
        }

    async def policies(self) -> View:
        out = []
        async for doc in self.db[POLICIES].find({}).sort("updated_at", -1).limit(200):
            p = to_policy(doc)
            reported = {r.service: r for r in p.reports}
            services = [*p.enforcers, *(s for s in reported if s not in p.enforcers)]
            out.append(
                {
                    "policy_id": p.policy_id,
                    "title": p.title,
                    "stage": p.stage,
                    "phase": p.phase,
                    "effective_at": _iso(p.effective_at),
                    "enforce_existing_at": _iso(p.enforce_existing_at),
                    "surfaces": list(p.surfaces),
                    "impact": dict(p.impact),
                    "enforcement": [
                        {
                            "service": s,
                            "reported": s in reported,
                            "phase": reported[s].phase if s in reported else None,
                            "affected": reported[s].affected if s in reported else None,
                            "at": _iso(reported[s].at) if s in reported else None,
                        }
                        for s in services
                    ],
                    "completed_at": _iso(p.completed_at),
                    "completed_counts": dict(p.completed_counts),
                    "lifted_at": _iso(p.lifted_at),
                }
            )
        return 200, {"policies": out}


# --- the update stream -------------------------------------------------------------------------


@dataclass
class _Feed:
    """One view watched by some viewers: read once per tick, sent to each when it changes."""

    read: Callable[[], Awaitable[View]]
    viewers: set[asyncio.Queue[str]] = field(default_factory=set)
    last: str | None = None
    task: asyncio.Task[None] | None = None


class Hub:
    """Fans each distinct view out to its viewers, so 50 viewers cost one read per tick."""

    def __init__(self, interval: float = PUSH_SECONDS) -> None:
        self.interval = interval
        self.feeds: dict[str, _Feed] = {}

    async def _run(self, key: str, feed: _Feed) -> None:
        while feed.viewers:
            try:
                _, body = await feed.read()
                text = json.dumps(body, separators=(",", ":"))
                if text != feed.last:
                    feed.last = text
                    for queue in list(feed.viewers):
                        if queue.full():  # a slow viewer gets the newest, not a backlog
                            with contextlib.suppress(asyncio.QueueEmpty):
                                queue.get_nowait()
                        queue.put_nowait(text)
            except Exception as exc:  # the database is down: keep the viewers, try again
                log.warning("dashboard.feed_failed", view=key, error=repr(exc)[:200])
            await asyncio.sleep(self.interval)
        self.feeds.pop(key, None)

    @contextlib.asynccontextmanager
    async def watch(
        self, key: str, read: Callable[[], Awaitable[View]]
    ) -> AsyncIterator[asyncio.Queue[str]]:
        feed = self.feeds.get(key)
        if feed is None or feed.task is None or feed.task.done():
            feed = self.feeds[key] = _Feed(read)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        if feed.last is not None:
            queue.put_nowait(feed.last)
        feed.viewers.add(queue)
        VIEWERS.inc()
        if feed.task is None:
            feed.task = asyncio.create_task(self._run(key, feed), name=f"feed:{key}")
        try:
            yield queue
        finally:
            feed.viewers.discard(queue)
            VIEWERS.dec()

    def viewers(self) -> int:
        return sum(len(f.viewers) for f in self.feeds.values())


def _json(view: View) -> Response:
    status, body = view
    return JSONResponse(body, status_code=status)


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    views = Views(runtime)
    hub = Hub()

    async def live(request: Request) -> Response:
        return _json(await views.live(request.path_params["session_id"]))

    async def sessions(_: Request) -> Response:
        return _json(await views.sessions())

    async def creator(request: Request) -> Response:
        q = request.query_params.get("date")
        return _json(await views.day("creator", request.path_params["creator_id"], q))

    async def merchant(request: Request) -> Response:
        q = request.query_params.get("date")
        return _json(await views.day("merchant", request.path_params["merchant_id"], q))

    async def policies(_: Request) -> Response:
        return _json(await views.policies())

    async def stream(request: Request) -> Response:
        """Server-sent events of one view; answers 400/404 like the API before streaming."""
        q = request.query_params
        read: Callable[[], Awaitable[View]]
        if (sid := q.get("live")) is not None:
            read, key = (lambda: views.live(sid)), f"live:{sid}"
        elif (cid := q.get("creator")) is not None:
            d = q.get("date")
            read, key = (lambda: views.day("creator", cid, d)), f"creator:{cid}:{d}"
        elif (mid := q.get("merchant")) is not None:
            d = q.get("date")
            read, key = (lambda: views.day("merchant", mid, d)), f"merchant:{mid}:{d}"
        elif "policies" in q:
            read, key = views.policies, "policies"
        else:
            return _json(
                _error(400, "bad_stream", "ask for ?live=, ?creator=, ?merchant= or ?policies")
            )
        first = await read()
        if first[0] != 200:
            return _json(first)

        async def events() -> AsyncIterator[dict[str, str]]:
            async with hub.watch(key, read) as queue:
                while True:
                    yield {"event": "view", "data": await queue.get()}

        return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return [
        Route("/", page),
        Route("/api/live", sessions),
        Route("/api/live/{session_id}", live),
        Route("/api/creators/{creator_id}", creator),
        Route("/api/merchants/{merchant_id}", merchant),
        Route("/api/policies", policies),
        Route("/api/stream", stream),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
