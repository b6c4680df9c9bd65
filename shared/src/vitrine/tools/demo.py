"""The seed's 2022 timeline as the demo: load it, play it step by step, narrate what happened.

The timeline is data (``demo/timeline.jsonl``, see ``demo/README.md``): step lines
(``{"step": ..., "date": ..., "title": ..., "expect": [...], "absent": [...]}``) each followed by
the input events of that step (a CloudEvent with a ``topic`` field alongside). :func:`play`
publishes one step at a time to a running stack, waits until the system has answered (every
expectation seen on the output topics, then a quiet moment), narrates in plain English what
the services published (listed, refused, suspended, restored, accrued…), and returns a
:class:`DemoResult` saying which expectations were met.

Replays: every id in the timeline (subjects, ``*_id`` fields, event ids) gets a run suffix
(``p-celadon-vase.r1a2b3``) so a replay never collides with an earlier one; narration strips
it. Policies are platform-wide, though: an earlier run's policies still in force change what
a later run sees, so replay on a fresh stack, or pass ``cleanup=True`` to retract the demo's
policies at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from vitrine.contract.envelope import CONTENT_TYPE, InvalidEvent, decode
from vitrine.contract.events import models_for
from vitrine.contract.topics import DLQ_SUFFIX, TOPICS

JSON = dict[str, Any]
#: Where the timeline is looked for when no path is given (after ``VITRINE_DEMO_TIMELINE``).
DEFAULT_TIMELINES = (
    Path(__file__).resolve().parents[3] / "demo" / "timeline.jsonl",
    Path.cwd() / "demo" / "timeline.jsonl",
)
#: Topics the services publish to (what the demo watches), plus every dead-letter topic.
OUTPUTS = [name for name, t in TOPICS.items() if t.producer != "upstream"]
WATCHED = OUTPUTS + [t.dlq for t in TOPICS.values()]


class TimelineError(ValueError):
    """The timeline file is not valid (the message names the line)."""


# --- the timeline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """An output event that should (or, in ``absent``, should not) appear."""

    topic: str
    type: str
    subject: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    count: int = 1

    def matches(self, seen: Observed) -> bool:
        if seen.topic != self.topic or seen.type != self.type:
            return False
        if self.subject is not None and seen.subject != self.subject:
            return False
        return all(seen.data.get(k) == v for k, v in self.data.items())

    def describe(self, names: Names | None = None) -> str:
        show = names.show if names else (lambda s: s)
        parts = [f"{self.topic} {self.type}"]
        if self.subject:
            parts.append(show(self.subject))
        parts += [f"{k}={show(v) if isinstance(v, str) else v}" for k, v in self.data.items()]
        if self.count > 1:
            parts.append(f"x{self.count}")
        return " ".join(parts)


@dataclass(frozen=True)
class Step:
    """One moment of the story: what is published, and what the system should answer."""

    name: str
    date: str
    title: str
    events: tuple[tuple[str, JSON], ...]
    expect: tuple[Expectation, ...] = ()
    absent: tuple[Expectation, ...] = ()
    note: str | None = None
    #: Seconds to wait after publishing when the step expects no output (nothing to watch).
    pause: float | None = None


@dataclass(frozen=True)
class Timeline:
    steps: tuple[Step, ...]
    run_id: str
    #: product id → title, from the timeline's submissions (for narration).
    titles: Mapping[str, str]

    @property
    def policy_ids(self) -> list[str]:
        return list(
            dict.fromkeys(
                e["data"]["policy_id"]
                for s in self.steps
                for _, e in s.events
                if e["type"] == "policy.announced"
            )
        )

    @property
    def subjects(self) -> set[str]:
        """Every id the timeline's events and expectations name (after the run suffix)."""
        ids: set[str] = set()
        for s in self.steps:
            for _, e in s.events:
                ids.add(e["subject"])
                ids.update(_ids_in(e["data"]))
            for x in (*s.expect, *s.absent):
                if x.subject:
                    ids.add(x.subject)
        return ids


def _ids_in(value: Any, key: str = "") -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _ids_in(v, k)
    elif isinstance(value, list) and key.endswith("_ids"):
        yield from (v for v in value if isinstance(v, str))
    elif isinstance(value, str) and key.endswith("_id"):
        yield value


def _suffixed(value: Any, suffix: str, key: str = "") -> Any:
    """``value`` with every id (``*_id`` / ``*_ids`` fields, at any depth) suffixed."""
    if not suffix:
        return value
    if isinstance(value, dict):
        return {k: _suffixed(v, suffix, k) for k, v in value.items()}
    if isinstance(value, list):
        if key.endswith("_ids"):
            return [f"{v}{suffix}" if isinstance(v, str) else v for v in value]
        return [_suffixed(v, suffix) for v in value]
    if isinstance(value, str) and key.endswith("_id"):
        return f"{value}{suffix}"
    return value


def default_timeline_path() -> Path:
    env = os.environ.get("VITRINE_DEMO_TIMELINE")
    if env:
        return Path(env)
    for path in DEFAULT_TIMELINES:
        if path.exists():
            return path
    raise FileNotFoundError("demo/timeline.jsonl not found; set VITRINE_DEMO_TIMELINE to its path")


def new_run_id() -> str:
    return f"r{uuid.uuid4().hex[:6]}"


def load_timeline(path: str | Path | None = None, *, run_id: str = "") -> Timeline:
    """Read and validate the timeline; with ``run_id``, suffix every id with ``.<run_id>``.

    Every event is checked as the services would (CloudEvent envelope, known type on its
    topic, ``data`` schema, key == subject), so a bad line fails here, not in the DLQ.
    """
    source = Path(path) if path is not None else default_timeline_path()
    suffix = f".{run_id}" if run_id else ""
    steps: list[Step] = []
    current: JSON | None = None
    events: list[tuple[str, JSON]] = []
    titles: dict[str, str] = {}

    def close() -> None:
        if current is not None:
            steps.append(_step(current, events, suffix))

    for n, raw in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("//"):
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TimelineError(f"{source}:{n}: not JSON: {exc}") from exc
        if "step" in line:
            close()
            current, events = line, []
            continue
        if current is None:
            raise TimelineError(f"{source}:{n}: an event before the first step line")
        topic = line.pop("topic", None)
        if topic not in TOPICS or TOPICS[topic].producer != "upstream":
            raise TimelineError(f"{source}:{n}: {topic!r} is not an input topic")
        event = {
            **line,
            "id": f"{line.get('id')}{suffix}",
            "subject": f"{line.get('subject')}{suffix}",
            "data": _suffixed(line.get("data", {}), suffix),
        }
        checked = decode(json.dumps(event).encode(), event["subject"].encode(), models_for(topic))
        if isinstance(checked, InvalidEvent):
            raise TimelineError(f"{source}:{n}: {checked.reason}: {checked.error}")
        if event["type"] == "product.submitted" and "title" in event["data"]:
            titles[event["data"]["product_id"]] = event["data"]["title"]
        events.append((topic, event))
    close()
    if not steps:
        raise TimelineError(f"{source}: no steps")
    return Timeline(tuple(steps), run_id, titles)


def _expectation(raw: JSON, suffix: str) -> Expectation:
    subject = raw.get("subject")
    return Expectation(
        topic=raw["topic"],
        type=raw["type"],
        subject=f"{subject}{suffix}" if subject else None,
        data=_suffixed(raw.get("data", {}), suffix),
        count=int(raw.get("count", 1)),
    )


def _step(raw: JSON, events: list[tuple[str, JSON]], suffix: str) -> Step:
    return Step(
        name=raw["step"],
        date=raw.get("date", ""),
        title=str(raw.get("title", raw["step"])),
        events=tuple(events),
        expect=tuple(_expectation(x, suffix) for x in raw.get("expect", [])),
        absent=tuple(_expectation(x, suffix) for x in raw.get("absent", [])),
        note=raw.get("note"),
        pause=raw.get("pause"),
    )


# --- watching the output topics ------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """One record the services published about the demo's aggregates."""

    topic: str
    subject: str
    type: str
    data: JSON
    headers: Mapping[str, str]
    dead_letter: bool = False


class Watcher:
    """Reads the output and dead-letter topics from the beginning, keeps the demo's records.

    From the beginning, because Tansu answers ListOffsets "latest" wrongly (DESIGN.md §1);
    records are kept only when their key is one of the demo's subjects.
    """

    def __init__(
        self,
        bootstrap: str,
        subjects: set[str],
        client_args: Mapping[str, Any] | None = None,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            **dict(client_args or {}),
        )
        self._subjects = {s.encode() for s in subjects}
        self.records: list[Observed] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Watcher:
        await self._consumer.start()
        parts: list[TopicPartition] = []
        deadline = time.monotonic() + 30
        # Topics created a moment ago may not be in the broker's metadata answer yet.
        while not parts and time.monotonic() < deadline:
            await self._consumer._client.force_metadata_update()
            available = await self._consumer.topics()
            parts = [
                TopicPartition(t, p)
                for t in WATCHED
                if t in available
                for p in sorted(self._consumer.partitions_for_topic(t) or ())
            ]
            if not parts:
                await asyncio.sleep(0.2)
        if not parts:
            raise RuntimeError("none of the demo's topics exists: run `vitrine topics ensure`")
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run(), name="demo-watcher")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            added = False
            for records in batch.values():
                for r in records:
                    if r.key not in self._subjects:
                        continue
                    seen = _observe(r)
                    if seen is not None:
                        self.records.append(seen)
                        added = True
            if added:
                self._changed.set()

    async def changed(self, timeout: float) -> None:
        """Wait until something new arrives (or ``timeout``)."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def missing(self, expectations: Iterable[Expectation]) -> list[Expectation]:
        return [x for x in expectations if sum(1 for r in self.records if x.matches(r)) < x.count]

    def present(self, expectations: Iterable[Expectation]) -> list[Expectation]:
        return [x for x in expectations if any(x.matches(r) for r in self.records)]


def _observe(record: Any) -> Observed | None:
    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
    key = record.key.decode("utf-8", "replace")
    if record.topic.endswith(DLQ_SUFFIX):
        return Observed(record.topic, key, "dead_letter", {}, headers, dead_letter=True)
    try:
        event = json.loads(record.value)
    except (TypeError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    data = event.get("data")
    return Observed(
        record.topic,
        str(event.get("subject", key)),
        str(event.get("type", "")),
        data if isinstance(data, dict) else {},
        headers,
    )


# --- narration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """How ids read in the narration: the run suffix dropped, products by title."""

    run_id: str
    titles: Mapping[str, str]

    def show(self, value: str) -> str:
        suffix = f".{self.run_id}"
        return value[: -len(suffix)] if self.run_id and value.endswith(suffix) else value

    def product(self, product_id: str | None) -> str:
        if not product_id:
            return "?"
        title = self.titles.get(product_id)
        return f"'{title}'" if title else self.show(product_id)


def _yuan(fen: Any) -> str:
    return f"¥{int(fen) / 100:,.2f}" if isinstance(fen, int) else "¥?"


def _pct(bps: Any) -> str:
    return f"{int(bps) / 100:g} %" if isinstance(bps, int) else "?"


def _reasons(data: JSON, names: Names) -> str:
    out = []
    for r in data.get("reasons") or []:
        text = r.get("code", "?")
        if r.get("policy_id"):
            text += f" ({names.show(r['policy_id'])})"
        out.append(text)
    return ", ".join(out) or "no reason given"


def describe(seen: Observed, names: Names) -> str | None:
    """One plain-English line for an output event (``None``: not worth a line)."""
    d, s = seen.data, names.show
    if seen.dead_letter:
        return (
            f"DEAD-LETTERED  on {seen.topic}: {seen.headers.get('dlq-reason', '?')} "
            f"({seen.headers.get('dlq-error', '')[:120]})"
        )
    why = str(d.get("reason", "?")).replace("_", " ")
    if d.get("policy_id"):
        why = (
            f"by {s(d['policy_id'])}"
            if d.get("reason") == "policy"
            else f"{why}, {s(d['policy_id'])}"
        )
    product = names.product(d.get("product_id"))
    creator = s(d.get("creator_id", seen.subject))
    lines: dict[str, Callable[[], str | None]] = {
        # catalog
        "product.listed": lambda: (
            f"catalog       listed {product} of {s(d.get('merchant_id', '?'))} "
            f"[{_source(d.get('source'))}] at {_yuan(d.get('price_fen'))}"
        ),
        "product.rejected": lambda: (
            f"catalog       REJECTED at review: {product}: {_reasons(d, names)}"
        ),
        "product.delisted": lambda: f"catalog       delisted {product}: {d.get('reason', '?')}",
        "product.refused": lambda: f"catalog       REFUSED {product}: {_reasons(d, names)}",
        "product.stock_changed": lambda: (
            f"catalog       stock of {product} SKU {s(d.get('sku_id', '?'))} set to "
            f"{d.get('stock')} without review (total {d.get('total_stock')})"
        ),
        "product.sold_out": lambda: f"catalog       {product} is SOLD OUT (still listed)",
        "product.back_in_stock": lambda: (
            f"catalog       {product} is back in stock ({d.get('total_stock')})"
        ),
        "review.escalated": lambda: (
            f"review        escalated {product} to manual review: {_reasons(d, names)}"
        ),
        # showcase
        "showcase.item_added": lambda: (
            f"showcase      {creator} added {product} (position {d.get('position')})"
            + (f" through offer {s(d['offer_id'])}" if d.get("offer_id") else "")
        ),
        "showcase.item_refused": lambda: (
            f"showcase      REFUSED {creator} adding {product}: {_reasons(d, names)}"
        ),
        "showcase.item_removed": lambda: f"showcase      {creator} removed {product}",
        "showcase.item_moved": lambda: (
            f"showcase      {creator} moved {product} to position {d.get('position')}"
        ),
        "showcase.item_suspended": lambda: (
            f"showcase      SUSPENDED {product} in {creator}'s showcase ({why})"
        ),
        "showcase.item_restored": lambda: (
            f"showcase      RESTORED {product} in {creator}'s showcase"
            + (f" ({s(d['policy_id'])} lifted)" if d.get("policy_id") else "")
        ),
        # live
        "live.session_started": lambda: (
            f"live          {creator} went live: session {s(d.get('session_id', '?'))} "
            f'"{d.get("title", "")}"'
        ),
        "live.session_refused": lambda: (
            f"live          REFUSED {creator}'s session {s(d.get('session_id', '?'))}: "
            f"{_reasons(d, names)}"
        ),
        "live.item_added": lambda: (
            f"live          {creator} put {product} in the cart of {s(d.get('session_id', '?'))}"
            + (f" through offer {s(d['offer_id'])}" if d.get("offer_id") else " from the showcase")
        ),
        "live.item_refused": lambda: (
            f"live          REFUSED {creator} putting {product} in the cart: {_reasons(d, names)}"
        ),
        "live.item_removed": lambda: f"live          {creator} took {product} out of the cart",
        "live.item_explaining": lambda: f"live          {creator} is presenting {product} now",
        "live.item_suspended": lambda: (
            f"live          SUSPENDED {product} in {creator}'s live cart ({why})"
        ),
        "live.item_restored": lambda: (
            f"live          RESTORED {product} in {creator}'s live cart"
            + (f" ({s(d['policy_id'])} lifted)" if d.get("policy_id") else "")
        ),
        "live.session_ended": lambda: (
            f"live          {creator} ended session {s(d.get('session_id', '?'))} "
            f"with {_n(d.get('items'), 'item')} in the cart"
        ),
        # distribution
        "offer.activated": lambda: (
            f"distribution  offer {s(d.get('offer_id', '?'))} on {product}: "
            f"{_pct(d.get('commission_bps'))} commission, {d.get('plan', '?')} plan"
        ),
        "offer.refused": lambda: (
            f"distribution  REFUSED offer {s(d.get('offer_id', '?'))}: {_reasons(d, names)}"
        ),
        "offer.suspended": lambda: (
            f"distribution  SUSPENDED offer {s(d.get('offer_id', '?'))} on {product} ({why})"
        ),
        "offer.restored": lambda: (
            f"distribution  RESTORED offer {s(d.get('offer_id', '?'))} on {product}"
        ),
        "offer.withdrawn": lambda: f"distribution  offer {s(d.get('offer_id', '?'))} withdrawn",
        "commission.accrued": lambda: (
            f"distribution  ACCRUED {_yuan(d.get('commission_fen'))} for "
            f"{s(d.get('creator_id', '?'))} on order {s(d.get('order_id', '?'))} "
            f"({_pct(d.get('commission_bps'))} of {_yuan(d.get('amount_fen'))})"
        ),
        "commission.settled": lambda: (
            f"distribution  SETTLED {_yuan(d.get('commission_fen'))} for "
            f"{s(d.get('creator_id', '?'))} on order {s(d.get('order_id', '?'))}"
        ),
        "commission.adjusted": lambda: (
            f"distribution  ADJUSTED the commission on order {s(d.get('order_id', '?'))} to "
            f"{_yuan(d.get('commission_fen'))} after a refund (change "
            f"{_yuan(d.get('delta_fen'))})"
        ),
        "commission.cancelled": lambda: (
            f"distribution  CANCELLED the commission on order {s(d.get('order_id', '?'))}"
        ),
        "commission.refused": lambda: (
            f"distribution  NO COMMISSION on order {s(d.get('order_id', '?'))}: "
            f"{_reasons(d, names)}"
        ),
        # compliance
        "policy.accepted": lambda: (
            f'compliance    accepted {s(d.get("policy_id", "?"))}: "{d.get("title", "")}" — '
            f"no new additions from {_day(d.get('effective_at'))}, "
            + (
                f"existing goods suspended from {_day(d.get('enforce_existing_at'))}"
                if d.get("enforce_existing_at")
                else "existing goods left alone"
            )
        ),
        "policy.rejected": lambda: (
            f"compliance    REJECTED {s(d.get('policy_id', '?'))}: {_reasons(d, names)}"
        ),
        "policy.impact_assessed": lambda: (
            f"compliance    impact of {s(d.get('policy_id', '?'))}: it would touch "
            f"{_n(d.get('items'), 'showcase item')}, "
            + (f"{_n(d['cart_items'], 'live cart item')}, " if d.get("cart_items") else "")
            + f"{_n(d.get('offers'), 'offer')}, "
            f"{_n(d.get('creators'), 'creator')}, {_n(d.get('merchants'), 'merchant')}"
        ),
        "policy.in_force": lambda: (
            f"compliance    IN FORCE {s(d.get('policy_id', '?'))}: "
            + (
                "new additions are blocked"
                if d.get("phase") == "block_new"
                else "existing goods are to be suspended"
            )
        ),
        "policy.lifted": lambda: (
            f"compliance    LIFTED {s(d.get('policy_id', '?'))}"
            + (f" ({d['reason']})" if d.get("reason") else "")
            + ": what it suspended comes back"
        ),
        "policy.enforcement_completed": lambda: (
            f"compliance    enforcement of {s(d.get('policy_id', '?'))} complete "
            f"({d.get('phase')}): "
            + (
                ", ".join(f"{svc} {n}" for svc, n in (d.get("counts") or {}).items())
                or "no service enforces its surfaces"
            )
        ),
        "enforcement.reported": lambda: (
            f"{d.get('service', '?'):<13} reported {d.get('phase')} of "
            f"{s(d.get('policy_id', '?'))}: {d.get('affected')} affected"
        ),
    }
    make = lines.get(seen.type)
    return make() if make else None


def _n(count: Any, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _source(source: Any) -> str:
    if not isinstance(source, dict):
        return "?"
    kind = str(source.get("kind", "?"))
    return f"{kind}:{source['platform']}" if source.get("platform") else kind


def _day(value: Any) -> str:
    if not isinstance(value, str):
        return "?"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M %z")
    except ValueError:
        return value


# --- playing -------------------------------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    date: str
    title: str
    published: int
    seconds: float
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


@dataclass
class DemoResult:
    run_id: str
    steps: list[StepResult]
    records: list[Observed]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def count(self, type: str, topic: str | None = None) -> int:
        return sum(1 for r in self.records if r.type == type and topic in (None, r.topic))

    def problems(self) -> list[str]:
        out = []
        for s in self.steps:
            out += [f"{s.name}: expected but not seen: {m}" for m in s.missing]
            out += [f"{s.name}: should not have happened: {u}" for u in s.unexpected]
        return out


def _wire(event: JSON, now: datetime) -> bytes:
    """An event as published. ``order.paid``'s ``paid_at`` becomes the replay's now.

    Distribution judges a commission by the offer's state at ``paid_at`` on its own clock,
    and a replayed offer becomes active now, not in 2022: an order "paid in 2022" would
    predate every offer. The event's ``time`` keeps its 2022 date.
    """
    if event["type"] == "order.paid":
        event = {**event, "data": {**event["data"], "paid_at": now.isoformat()}}
    return json.dumps(event, ensure_ascii=False).encode()


async def play(
    bootstrap: str,
    *,
    narrate: Callable[[str], None],
    run_id: str | None = None,
    timeline: Timeline | None = None,
    path: str | Path | None = None,
    step_timeout: float = 60.0,
    quiet: float = 1.0,
    cleanup: bool = False,
    client_args: Mapping[str, Any] | None = None,
    steps: Sequence[str] | None = None,
) -> DemoResult:
    """Play the timeline against the stack at ``bootstrap``, narrating each step.

    ``run_id``: suffix for every id (``None``: a fresh one; ``""``: the ids as written).
    Each step waits until its expectations are seen (at most ``step_timeout`` s) and then
    for ``quiet`` s without news; a step expecting nothing waits its ``pause``.
    ``cleanup`` retracts the demo's policies at the end. ``steps`` plays only the named
    steps (for trying one out). Returns what was seen and what was missing.
    """
    run = new_run_id() if run_id is None else run_id
    tl = timeline or load_timeline(path, run_id=run)
    names = Names(tl.run_id, tl.titles)
    started = time.monotonic()
    args = dict(client_args or {})
    watcher = await Watcher(bootstrap, tl.subjects, args).start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **args)
    await producer.start()
    results: list[StepResult] = []
    narrated = 0
    try:
        if tl.run_id:
            narrate(f"(this run's ids end in .{tl.run_id}; shown without it)")
        chosen = [s for s in tl.steps if steps is None or s.name in steps]
        if cleanup:
            chosen.append(_cleanup_step(tl))
        for step in chosen:
            step_started = time.monotonic()
            narrate("")
            narrate(f"── {step.date} · {step.title}")
            if step.note:
                narrate(f"   ({step.note})")
            now = datetime.now(UTC)
            for topic, event in step.events:
                await producer.send_and_wait(
                    topic,
                    _wire(event, now),
                    key=event["subject"].encode(),
                    headers=[("content-type", CONTENT_TYPE.encode())],
                )
            result = StepResult(step.name, step.date, step.title, len(step.events), 0.0)

            def flush(result: StepResult = result) -> None:
                nonlocal narrated
                while narrated < len(watcher.records):
                    line = describe(watcher.records[narrated], names)
                    narrated += 1
                    if line:
                        result.lines.append(line)
                        narrate("   " + line)

            deadline = time.monotonic() + step_timeout
            while watcher.missing(step.expect) and time.monotonic() < deadline:
                flush()
                await watcher.changed(min(0.2, max(deadline - time.monotonic(), 0.01)))
            await _settle(watcher, quiet if step.expect else (step.pause or quiet), flush)
            flush()
            result.missing = [x.describe(names) for x in watcher.missing(step.expect)]
            result.unexpected = [x.describe(names) for x in watcher.present(step.absent)]
            for m in result.missing:
                narrate(f"   !! expected but not seen: {m}")
            for u in result.unexpected:
                narrate(f"   !! should not have happened: {u}")
            result.seconds = round(time.monotonic() - step_started, 2)
            results.append(result)
    finally:
        await producer.stop()
        await watcher.stop()
    outcome = DemoResult(tl.run_id, results, list(watcher.records), time.monotonic() - started)
    narrate("")
    verdict = "as expected" if outcome.ok else f"with {len(outcome.problems())} problem(s)"
    narrate(f"── the demo played {len(results)} steps in {outcome.seconds:.1f} s, {verdict}")
    return outcome


async def _settle(watcher: Watcher, seconds: float, flush: Callable[[], None]) -> None:
    """Wait until ``seconds`` pass without a new record (at most 10 quiet periods)."""
    for _ in range(10):
        before = len(watcher.records)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            flush()
            await watcher.changed(max(end - time.monotonic(), 0.01))
        if len(watcher.records) == before:
            return


def _cleanup_step(tl: Timeline) -> Step:
    now = datetime.now(UTC).isoformat()
    events = tuple(
        (
            "platform.policies",
            {
                "specversion": "1.0",
                "id": f"demo-cleanup-{pid}",
                "source": "/vitrine/demo",
                "type": "policy.retracted",
                "subject": pid,
                "time": now,
                "datacontenttype": "application/json",
                "data": {"policy_id": pid, "reason": "demo cleanup"},
            },
        )
        for pid in tl.policy_ids
    )
    return Step(
        name="cleanup",
        date="(now)",
        title="Cleanup: the demo retracts its policies so that a replay starts clean",
        events=events,
        expect=tuple(
            Expectation("compliance.rulings", "policy.lifted", pid) for pid in tl.policy_ids
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vitrine.tools.demo [--bootstrap HOST:PORT] [--cleanup]``."""
    parser = argparse.ArgumentParser(description="Play the seed's 2022 timeline.")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("VITRINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--timeline", default=None)
    parser.add_argument("--run-id", default=None, help='"" keeps the ids as written')
    parser.add_argument("--cleanup", action="store_true")
    parser.add_argument("--step-timeout", type=float, default=60.0)
    ns = parser.parse_args(argv)
    result = asyncio.run(
        play(
            ns.bootstrap,
            narrate=print,
            run_id=ns.run_id,
            path=ns.timeline,
            cleanup=ns.cleanup,
            step_timeout=ns.step_timeout,
        )
    )
    for problem in result.problems():
        print(problem)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
