"""docs/CONTRACT.md and the code registry of codes cannot drift from the code.

The generated tables are checked by ``tests/test_asyncapi.py``; here: every topic, type and
code is named in the document, and every code a service emits is in
``vitrine.contract.reasons`` (so the AsyncAPI enumerations and the document list it).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from vitrine.contract.events import EVENT_TYPES_BY_TOPIC
from vitrine.contract.reasons import CODE_SETS, DEAD_LETTER_REASONS, all_codes
from vitrine.contract.topics import TOPICS
from vitrine.tools import contract_doc

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "CONTRACT.md"
#: Codes that only review's audit trail (its HTTP API) shows; never on the wire.
AUDIT_TRAIL_ONLY = {"superseded", "audit_cancelled"}


def test_the_generated_tables_are_current() -> None:
    assert contract_doc.is_current(CONTRACT), "run `uv run vitrine asyncapi` and commit"


def test_every_topic_type_and_code_is_in_the_contract() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    for topic, types in EVENT_TYPES_BY_TOPIC.items():
        assert f"`{topic}`" in text
        assert f"`{TOPICS[topic].dlq}`" in text or "`<topic>.dlq`" in text
        for type_name in types:
            assert f"#### `{type_name}`" in text, type_name
    for code in all_codes():
        assert f"| `{code}` |" in text, code
    for header in ("dlq-reason", "dlq-error", "dlq-service", "dlq-topic", "dlq-offset"):
        assert f"`{header}`" in text


def test_codes_are_marked_planned_exactly_when_planned() -> None:
    # Both ways, so the check is not vacuous once every code is served (none is planned now).
    text = CONTRACT.read_text(encoding="utf-8")
    for code in [c for s in CODE_SETS for c in s.codes] + list(DEAD_LETTER_REASONS):
        rows = [
            line
            for line in text.splitlines()
            if line.startswith(f"| `{code.code}` | {code.meaning}")
        ]
        assert rows, code.code
        assert all((contract_doc.PLANNED in row) == code.planned for row in rows), code.code


def _literals(pattern: str, paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        found |= set(re.findall(pattern, path.read_text(encoding="utf-8")))
    return found


def test_every_code_the_services_emit_is_registered() -> None:
    sources = sorted(ROOT.glob("services/*/src/**/*.py")) + sorted(
        (ROOT / "shared/src/vitrine/contract").glob("**/*.py")
    )
    emitted = _literals(r'code="([a-z_]+)"', sources)
    emitted |= _literals(r'_reason\(\s*"([a-z_]+)"', sources)
    emitted |= _literals(r'reason="([a-z_]+)"', sources)
    emitted |= _literals(r'HOLD_[A-Z]+ = "([a-z_]+)"', sources)
    emitted |= _literals(r'return "([a-z_]+)", hold\[', sources)  # showcase's hold → reason
    emitted |= _literals(r'now, "([a-z_]+)", policy\.policy_id', sources)  # distribution
    assert {
        "not_product_owner",
        "showcase_full",
        "policy",
        "withdrawn",
    } <= emitted  # the scan works
    missing = emitted - all_codes() - AUDIT_TRAIL_ONLY
    assert not missing, f"add these to vitrine.contract.reasons: {sorted(missing)}"


def test_every_dead_letter_reason_is_registered() -> None:
    runtime = ROOT / "shared/src/vitrine"
    reasons = _literals(r'InvalidEvent\(\s*"([a-z_]+)"', [runtime / "contract/envelope.py"])
    reasons |= _literals(
        r'_dead\(\s*record,\s*"([a-z_]+)"', [runtime / "runtime/messaging/pipeline.py"]
    )
    assert {"not_json", "handler_error"} <= reasons
    assert reasons <= {r.code for r in DEAD_LETTER_REASONS}


def test_no_reference_to_a_design_document_outside_the_repository() -> None:
    outside = "hand" + "book"  # spelled apart so this file does not match itself
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    hits = [
        name
        for name in files
        if (ROOT / name).is_file()
        and name.endswith((".md", ".py", ".json", ".yml", ".yaml", ".toml"))
        and outside in (ROOT / name).read_text(encoding="utf-8", errors="replace").lower()
    ]
    assert not hits, f"point to docs/CONTRACT.md instead: {hits}"
