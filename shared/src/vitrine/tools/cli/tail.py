"""``vitrine tail TOPIC…``: follow topics as readable lines (or raw JSON for piping)."""

from __future__ import annotations

from typing import Annotated

import typer

from vitrine.contract.topics import DLQ_SUFFIX
from vitrine.tools.cli import _kafka
from vitrine.tools.cli._app import app, options, run_async
from vitrine.tools.cli._output import (
    Record,
    console,
    dead_letter_json,
    dead_letter_line,
    err,
    event_line,
    matches,
    raw_json,
)


async def tail_topics(
    kafka: _kafka.Kafka,
    topics: list[str],
    *,
    types: list[str],
    subjects: list[str],
    from_beginning: bool,
    follow: bool,
    as_json: bool,
    limit: int | None,
) -> int:
    """Print matching records; returns how many were printed."""
    consumer = kafka.consumer()
    await consumer.start()
    printed = 0
    try:
        parts = await _kafka.topic_partitions(consumer, topics)
        ends = await _kafka.end_offsets(consumer, parts)
        if from_beginning:
            starts = await _kafka.beginning_offsets(consumer, parts)
        else:
            starts = dict(ends)
        stops = None if follow else ends
        if limit == 0:
            return 0
        if follow:
            where = "the beginning" if from_beginning else "the end"
            err.print(f"following {', '.join(topics)} from {where}; Ctrl-C stops.", markup=False)
        async for raw in _kafka.read(consumer, starts, stops):
            record = Record.of(raw)
            if not matches(record, types, subjects):
                continue
            if as_json:
                line = dead_letter_json(record) if record.is_dlq else raw_json(record)
                if line is None:
                    err.print(f"{record.where}: value is not JSON; skipped", markup=False)
                    continue
                console.print(line, markup=False)
            else:
                console.print(dead_letter_line(record) if record.is_dlq else event_line(record))
            printed += 1
            if limit is not None and printed >= limit:
                break
    finally:
        await _kafka.close(consumer)
    return printed


@app.command()
def tail(
    ctx: typer.Context,
    topics: Annotated[list[str], typer.Argument(help="Topics to read (a .dlq topic too).")],
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="Only these CloudEvents types (repeatable)."),
    ] = None,
    subject: Annotated[
        list[str] | None,
        typer.Option("--subject", "-s", help="Only these subjects / keys (repeatable)."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", "-b", help="Start at the oldest record.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One raw CloudEvent JSON per line, for piping.")
    ] = False,
    dlq: Annotated[
        bool, typer.Option("--dlq", help="Read TOPIC.dlq: why each dead letter failed.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow", help="Keep waiting for new records, or stop at the end."
        ),
    ] = True,
    max_records: Annotated[
        int | None, typer.Option("--max", "-n", min=0, help="Stop after N records.")
    ] = None,
) -> None:
    """Follow topics as one line per event: time, topic[partition]@offset, type, subject,
    ids, amounts and reason codes of its data, correlation id.

    Reads without a consumer group, so it never disturbs the services. Without
    --from-beginning it starts at the current end (exact on Tansu too).
    """
    names = [t if (not dlq or t.endswith(DLQ_SUFFIX)) else t + DLQ_SUFFIX for t in topics]
    kafka = options(ctx).kafka
    try:
        run_async(
            tail_topics(
                kafka,
                list(dict.fromkeys(names)),
                types=type_ or [],
                subjects=subject or [],
                from_beginning=from_beginning,
                follow=follow,
                as_json=as_json,
                limit=max_records,
            )
        )
    except _kafka.UnknownTopicError as exc:
        err.print(f"no such topic: {exc} (vitrine topics list)", markup=False)
        raise typer.Exit(2) from None
