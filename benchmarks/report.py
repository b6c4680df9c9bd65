"""Results: printed as Markdown and written into docs/PERFORMANCE.md between markers.

Each benchmark owns one block (``<!-- bench:NAME:begin -->`` … ``<!-- bench:NAME:end -->``);
a run rewrites its block and leaves the rest of the document (the analysis) alone. A benchmark
run on several brokers is one block (:func:`side_by_side`): its headline numbers in one table,
a column per broker, then each broker's own section with its load average and details.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import BROKER_NAMES, load_average, machine

COMMAND = "uv run python -m benchmarks "
DOC = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"


@dataclass
class Report:
    """One benchmark's results as Markdown."""

    name: str
    title: str
    command: str = field(default_factory=lambda: (COMMAND + shlex.join(sys.argv[1:])).strip())
    facts: dict[str, str] = field(default_factory=machine)
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The broker it ran on (``apache`` | ``tansu``), "" when not broker-specific.
    broker: str = ""
    #: The few numbers compared across brokers (label → value), in display order.
    headline: dict[str, str] = field(default_factory=dict)
    #: One report per broker (a side-by-side report only).
    sections: list[Report] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "---|" * len(header))
        for row in rows:
            self.lines.append("| " + " | ".join(row) + " |")
        self.lines.append("")

    def finish(self) -> Report:
        """Record the load average as the run ends (call when the measurement is done)."""
        one, five, _ = load_average()
        self.facts.setdefault("load_at_end", f"{one:.2f} / {five:.2f} (1/5 min)")
        return self

    def markdown(self) -> str:
        if self.sections:
            return self._side_by_side_markdown()
        self.finish()
        about = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in self.facts.items())
        head = [f"### {self.title}", "", f"`{self.command}` — {about}", ""]
        return "\n".join([*head, *self.lines]).rstrip() + "\n"

    def _side_by_side_markdown(self) -> str:
        machine_facts = ("cpus", "memory", "python")
        about = ", ".join(f"{k}: {self.facts[k]}" for k in machine_facts if k in self.facts)
        out = [f"### {self.title}", "", f"`{self.command}` — {about}", ""]
        labels: list[str] = []
        for s in self.sections:
            labels += [k for k in s.headline if k not in labels]
        header = ["", *(BROKER_NAMES.get(s.broker, s.broker) for s in self.sections)]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for label in labels:
            out.append(
                f"| {label} | "
                + " | ".join(s.headline.get(label, "") for s in self.sections)
                + " |"
            )
        loads = [
            f"{s.facts.get('load_at_start', '?').split(' (')[0]} → "
            f"{s.facts.get('load_at_end', '?').split(' (')[0]}"
            for s in self.sections
        ]
        out.append(
            "| load average (1/5/15 min) at start → (1/5) at end | " + " | ".join(loads) + " |"
        )
        out.append("")
        for s in self.sections:
            s.finish()
            when = ", ".join(
                f"{k.replace('_', ' ')}: {s.facts[k]}"
                for k in ("date", "load_at_start", "load_at_end")
                if k in s.facts
            )
            out += [f"#### On {BROKER_NAMES.get(s.broker, s.broker)}", "", when, "", *s.lines, ""]
        return "\n".join(out).rstrip() + "\n"


def side_by_side(reports: list[Report]) -> Report:
    """One report of the same benchmark run on several brokers (a column per broker)."""
    first = reports[0]
    return Report(
        first.name, first.title, command=first.command, facts=first.facts, sections=reports
    )


def write(report: Report, doc: Path = DOC) -> None:
    """Replace (or append) the report's block in the document."""
    begin, end = f"<!-- bench:{report.name}:begin -->", f"<!-- bench:{report.name}:end -->"
    block = f"{begin}\n{report.markdown()}{end}"
    text = doc.read_text() if doc.exists() else "# Performance\n\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
