"""The Typer application and its global options; commands register themselves on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from vitrine.tools.cli._kafka import Kafka

T = TypeVar("T")

app = typer.Typer(
    name="vitrine",
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


def options(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; Ctrl-C cancels it (cleanup runs) and exits with 130."""
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            work.close()
        raise typer.Exit(130) from None
