"""``vitrine topics ensure|list``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from vitrine.contract.topics import DLQ_SUFFIX, TOPICS, all_topic_names, ensure_topics
from vitrine.tools.cli import _kafka
from vitrine.tools.cli._app import options, run_async, topics_app
from vitrine.tools.cli._output import console, err, print_table


@topics_app.command("ensure")
def ensure(
    ctx: typer.Context,
    replication: Annotated[
        int, typer.Option(min=1, help="Replication factor of topics created now (3 in production).")
    ] = 1,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the broker to answer before giving up.")
    ] = 60.0,
) -> None:
    """Create every topic of the registry (and its .dlq) that is missing; never alters others."""
    kafka = options(ctx).kafka

    async def work() -> list[str]:
        await _kafka.wait_for_broker(kafka, wait)
        return await ensure_topics(
            kafka.bootstrap, replication=replication, client_args=kafka.client_args
        )

    try:
        created = run_async(work())
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        err.print(f"cannot create topics on {kafka.bootstrap}: {exc!r}", markup=False)
        raise typer.Exit(1) from None
    total = len(all_topic_names())
    for name in created:
        console.print(f"created {name}", markup=False)
    console.print(
        f"{len(created)} created, {total - len(created)} already there ({total} topics).",
        markup=False,
    )


async def describe(kafka: _kafka.Kafka, names: list[str]) -> list[dict[str, Any]]:
    """Partition count, first and end offsets of each topic that exists (None if missing)."""
    consumer = kafka.consumer()
    await _kafka.start(consumer)
    try:
        existing = await consumer.topics()
        present = [n for n in names if n in existing]
        parts = await _kafka.topic_partitions(consumer, present)
        ends = await _kafka.end_offsets(consumer, parts)
        starts = await _kafka.beginning_offsets(consumer, parts)
    finally:
        await _kafka.close(consumer)
    rows: list[dict[str, Any]] = []
    for name in names:
        mine = [tp for tp in parts if tp.topic == name]
        entry = TOPICS.get(name.removesuffix(DLQ_SUFFIX))
        row: dict[str, Any] = {
            "topic": name,
            "exists": name in existing,
            "key": entry.key if entry else None,
            "producer": (
                "consumers (dead letters)" if name.endswith(DLQ_SUFFIX) else entry.producer
            )
            if entry
            else None,
            "partitions": len(mine) if name in existing else None,
            "end_offsets": {tp.partition: ends[tp] for tp in mine},
            "records": sum(max(ends[tp] - starts.get(tp, 0), 0) for tp in mine),
        }
        rows.append(row)
    return rows


@topics_app.command("list")
def list_topics(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per topic.")] = False,
    dlq: Annotated[bool, typer.Option("--dlq/--no-dlq", help="Include the .dlq topics.")] = True,
    every_partition: Annotated[
        bool, typer.Option("--partitions", help="Show the end offset of every partition.")
    ] = False,
) -> None:
    """Every topic of the registry: partitions, records and end offsets (read, not listed)."""
    kafka = options(ctx).kafka
    names = all_topic_names(include_dlq=dlq)
    try:
        rows = run_async(describe(kafka, names))
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        err.print(f"cannot read topics from {kafka.bootstrap}: {exc!r}", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        for row in rows:
            console.print(json.dumps(row, sort_keys=True), markup=False)
        return
    table = Table(title=f"Topics on {kafka.bootstrap}", title_justify="left")
    table.add_column("topic", style="cyan", no_wrap=True)
    table.add_column("partitions", justify="right")
    table.add_column("records", justify="right")
    table.add_column("end offsets" + (" (partition:offset)" if every_partition else ""))
    table.add_column("key")
    table.add_column("producer")
    missing = 0
    for row in rows:
        if not row["exists"]:
            missing += 1
            table.add_row(row["topic"], "[red]missing[/]", "", "", row["key"] or "", "")
            continue
        ends: dict[int, int] = row["end_offsets"]
        if every_partition or len(ends) == 1:
            shown = (
                " ".join(f"{p}:{o}" for p, o in ends.items())
                if len(ends) > 1
                else str(next(iter(ends.values()), 0))
            )
        else:
            nonempty = sum(1 for o in ends.values() if o)
            shown = f"max {max(ends.values(), default=0)} · {nonempty}/{len(ends)} non-empty"
        table.add_row(
            row["topic"],
            str(row["partitions"]),
            str(row["records"]),
            shown,
            row["key"] or "",
            row["producer"] or "",
        )
    print_table(table)
    if missing:
        console.print(f"[yellow]{missing} topic(s) missing[/]: run [bold]vitrine topics ensure[/].")
