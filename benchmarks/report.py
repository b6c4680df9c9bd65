"""Results: printed as Markdown and written into docs/PERFORMANCE.md between markers.

Each benchmark owns one block (``<!-- bench:NAME:begin -->`` … ``<!-- bench:NAME:end -->``);
a run rewrites its block and leaves the rest of the document (the analysis) alone.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import load_average, machine

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

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "---|" * len(header))
        for row in rows:
            self.lines.append("| " + " | ".join(row) + " |")
        self.lines.append("")

    def markdown(self) -> str:
        one, five, _ = load_average()
        facts = dict(self.facts)
        facts["load_at_end"] = f"{one:.2f} / {five:.2f} (1/5 min)"
        about = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in facts.items())
        head = [f"### {self.title}", "", f"`{self.command}` — {about}", ""]
        return "\n".join([*head, *self.lines]).rstrip() + "\n"


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
