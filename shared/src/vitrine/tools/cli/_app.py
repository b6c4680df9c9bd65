"""The Typer application and its global options; commands register themselves on it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaConnectionError
from typer.core import TyperGroup

from vitrine.tools.cli._kafka import Kafka
from vitrine.tools.cli._output import err

T = TypeVar("T")

_ADDRESS_FAMILY = re.compile(r", <AddressFamily\.\w+: \d+>")

#: Options of the whole command that may also be written after a subcommand.
_GLOBAL_OPTIONS = ("--bootstrap",)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move ``--bootstrap X`` / ``--bootstrap=X`` found anywhere (before ``--``) to the front,
    so ``vitrine tail T --bootstrap h:p`` means ``vitrine --bootstrap h:p tail T``."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in _GLOBAL_OPTIONS and i + 1 < len(args):
            front += args[i : i + 2]
            i += 2
            continue
        if arg.startswith(tuple(f"{o}=" for o in _GLOBAL_OPTIONS)):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class _VitrineGroup(TyperGroup):
    """The root command: accepts the global options after any subcommand too."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        return super().parse_args(ctx, hoist_global_options(args))


app = typer.Typer(
    name="vitrine",
    cls=_VitrineGroup,
    help="Operate Vitrine: the dev stack, topics, tail, publish, dead letters, demo, AsyncAPI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
topics_app = typer.Typer(
    help="Create and inspect the contract's topics.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
dlq_app = typer.Typer(
    help="List and replay dead letters.", no_args_is_help=True, rich_markup_mode="markdown"
)
dev_app = typer.Typer(
    help="The embedded development stack.", no_args_is_help=True, rich_markup_mode="markdown"
)
acls_app = typer.Typer(
    help="Broker ACLs: each service and upstream writes only its own topics.",
    no_args_is_help=True,
)
app.add_typer(topics_app, name="topics")
app.add_typer(acls_app, name="acls")
app.add_typer(dlq_app, name="dlq")
app.add_typer(dev_app, name="dev")


@dataclass(frozen=True)
class Options:
    """Global options, available to every command as ``ctx.obj``."""

    bootstrap: str

    @property
    def kafka(self) -> Kafka:
        return Kafka.from_env(self.bootstrap)


@app.callback()
def _global(
    ctx: typer.Context,
    bootstrap: Annotated[
        str,
        typer.Option(
            envvar="VITRINE_KAFKA_BOOTSTRAP",
            help="Kafka bootstrap servers (SASL/TLS settings come from VITRINE_KAFKA_* too).",
        ),
    ] = "127.0.0.1:9092",
) -> None:
    ctx.obj = Options(bootstrap)
    _options.set(ctx.obj)
    # The CLI says what went wrong in one line of its own; aiokafka's retry chatter (its
    # errors go to stderr through logging's last-resort handler) would only bury it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


#: The options of the command running in this thread (for messages outside a command's body).
_options: contextvars.ContextVar[Options] = contextvars.ContextVar("vitrine_cli_options")


def options(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; Ctrl-C cancels it (cleanup runs) and exits with 130.

    A broker that cannot be reached ends the command with one line and exit code 2.
    """
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            work.close()
        raise typer.Exit(130) from None
    except KafkaConnectionError as exc:
        why = _ADDRESS_FAMILY.sub("", str(exc).removeprefix("KafkaConnectionError: "))
        err.print(f"error: cannot reach Kafka at {_bootstrap()} ({why})", markup=False)
        raise typer.Exit(2) from None


def _bootstrap() -> str:
    current = _options.get(None)
    return current.bootstrap if current is not None else "?"
