"""``vitrine publish TOPIC FILE``: CloudEvents from JSON Lines, validated before sending."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vitrine.contract.envelope import Event, InvalidEvent, decode
from vitrine.contract.topics import TOPICS
from vitrine.runtime.messaging.outbox import event_headers
from vitrine.tools.cli import _kafka
from vitrine.tools.cli._app import app, options, run_async
from vitrine.tools.cli._output import console, err

#: Show a progress bar from this many events on (and only on a terminal).
PROGRESS_FROM = 500


@dataclass(frozen=True)
class Line:
    """One line of the input file that holds an event."""

    number: int
    value: bytes
    key: bytes | None


@dataclass(frozen=True)
class Invalid:
    number: int
    reason: str
    error: str


def read_lines(data: bytes) -> list[Line]:
    """Non-blank lines, numbered from 1 as an editor shows them."""
    lines: list[Line] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        value = raw.strip()
        if not value:
            continue
        lines.append(Line(number, value, _subject(value)))
    return lines


def _subject(value: bytes) -> bytes | None:
    try:
        parsed = json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    subject = parsed.get("subject") if isinstance(parsed, dict) else None
    return subject.encode() if isinstance(subject, str) else None


def validate(
    topic: str, lines: Iterable[Line]
) -> tuple[list[tuple[Line, Event[Any]]], list[Invalid]]:
    """Each line against the contract of ``topic``, exactly as the consumers decode it."""
    models = TOPICS[topic].types
    valid: list[tuple[Line, Event[Any]]] = []
    invalid: list[Invalid] = []
    for line in lines:
        decoded = decode(line.value, line.key, models)
        if isinstance(decoded, InvalidEvent):
            invalid.append(Invalid(line.number, decoded.reason, decoded.error))
        else:
            valid.append((line, decoded))
    return valid, invalid


async def send(kafka: _kafka.Kafka, topic: str, events: list[tuple[Line, Event[Any]]]) -> None:
    """Publish keyed by subject, in file order, acks=all; waits for every acknowledgement."""
    producer = kafka.producer()
    await _kafka.start(producer)
    try:
        with Progress(
            TextColumn("publishing to {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=len(events) < PROGRESS_FROM or not err.is_terminal,
        ) as progress:
            task = progress.add_task(topic, total=len(events))
            futures = []
            for line, event in events:
                future = await producer.send(
                    topic, line.value, key=line.key, headers=event_headers(event.envelope)
                )
                future.add_done_callback(lambda _: progress.advance(task))
                futures.append(future)
            for future in futures:
                await future
    finally:
        await producer.stop()


@app.command()
def publish(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="A topic of the contract, e.g. merchants.products.")],
    file: Annotated[str, typer.Argument(help="JSON Lines of CloudEvents; - for stdin.")],
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Publish the valid lines even if some are invalid."),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only.")] = False,
) -> None:
    """Publish CloudEvents from a JSON Lines file (one event per line, keyed by subject).

    Every line is validated first, as the consumers will decode it (envelope, type allowed
    on TOPIC, data schema). Invalid lines are reported with their line number and never
    published; by default nothing is published then. Exit code 1 if any line was invalid.
    """
    if topic not in TOPICS:
        err.print(f"{topic!r} is not a topic of the contract: {', '.join(TOPICS)}", markup=False)
        raise typer.Exit(2)
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        err.print(f"cannot read {file}: {exc}", markup=False)
        raise typer.Exit(2) from None
    valid, invalid = validate(topic, read_lines(data))
    for bad in invalid:
        err.print(f"line {bad.number}: {bad.reason}: {bad.error}", markup=False)
    if invalid and not skip_invalid:
        err.print(
            f"{len(invalid)} invalid line(s); nothing published "
            "(fix them, or --skip-invalid to publish the valid ones).",
            markup=False,
        )
        raise typer.Exit(1)
    if dry_run:
        console.print(f"{len(valid)} valid event(s) for {topic}; dry run, nothing published.")
        raise typer.Exit(1 if invalid else 0)
    if valid:
        kafka = options(ctx).kafka
        try:
            run_async(send(kafka, topic, valid))
        except Exception as exc:
            if isinstance(exc, typer.Exit):
                raise
            err.print(f"publishing to {kafka.bootstrap} failed: {exc!r}", markup=False)
            raise typer.Exit(1) from None
    skipped = f", {len(invalid)} invalid line(s) skipped" if invalid else ""
    console.print(f"published {len(valid)} event(s) to {topic}{skipped}.", markup=False)
    if invalid:
        raise typer.Exit(1)
