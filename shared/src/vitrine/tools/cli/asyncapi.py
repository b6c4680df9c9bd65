"""``vitrine asyncapi [--check]``: each service's AsyncAPI 3 document, generated from its code.

The documents are committed under ``docs/asyncapi/<service>.json``, beside the generated
tables of ``docs/CONTRACT.md`` (topics, event fields, codes), which the same command rewrites;
``--check`` (and ``tests/test_asyncapi.py``) fails when either differs from what the code says.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from vitrine.runtime.settings import DEFAULT_PORTS, Settings
from vitrine.tools import contract_doc
from vitrine.tools.cli._app import app
from vitrine.tools.cli._output import console, err

#: The documents name this broker as their server: the default of every tool here.
DOCUMENT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_DIR = Path("docs/asyncapi")


def load_definition(service: str) -> object | None:
    """``vitrine_<service>.service.DEFINITION`` (or ``make_definition()``); None if absent."""
    module_name = f"vitrine_{service}.service"
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
    except ModuleNotFoundError:
        return None
    module = importlib.import_module(module_name)
    definition: object | None = None
    if hasattr(module, "DEFINITION"):
        definition = module.DEFINITION
    elif hasattr(module, "make_definition"):
        definition = module.make_definition()
    return definition


def render(definition: object) -> str:
    """The service's AsyncAPI document as stable, pretty JSON (sorted keys, newline at end)."""
    from vitrine.runtime.service import ServiceDefinition, build_app

    assert isinstance(definition, ServiceDefinition)
    settings = Settings(
        service=definition.name,
        kafka_bootstrap=DOCUMENT_BOOTSTRAP,
        kafka_security_protocol="PLAINTEXT",
        kafka_sasl_mechanism=None,
        otel_enabled=False,
    )
    document = build_app(definition, settings).state.asyncapi_document()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> tuple[dict[str, str], list[str]]:
    """{service: document} for every service whose definition exists, and the ones without."""
    found: dict[str, str] = {}
    absent: list[str] = []
    for service in DEFAULT_PORTS:
        definition = load_definition(service)
        if definition is None:
            absent.append(service)
        else:
            found[service] = render(definition)
    return found, absent


@dataclass(frozen=True)
class Problem:
    path: Path
    what: str


def check(directory: Path, contract: Path | None = None) -> list[Problem]:
    """What is missing or stale in ``directory`` (and ``contract``) compared with the code."""
    found, _ = documents()
    problems: list[Problem] = []
    if contract is not None and not contract_doc.is_current(contract):
        problems.append(Problem(contract, "generated tables are stale (differ from the code)"))
    for service, text in found.items():
        path = directory / f"{service}.json"
        if not path.exists():
            problems.append(Problem(path, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            problems.append(Problem(path, "stale (differs from the code)"))
    for path in sorted(directory.glob("*.json")) if directory.exists() else []:
        if path.stem not in found:
            problems.append(Problem(path, "no such service in the code"))
    return problems


def write(directory: Path, contract: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write every document (and ``contract``'s tables); returns the files and the services
    skipped."""
    found, absent = documents()
    if contract is not None and contract_doc.write(contract):
        console.print(f"updated {contract}", markup=False)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service, text in found.items():
        path = directory / f"{service}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written, absent


@app.command("asyncapi")
def asyncapi_command(
    check_only: Annotated[
        bool, typer.Option("--check", help="Compare instead of writing; exit 1 if stale.")
    ] = False,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the documents live.")
    ] = DEFAULT_DIR,
    contract: Annotated[
        Path | None,
        typer.Option("--contract", help="CONTRACT.md whose generated tables to keep current."),
    ] = contract_doc.DEFAULT_PATH,
) -> None:
    """Write each service's AsyncAPI 3 document to docs/asyncapi/SERVICE.json."""
    if check_only:
        problems = check(directory, contract)
        for problem in problems:
            err.print(f"{problem.path}: {problem.what}", markup=False)
        if problems:
            err.print(
                "run `vitrine asyncapi` (or `make asyncapi`) and commit the result.", markup=False
            )
            raise typer.Exit(1)
        console.print(f"AsyncAPI documents in {directory} are up to date.", markup=False)
        return
    written, absent = write(directory, contract)
    for path in written:
        console.print(f"wrote {path}", markup=False)
    if absent:
        console.print(f"skipped (no service definition yet): {', '.join(absent)}", markup=False)
