"""How records look on a terminal: one readable line per event, or raw JSON for piping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from vitrine.contract.topics import DLQ_SUFFIX, TOPICS
from vitrine.runtime.messaging.dlq import dlq_info

#: Output for people and pipes: no wrapping (one record = one line), no auto-highlighting.
console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def print_table(table: Any) -> None:
    """A table at the terminal's width, or wide enough not to wrap when piped."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(file=console.file, width=220, highlight=False).print(table)


#: Fields of ``data`` worth a glance besides ids (``*_id``) and reason codes.
_KEY_FIELDS = {
    "version",
    "verdict",
    "reason",
    "phase",
    "plan",
    "position",
    "shop_kind",
    "service",
    "affected",
    "commission_bps",
    "stock",
    "title",
    "items",
    "command",
}
_BAD = ("refused", "rejected", "suspended", "cancelled", "withdrawn", "delisted", "escalated")
_GOOD = (
    "listed",
    "approved",
    "accepted",
    "activated",
    "restored",
    "added",
    "accrued",
    "started",
    "explaining",
)


@dataclass(frozen=True)
class Record:
    """One Kafka record as the CLI handles it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, r: Any) -> Record:
        return cls(
            r.topic,
            r.partition,
            r.offset,
            r.timestamp,
            r.key,
            r.value,
            tuple((k, bytes(v or b"")) for k, v in (r.headers or ())),
        )

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def is_dlq(self) -> bool:
        return self.topic.endswith(DLQ_SUFFIX)

    @property
    def dlq(self) -> dict[str, str]:
        return dlq_info(list(self.headers))

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return None

    def event(self) -> dict[str, Any] | None:
        """The value as a JSON object, or None when it is not one."""
        if self.value is None:
            return None
        try:
            parsed = json.loads(self.value)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return parsed if isinstance(parsed, dict) else None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def matches(record: Record, types: list[str], subjects: list[str]) -> bool:
    """Does the record pass the ``--type`` / ``--subject`` filters (any of each)?"""
    if not types and not subjects:
        return True
    event = record.event() or {}
    if types:
        kind = event.get("type") or record.header("ce-type")
        if kind not in types:
            return False
    if subjects:
        subject = event.get("subject") or record.key_text
        if subject not in subjects and record.key_text not in subjects:
            return False
    return True


def key_fields(data: Any, *, skip: tuple[str, str] | None = None) -> list[str]:
    """``k=v`` for the ids, amounts, codes and reason codes of an event's ``data``."""
    if not isinstance(data, dict):
        return []
    out: list[str] = []
    for k, v in data.items():
        if skip is not None and (k, v) == skip:
            continue  # the aggregate id, already shown as the subject
        if k == "reasons" and isinstance(v, list):
            codes = [str(r.get("code")) for r in v if isinstance(r, dict)]
            out.append(f"reasons={','.join(codes) or '-'}")
        elif k == "source" and isinstance(v, dict):
            kind = v.get("kind")
            out.append(f"source={kind}/{v['platform']}" if v.get("platform") else f"source={kind}")
        elif isinstance(v, list) and k.endswith("_ids"):
            shown = ",".join(str(x) for x in v[:3]) + (f",+{len(v) - 3}" if len(v) > 3 else "")
            out.append(f"{k}=[{shown}]")
        elif isinstance(v, (str, int, float, bool)) and (
            k.endswith(("_id", "_fen", "_bps")) or k in _KEY_FIELDS
        ):
            out.append(f"{k}={v}")
        elif k == "rules" and isinstance(v, list):
            out.append(f"rules={','.join(str(r.get('kind')) for r in v if isinstance(r, dict))}")
    return out


def _time(value: Any, timestamp_ms: int | None) -> str:
    if isinstance(value, str) and value:
        return value[:19].replace("T", " ") + (value[19:] if value[19:20] in "+-Z" else "")
    if timestamp_ms is not None:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "-"


def _type_style(kind: str) -> str:
    if kind.endswith(_BAD):
        return "bold yellow" if kind.endswith(("escalated", "withdrawn")) else "bold red"
    if kind.endswith(_GOOD):
        return "bold green"
    return "bold"


def event_line(record: Record) -> Text:
    """``time  topic[p]@offset  type  subject  key fields  corr=…`` for one event."""
    event = record.event()
    line = Text()
    if event is None:
        line.append(_time(None, record.timestamp_ms), "dim")
        line.append(f"  {record.where}  ", "cyan")
        line.append("<not a JSON object>", "bold red")
        line.append(f"  key={record.key_text}  {len(record.value or b'')} bytes", "dim")
        return line
    kind = str(event.get("type", "?"))
    subject = str(event.get("subject", record.key_text or "?"))
    topic = TOPICS.get(record.topic)
    skip = (topic.key, subject) if topic is not None else None
    line.append(_time(event.get("time"), record.timestamp_ms), "dim")
    line.append(f"  {record.where}  ", "cyan")
    line.append(kind, _type_style(kind))
    line.append(f"  {subject}", "bold blue")
    fields = key_fields(event.get("data"), skip=skip)
    if fields:
        line.append("  " + " ".join(fields))
    correlation = event.get("correlationid")
    if correlation:
        line.append(f"  corr={correlation}", "dim")
    return line


def dead_letter_line(record: Record) -> Text:
    """``dlq-time  dlq[p]@offset  reason  from topic[p]@offset  key  type subject  error``."""
    info = record.dlq
    event = record.event() or {}
    line = Text()
    line.append(_time(info.get("dlq-time"), record.timestamp_ms), "dim")
    line.append(f"  {record.where}  ", "cyan")
    line.append(info.get("dlq-reason", "?"), "bold red")
    partition, offset = info.get("dlq-partition", "?"), info.get("dlq-offset", "?")
    origin = f"{info.get('dlq-topic', '?')}[{partition}]@{offset}"
    line.append(f"  from {origin}")
    if info.get("dlq-service"):
        line.append(f" by {info['dlq-service']}")
    line.append(f"  key={record.key_text}", "bold blue")
    if event.get("type"):
        line.append(f"  {event.get('type')} {event.get('subject', '')}".rstrip())
    replayed = record.header(REPLAY_HEADER)
    if replayed:
        line.append(f"  (a replay of {replayed})", "dim")
    line.append(f"  error={info.get('dlq-error', '')}", "dim")
    return line


def raw_json(record: Record) -> str | None:
    """The record's value as one compact JSON line (None when it is not JSON)."""
    event = record.event()
    if event is None:
        return None
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def dead_letter_json(record: Record) -> str:
    """A dead letter for piping: where it came from, why, and the original value."""
    event = record.event()
    body: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key_text,
        "dlq": record.dlq,
        "event": event,
    }
    if event is None:
        body["value"] = (record.value or b"").decode("utf-8", "replace")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


#: Header a replayed dead letter carries: ``<dlq topic>/<partition>/<offset>`` it came from.
REPLAY_HEADER = "vitrine-replay-of"
