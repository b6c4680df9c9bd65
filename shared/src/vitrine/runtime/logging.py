"""structlog setup: JSON lines in containers, readable colours in a terminal.

Correlation ids travel in contextvars (``bind_contextvars``), so every line logged while an
event is handled carries the event's ``correlationid`` without passing it around.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(service: str, fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aiokafka, uvicorn, faststream) log through stdlib: route them the same way.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The libraries' INFO lines (consumer assignments, "callback for Task … is being
    # executed", one per batch) say nothing an operator acts on: they log at the chosen
    # level but never below WARNING, except when the chosen level is DEBUG.
    library_level = max(logging.getLevelName(level), logging.WARNING)
    if logging.getLevelName(level) <= logging.DEBUG:
        library_level = logging.DEBUG
    for name in ("aiokafka", "pymongo", LIBRARY_LOGGER):
        logging.getLogger(name).setLevel(library_level)


class RepeatFilter(logging.Filter):
    """Lets a library's repeated line through once per ``window`` seconds, with a count.

    While the broker is down aiokafka logs "Unable connect to node …" and "Unable to update
    metadata" every retry — measured: ~1,400 lines in 3 s of a broker outage per service. The
    first line says all an operator needs; the next one, ``window`` s later, says how many
    were folded. Our own structured lines (``vitrine…`` loggers and structlog) are not
    folded: they are one per event and carry different fields.
    """

    def __init__(self, window: float = 10.0, prefixes: tuple[str, ...] = ("aiokafka",)) -> None:
        super().__init__()
        self.window = window
        self.prefixes = prefixes
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        seen = self._seen.get(key)
        first, folded = seen if seen is not None else (float("-inf"), 0)
        if record.created - first < self.window:
            self._seen[key] = (first, folded + 1)
            return False
        if len(self._seen) > 1000:  # bounded: templates are few, but be safe
            self._seen.clear()
        self._seen[key] = (record.created, 0)
        if folded:
            record.msg = f"{record.msg} (and {folded} more like it in the last {self.window:.0f} s)"
        return True


#: The logger FastStream is given (``KafkaBroker(logger=…)``): through the root handler, in
#: the service's format, instead of FastStream's own stdout handler.
LIBRARY_LOGGER = "vitrine.faststream"


def library_logger() -> logging.Logger:
    """The stdlib logger to hand to FastStream's broker (see ``LIBRARY_LOGGER``)."""
    return logging.getLogger(LIBRARY_LOGGER)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (bound to ``name`` when given)."""
    return structlog.get_logger(name)
