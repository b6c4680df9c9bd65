"""Compliance's read-only HTTP queries: policies, their state, impact and enforcement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vitrine.runtime.http import jsonable, not_found
from vitrine.runtime.mongo import Document
from vitrine.runtime.service import Runtime
from vitrine_compliance import repository
from vitrine_compliance.domain import COMPLETABLE

STATES = ("announced", "accepted", "rejected", "scheduled", "in_force", "lifted")


def _enforcement(doc: Document) -> dict[str, Any]:
    expected = doc.get("expected_services") or []
    reports = doc.get("reports") or {}
    completed = doc.get("completed") or {}
    fired = doc.get("fired") or {}
    phases: dict[str, Any] = {}
    for phase in sorted(set(reports) | set(completed) | set(COMPLETABLE)):
        if phase == "enforce_existing" and phase not in fired and phase not in reports:
            continue
        if phase == "lifted" and phase not in reports and (doc["state"] != "lifted" or not fired):
            continue  # lifted before effect: nothing was enforced, no report is awaited
        got = reports.get(phase, {})
        phases[phase] = {
            "reported": got,
            "waiting_for": [s for s in expected if s not in got],
            "completed_at": completed.get(phase),
        }
    return {"expected_services": expected, "phases": phases}


def summary(doc: Document) -> dict[str, Any]:
    terms = doc.get("terms") or {}
    return {
        "policy_id": doc["_id"],
        "state": doc["state"],
        "phase": doc.get("phase"),
        "title": terms.get("title"),
        "effective_at": terms.get("effective_at"),
        "enforce_existing_at": terms.get("enforce_existing_at"),
        "revision": doc.get("revision", 0),
    }


def detail(doc: Document, schedules: list[Document]) -> dict[str, Any]:
    impact = doc.get("impact")
    return {
        **summary(doc),
        "terms": doc.get("terms"),
        "last_rejection": doc.get("last_rejection") or [],
        "fired": doc.get("fired") or {},
        "lifted_at": doc.get("lifted_at"),
        "lift_reason": doc.get("lift_reason"),
        "schedules": [
            {
                "phase": s["phase"],
                "due_at": s["due_at"],
                "status": s["status"],
                "revision": s.get("revision"),
                "fired_at": s.get("fired_at"),
            }
            for s in schedules
        ],
        "impact": impact,
        "enforcement": _enforcement(doc),
        "history": doc.get("history") or [],
    }


def routes(runtime: Callable[[], Runtime]) -> list[BaseRoute]:
    async def policies(request: Request) -> Response:
        """Policies ordered by id; ``?state=in_force`` filters, ``?limit=`` bounds (≤ 1000)."""
        try:
            limit = max(1, min(int(request.query_params.get("limit", 100)), 1000))
        except ValueError:
            return JSONResponse({"error": "invalid_limit"}, status_code=400)
        query: Document = {}
        state = request.query_params.get("state")
        if state is not None:
            if state not in STATES:
                return JSONResponse(
                    {"error": "invalid_state", "states": list(STATES)}, status_code=400
                )
            query["state"] = state
        cursor = runtime().db[repository.POLICIES].find(query).sort("_id", 1).limit(limit)
        items = [summary(doc) async for doc in cursor]
        return JSONResponse(jsonable({"policies": items}))

    async def policy(request: Request) -> Response:
        """One policy: state, terms, schedules, impact assessment, enforcement progress."""
        pid = request.path_params["policy_id"]
        rt = runtime()
        doc = await rt.db[repository.POLICIES].find_one({"_id": pid})
        if doc is None:
            return not_found()
        schedules = await repository.schedules_of(rt.db, pid)
        return JSONResponse(jsonable(detail(doc, schedules)))

    return [
        Route("/policies", policies),
        Route("/policies/{policy_id}", policy),
    ]
