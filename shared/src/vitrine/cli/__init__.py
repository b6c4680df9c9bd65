"""``vitrine``: the operator command (DESIGN.md §7).

``vitrine dev up`` · ``vitrine run`` · ``vitrine topics ensure|list`` · ``vitrine tail`` ·
``vitrine publish`` · ``vitrine dlq list|replay`` · ``vitrine demo`` · ``vitrine asyncapi``.
"""

from __future__ import annotations

from vitrine.cli import asyncapi, dlq, publish, stack, tail, topics  # noqa: F401  (commands)
from vitrine.cli._app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
