"""``vitrine``: the operator command (DESIGN.md §7).

``vitrine dev up`` · ``vitrine run`` · ``vitrine topics ensure|list`` · ``vitrine tail`` ·
``vitrine publish`` · ``vitrine dlq list|replay`` · ``vitrine acls plan|apply`` ·
``vitrine demo`` · ``vitrine asyncapi``.
"""

from __future__ import annotations

import os
import sys

from vitrine.tools.cli import (  # noqa: F401  (commands)
    acls,
    asyncapi,
    dlq,
    publish,
    stack,
    tail,
    topics,
)
from vitrine.tools.cli._app import app


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `vitrine tail … | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


__all__ = ["app", "main"]
