"""``vitrine dlq list|replay``: dead letters, why they failed, and replaying them after a fix.

A replay republishes a dead letter's original key, value and headers (less the ``dlq-*``
ones) to its original topic and partition, with a header ``vitrine-replay-of:
<dlq topic>/<partition>/<offset>``. Before replaying, the original partitions are read for
that header, so a dead letter already replayed is skipped; and the consumers' inbox
dedupes on the CloudEvent's (source, id) anyway, so nothing is applied twice.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from aiokafka import TopicPartition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from vitrine.contract.topics import DLQ_SUFFIX, TOPICS
from vitrine.tools.cli import _kafka
from vitrine.tools.cli._app import dlq_app, options, run_async
from vitrine.tools.cli._output import REPLAY_HEADER, Record, console, err, print_table


def dlq_name(topic: str) -> str:
    return topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX


def replay_id(letter: Record) -> str:
    """How a replay names the dead letter it came from."""
    return f"{letter.topic}/{letter.partition}/{letter.offset}"


async def read_all(kafka: _kafka.Kafka, topics: list[str]) -> list[Record]:
    """Every record of ``topics`` from the beginning to the current end."""
    consumer = kafka.consumer()
    await _kafka.start(consumer)
    try:
        existing = await consumer.topics()
        parts = await _kafka.topic_partitions(consumer, [t for t in topics if t in existing])
        ends = await _kafka.end_offsets(consumer, parts)
        starts = await _kafka.beginning_offsets(consumer, parts)
        return [Record.of(r) async for r in _kafka.read(consumer, starts, ends)]
    finally:
        await _kafka.close(consumer)


@dataclass
class Plan:
    """What a replay will do."""

    selected: list[Record]
    already: dict[str, str]  # replay id -> where its replay is
    targets: dict[str, TopicPartition]  # replay id -> where it goes

    @property
    def todo(self) -> list[Record]:
        return [r for r in self.selected if replay_id(r) not in self.already]


async def plan_replay(kafka: _kafka.Kafka, letters: list[Record]) -> Plan:
    """Where each letter goes back to, and which ones were replayed before (and where)."""
    consumer = kafka.consumer()
    await _kafka.start(consumer)
    try:
        targets: dict[str, TopicPartition] = {}
        counts: dict[str, int] = {}
        for letter in letters:
            info = letter.dlq
            original = info.get("dlq-topic") or letter.topic.removesuffix(DLQ_SUFFIX)
            if original not in counts:
                counts[original] = len(await _kafka.topic_partitions(consumer, [original]))
            count = counts[original]
            partition = int(info.get("dlq-partition", "-1"))
            if not 0 <= partition < count:  # unknown or gone: the default partitioner decides
                partition = -1
            targets[replay_id(letter)] = TopicPartition(original, partition)
        # A letter's replays always go to the same partition, after the original offset.
        starts: dict[TopicPartition, int] = {}
        for letter in letters:
            tp = targets[replay_id(letter)]
            if tp.partition < 0:
                continue
            offset = int(letter.dlq.get("dlq-offset", "0") or 0)
            starts[tp] = min(starts.get(tp, offset), offset)
        already: dict[str, str] = {}
        if starts:
            ends = await _kafka.end_offsets(consumer, list(starts))
            async for raw in _kafka.read(consumer, starts, ends):
                record = Record.of(raw)
                origin = record.header(REPLAY_HEADER)
                if origin is not None:
                    already.setdefault(origin, record.where)
        return Plan(letters, already, targets)
    finally:
        await _kafka.close(consumer)


def replay_headers(letter: Record) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in letter.headers if not k.startswith("dlq-") and k != REPLAY_HEADER]
    return [*kept, (REPLAY_HEADER, replay_id(letter).encode())]


async def replay(kafka: _kafka.Kafka, plan: Plan) -> int:
    """Send the letters still to replay, in DLQ order, acks=all; returns how many."""
    todo = plan.todo
    producer = kafka.producer()
    await _kafka.start(producer)
    try:
        with Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("replay", total=len(todo))
            futures = []
            for letter in todo:
                target = plan.targets[replay_id(letter)]
                future = await producer.send(
                    target.topic,
                    letter.value,
                    key=letter.key,
                    headers=replay_headers(letter),
                    partition=target.partition if target.partition >= 0 else None,
                )
                future.add_done_callback(lambda _: progress.advance(task))
                futures.append(future)
            for future in futures:
                await future
    finally:
        await producer.stop()
    return len(todo)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dlq_app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    topic: Annotated[
        str | None, typer.Argument(help="A topic (or its .dlq); all topics when omitted.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per letter.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Do not shorten errors.")] = False,
) -> None:
    """Dead letters per topic: offset, reason, error, time, where each came from."""
    names = [dlq_name(topic)] if topic else [dlq_name(t) for t in TOPICS]
    kafka = options(ctx).kafka
    try:
        letters = run_async(read_all(kafka, names))
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        err.print(f"cannot read dead letters from {kafka.bootstrap}: {exc!r}", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        for letter in letters:
            info = letter.dlq
            body: dict[str, Any] = {
                "topic": letter.topic,
                "partition": letter.partition,
                "offset": letter.offset,
                "key": letter.key_text,
                "reason": info.get("dlq-reason"),
                "error": info.get("dlq-error"),
                "service": info.get("dlq-service"),
                "time": info.get("dlq-time"),
                "original": {
                    "topic": info.get("dlq-topic"),
                    "partition": _int(info.get("dlq-partition")),
                    "offset": _int(info.get("dlq-offset")),
                },
            }
            if letter.header(REPLAY_HEADER):
                body["replay_of"] = letter.header(REPLAY_HEADER)
            console.print(json.dumps(body, ensure_ascii=False, sort_keys=True), markup=False)
        return
    by_topic: dict[str, list[Record]] = {}
    for letter in letters:
        by_topic.setdefault(letter.topic, []).append(letter)
    if not letters:
        where = ", ".join(names) if topic else "any topic"
        console.print(f"no dead letters in {where}.", markup=False)
        return
    for name, items in by_topic.items():
        reasons = Counter(r.dlq.get("dlq-reason", "?") for r in items)
        summary = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
        table = Table(
            title=f"{name}: {len(items)} dead letter(s) ({summary})", title_justify="left"
        )
        table.add_column("offset", justify="right", no_wrap=True)
        table.add_column("time", no_wrap=True)
        table.add_column("reason", style="red", no_wrap=True)
        table.add_column("from", no_wrap=True)
        table.add_column("key", style="blue")
        table.add_column("error", overflow="fold")
        for r in items:
            info = r.dlq
            offset = str(r.offset) if r.partition == 0 else f"{r.partition}:{r.offset}"
            cells = [  # plain text: keys and errors come from outside, never markup
                offset,
                info.get("dlq-time", "")[:19].replace("T", " "),
                info.get("dlq-reason", "?"),
                f"[{info.get('dlq-partition', '?')}]@{info.get('dlq-offset', '?')}"
                + (f" by {info['dlq-service']}" if info.get("dlq-service") else ""),
                r.key_text or "",
                info.get("dlq-error", "") if full else _short(info.get("dlq-error", ""), 120),
            ]
            table.add_row(*(Text(cell) for cell in cells))
        print_table(table)
    console.print(f"{len(letters)} dead letter(s) in {len(by_topic)} topic(s).", markup=False)


def _parse_offsets(values: list[str]) -> set[tuple[int | None, int]]:
    out: set[tuple[int | None, int]] = set()
    for value in values:
        partition, _, offset = value.rpartition(":")
        try:
            out.add((int(partition) if partition else None, int(offset)))
        except ValueError:
            raise typer.BadParameter(f"{value!r}: expected OFFSET or PARTITION:OFFSET") from None
    return out


@dlq_app.command("replay")
def replay_dead_letters(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The original topic (or its .dlq).")],
    offset: Annotated[
        list[str] | None,
        typer.Option(
            "--offset",
            "-o",
            help="Dead letter offset in the .dlq (repeatable; P:N for partition P).",
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter of the topic.")] = False,
    reason: Annotated[
        list[str] | None, typer.Option("--reason", "-r", help="Only letters with this dlq-reason.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be replayed.")] = False,
) -> None:
    """Republish dead letters to their original topic after a fix, each at most once.

    The original key, value and headers go back to the original partition (per-key order
    kept) with a vitrine-replay-of header; letters replayed before are skipped.
    """
    wanted = _parse_offsets(offset or [])
    if not wanted and not all_:
        err.print("say which dead letters: --offset N (repeatable) or --all", markup=False)
        raise typer.Exit(2)
    name = dlq_name(topic)
    kafka = options(ctx).kafka

    async def work() -> tuple[list[Record], Plan | None, int]:
        letters = await read_all(kafka, [name])
        chosen = [
            r
            for r in letters
            if (all_ or (None, r.offset) in wanted or (r.partition, r.offset) in wanted)
            and (not reason or r.dlq.get("dlq-reason") in reason)
        ]
        if not chosen:
            return letters, None, 0
        plan = await plan_replay(kafka, chosen)
        if dry_run or not plan.todo:
            return letters, plan, 0
        return letters, plan, await replay(kafka, plan)

    try:
        letters, plan, sent = run_async(work())
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        err.print(f"replay from {name} failed: {exc!r}", markup=False)
        raise typer.Exit(1) from None
    found = {(r.partition, r.offset) for r in letters} | {(None, r.offset) for r in letters}
    missing = sorted(o for p, o in wanted if (p, o) not in found)
    for o in missing:
        err.print(f"no dead letter at offset {o} in {name}", markup=False)
    if plan is None:
        console.print(f"nothing to replay from {name}.", markup=False)
        raise typer.Exit(1 if missing else 0)
    for letter in plan.selected:
        rid = replay_id(letter)
        target = plan.targets[rid]
        where = f"{target.topic}[{target.partition}]" if target.partition >= 0 else target.topic
        if rid in plan.already:
            console.print(f"skipped {rid}: already replayed ({plan.already[rid]})", markup=False)
        elif dry_run:
            console.print(f"would replay {rid} -> {where} (key {letter.key_text})", markup=False)
        else:
            console.print(f"replayed {rid} -> {where} (key {letter.key_text})", markup=False)
    skipped = len(plan.selected) - len(plan.todo)
    verb = "would replay" if dry_run else "replayed"
    console.print(
        f"{verb} {len(plan.todo) if dry_run else sent} dead letter(s) from {name}"
        + (f"; {skipped} skipped as already replayed" if skipped else "")
        + ".",
        markup=False,
    )
    if missing:
        raise typer.Exit(1)
