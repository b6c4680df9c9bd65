"""The generated parts of docs/CONTRACT.md: topics, every event type's fields, every code.

The prose of CONTRACT.md is written by hand; the tables between ``<!-- generated:NAME -->``
and ``<!-- end:NAME -->`` come from the code (topic registry, event models, reason registry),
so `vitrine asyncapi` rewrites them and `vitrine asyncapi --check` fails when they drift.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vitrine.contract.events import EVENT_TYPES_BY_TOPIC, INPUT_TOPICS
from vitrine.contract.events.base import Reason, Source
from vitrine.contract.events.policies import DisallowSource, Exemptions, RequireShop, SourceMatch
from vitrine.contract.reasons import CODE_SETS, DEAD_LETTER_REASONS, ReasonCode
from vitrine.contract.topics import TOPICS

DEFAULT_PATH = Path("docs/CONTRACT.md")
PLANNED = "planned — not yet served by this release"
_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
_NESTED: tuple[type[BaseModel], ...] = (
    Reason,
    Source,
    SourceMatch,
    DisallowSource,
    RequireShop,
    Exemptions,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type(schema: dict[str, Any], name: str) -> str:
    """A property's JSON schema, in a few words."""
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[1]}`"
    if "anyOf" in schema:
        parts = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(_type(p, name) for p in parts)
    if "const" in schema:
        return f"`{schema['const']!r}`".replace("'", '"')
    if "enum" in schema:
        return " | ".join(f'`"{v}"`' for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "date-time":
            return "time (RFC 3339, with offset)"
        if schema.get("pattern") == _ID_PATTERN:
            return "id"
        return f"string (≤ {schema['maxLength']})" if "maxLength" in schema else "string"
    if kind == "integer":
        unit = " fen" if name.endswith("_fen") else " bps" if name.endswith("_bps") else ""
        low, high = schema.get("minimum"), schema.get("maximum")
        bounds = f" {low:,}…{high:,}" if low is not None and high is not None else ""
        return f"integer{unit}{bounds}"
    if kind == "array":
        most = f", ≤ {schema['maxItems']}" if "maxItems" in schema else ""
        return f"list of {_type(schema.get('items', {}), name)}{most}"
    if kind == "object":
        return (
            "object (string keys → scalar values)"
            if "additionalProperties" in schema
            else ("object")
        )
    if kind in ("boolean", "number"):
        return str(kind)
    return "any JSON"


def _fields(model: type[BaseModel]) -> list[str]:
    schema = model.model_json_schema(ref_template="#/{model}")
    required = set(schema.get("required", []))
    rows = ["| field | type | required |", "|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        need = (
            "yes"
            if name in required
            else "no"
            + (
                f" (default `{_json(prop['default'])}`)"
                if "default" in prop and prop["default"] not in (None, [], {})
                else ""
            )
        )
        rows.append(f"| `{name}` | {_cell(_type(prop, name))} | {need} |")
    return rows


def _json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _doc(model: type[BaseModel]) -> str:
    text = " ".join((model.__doc__ or "").split()).replace("``", "`")
    own = model.__doc__ is not None and "__doc__" in model.__dict__
    return text if own and not text.startswith("Base of") else ""


def topics_table() -> str:
    rows = [
        "| topic | direction | key (== subject) | published by | partitions | types |",
        "|---|---|---|---|---|---|",
    ]
    for topic in TOPICS.values():
        direction = "input" if topic.name in INPUT_TOPICS else "output"
        types = ", ".join(f"`{t}`" for t in topic.types)
        rows.append(
            f"| `{topic.name}` | {direction} | `{topic.key}` | {topic.producer} | "
            f"{topic.partitions} | {types} |"
        )
    return "\n".join(rows)


def events_section() -> str:
    out: list[str] = []
    for topic, types in EVENT_TYPES_BY_TOPIC.items():
        out.append(f"### `{topic}`\n")
        for type_name, model in types.items():
            out.append(f"#### `{type_name}`\n")
            doc = _doc(model)
            if doc:
                out.append(doc + "\n")
            out.extend(_fields(model))
            out.append("")
    out.append("### Objects inside `data`\n")
    for nested in _NESTED:
        out.append(f"#### `{nested.__name__}`\n")
        doc = _doc(nested)
        if doc:
            out.append(doc + "\n")
        out.extend(_fields(nested))
        out.append("")
    return "\n".join(out).rstrip()


def _code_rows(codes: tuple[ReasonCode, ...], *, planned: bool = False) -> list[str]:
    rows = ["| code | meaning |", "|---|---|"]
    for c in codes:
        mark = f" — *{PLANNED}*" if c.planned or planned else ""
        rows.append(f"| `{c.code}` | {_cell(c.meaning)}{mark} |")
    return rows


def codes_section() -> str:
    out: list[str] = []
    for code_set in CODE_SETS:
        where = ", ".join(f"`{t}`" for t in code_set.event_types)
        field = "`reasons[].code`" if code_set.field == "reasons" else "`reason`"
        title = f"#### {code_set.name[0].upper()}{code_set.name[1:]}"
        out.append(title + (f" — *{PLANNED}*" if code_set.planned else "") + "\n")
        note = f"In {field} of {where}."
        if code_set.open:
            note += " Open set: a reviewer's own codes are passed through unchanged."
        out.append(note + "\n")
        out.extend(_code_rows(code_set.codes, planned=code_set.planned))
        out.append("")
    out.append("#### Dead-letter reasons (`dlq-reason` header)\n")
    out.extend(_code_rows(DEAD_LETTER_REASONS))
    return "\n".join(out)


SECTIONS = {"topics": topics_table, "events": events_section, "codes": codes_section}


def render(text: str) -> str:
    """``text`` with every generated section replaced by what the code says now."""
    for name, make in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} [^\n]*-->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.DOTALL
        )
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"CONTRACT.md has no generated:{name} section")
        section = f"{match.group(1)}{make()}\n{match.group(2)}"
        text = text[: match.start()] + section + text[match.end() :]
    return text


def is_current(path: Path = DEFAULT_PATH) -> bool:
    """Whether the generated sections of ``path`` match the code."""
    text = path.read_text(encoding="utf-8")
    return render(text) == text


def write(path: Path = DEFAULT_PATH) -> bool:
    """Rewrite the generated sections of ``path``; True if anything changed."""
    text = path.read_text(encoding="utf-8")
    new = render(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
