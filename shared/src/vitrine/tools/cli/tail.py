"""``vitrine tail TOPIC…``: follow topics as readable lines (or raw JSON for piping)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.text import Text

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


class BadStartError(Exception):
    """``--offset`` names a partition the topic does not have."""


def parse_offsets(values: list[str]) -> dict[int, int]:
    """``P:O`` pairs (partition:offset) from ``--offset``; raises ValueError on bad input."""
    starts: dict[int, int] = {}
    for value in values:
        partition, sep, offset = value.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"--offset {value!r}: expected PARTITION:OFFSET, e.g. 0:42")
        starts[int(partition)] = int(offset)
    return starts


def parse_since(value: str) -> datetime:
    """An ISO 8601 time with its offset (``2022-11-30T00:00:00+08:00``); ValueError otherwise."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {value!r}: expected an ISO 8601 time, e.g. 2022-11-30T00:00:00+08:00"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"--since {value!r}: give the UTC offset (e.g. +08:00 or Z)")
    return when


async def start_offsets(
    consumer: AIOKafkaConsumer,
    parts: list[TopicPartition],
    ends: dict[TopicPartition, int],
    *,
    from_beginning: bool,
    offsets: dict[int, int] | None,
    since: datetime | None,
) -> dict[TopicPartition, int]:
    """Where to start each partition read: ``--offset`` (only the partitions named),
    ``--since`` (the first record at or after that time; the end where there is none),
    ``--from-beginning``, or the end."""
    if offsets:
        known = {tp.partition: tp for tp in parts}
        missing = sorted(set(offsets) - set(known))
        if missing:
            have = ", ".join(str(p) for p in sorted(known))
            raise BadStartError(f"no partition {missing[0]} (partitions: {have})")
        return {known[p]: min(o, ends[known[p]]) for p, o in offsets.items()}
    if since is not None:
        stamp = int(since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(parts, stamp))
        return {tp: (ends[tp] if found.get(tp) is None else found[tp].offset) for tp in parts}
    if from_beginning:
        return await _kafka.beginning_offsets(consumer, parts)
    return dict(ends)


def with_details(line: Text, record: Record, *, keys: bool, headers: bool) -> Text:
    """The record's line with ``key=…`` and ``headers{k=v, …}`` appended (still one line)."""
    if keys:
        line.append(f"  key={record.key_text}", "bold blue")
    if headers:
        shown = ", ".join(f"{k}={v.decode('utf-8', 'replace')}" for k, v in record.headers)
        line.append(f"  headers{{{shown}}}", "dim")
    return line


def json_with_details(record: Record, *, keys: bool, headers: bool) -> str:
    """``--json`` with ``--keys``/``--headers``: the value wrapped with where it came from."""
    body: dict[str, object] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    if keys:
        body["key"] = record.key_text
    if headers:
        body["headers"] = {k: v.decode("utf-8", "replace") for k, v in record.headers}
    body["event"] = record.event()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


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
    offsets: dict[int, int] | None = None,
    since: datetime | None = None,
    keys: bool = False,
    headers: bool = False,
) -> int:
    """Print matching records; returns how many were printed."""
    consumer = kafka.consumer()
    await _kafka.start(consumer)
    printed = 0
    try:
        parts = await _kafka.topic_partitions(consumer, topics)
        ends = await _kafka.end_offsets(consumer, parts)
        starts = await start_offsets(
            consumer, parts, ends, from_beginning=from_beginning, offsets=offsets, since=since
        )
        stops = None if follow else {tp: ends[tp] for tp in starts}
        if limit == 0:
            return 0
        if follow:
            where: str
            if offsets:
                where = "partition:offset " + ", ".join(f"{p}:{o}" for p, o in offsets.items())
            elif since is not None:
                where = since.isoformat()
            elif from_beginning:
                where = "the beginning"
            else:
                where = "the end"
            err.print(f"following {', '.join(topics)} from {where}; Ctrl-C stops.", markup=False)
        async for raw in _kafka.read(consumer, starts, stops):
            record = Record.of(raw)
            if not matches(record, types, subjects):
                continue
            if as_json:
                if (keys or headers) and not record.is_dlq:
                    line: str | None = json_with_details(record, keys=keys, headers=headers)
                else:
                    line = dead_letter_json(record) if record.is_dlq else raw_json(record)
                if line is None:
                    err.print(f"{record.where}: value is not JSON; skipped", markup=False)
                    continue
                console.print(line, markup=False)
            else:
                text = dead_letter_line(record) if record.is_dlq else event_line(record)
                console.print(with_details(text, record, keys=keys, headers=headers))
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
    offset: Annotated[
        list[str] | None,
        typer.Option(
            "--offset",
            help="Start partition P at offset O (`P:O`, repeatable); reads only those "
            "partitions. One topic only.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start at the first record at or after this time "
            "(ISO 8601 with offset, e.g. 2022-11-30T00:00:00+08:00)."
        ),
    ] = None,
    keys: Annotated[bool, typer.Option("--keys", help="Show each record's key.")] = False,
    headers: Annotated[
        bool, typer.Option("--headers", help="Show each record's headers (traceparent too).")
    ] = False,
) -> None:
    """Follow topics as one line per event: time, topic[partition]@offset, type, subject,
    ids, amounts and reason codes of its data, correlation id.

    Reads without a consumer group, so it never disturbs the services. It starts at the
    current end (exact on Tansu too), unless --from-beginning, --offset P:O or --since TIME
    says where. --keys and --headers add the record's key and headers to its line.
    """
    names = [t if (not dlq or t.endswith(DLQ_SUFFIX)) else t + DLQ_SUFFIX for t in topics]
    names = list(dict.fromkeys(names))
    chosen = [n for n, given in (("--offset", offset), ("--since", since)) if given]
    if from_beginning:
        chosen.append("--from-beginning")
    try:
        if len(chosen) > 1:
            raise ValueError(f"choose one start: {' or '.join(chosen)}")
        if offset and len(names) > 1:
            raise ValueError("--offset P:O needs exactly one topic")
        starts = parse_offsets(offset or [])
        when = parse_since(since) if since else None
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    kafka = options(ctx).kafka
    try:
        run_async(
            tail_topics(
                kafka,
                names,
                types=type_ or [],
                subjects=subject or [],
                from_beginning=from_beginning,
                follow=follow,
                as_json=as_json,
                limit=max_records,
                offsets=starts or None,
                since=when,
                keys=keys,
                headers=headers,
            )
        )
    except _kafka.UnknownTopicError as exc:
        err.print(f"no such topic: {exc} (vitrine topics list)", markup=False)
        raise typer.Exit(2) from None
    except BadStartError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
