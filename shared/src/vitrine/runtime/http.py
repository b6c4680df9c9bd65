"""Small helpers for the services' read-only JSON queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse, Response

__all__ = ["jsonable", "not_found"]


def jsonable(value: Any) -> Any:
    """``value`` with every datetime as an RFC 3339 string, through dicts, lists and tuples
    (a MongoDB document as a query answers it)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def not_found(**detail: Any) -> Response:
    """A 404 with body ``{"error": "not_found", **detail}``."""
    return JSONResponse({"error": "not_found", **detail}, status_code=404)
