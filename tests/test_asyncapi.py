"""The committed AsyncAPI documents (docs/asyncapi/) are what the code generates.

Fails when a service changed its inputs, outputs or event models without regenerating:
run ``uv run vitrine asyncapi`` (or ``make asyncapi``) and commit docs/asyncapi/.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from vitrine.contract.topics import TOPICS
from vitrine.runtime.service import build_app
from vitrine.runtime.settings import Settings
from vitrine.tools.cli import app, asyncapi
from vitrine_catalog.service import DEFINITION as CATALOG

DOCS = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"


def test_committed_documents_are_up_to_date() -> None:
    problems = asyncapi.check(DOCS)
    assert not problems, (
        "AsyncAPI documents are stale: "
        + "; ".join(f"{p.path.name}: {p.what}" for p in problems)
        + " — run `uv run vitrine asyncapi` and commit docs/asyncapi/"
    )


def test_check_fails_for_a_missing_or_stale_document(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["asyncapi", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "catalog.json").exists()
    assert runner.invoke(app, ["asyncapi", "--check", "--dir", str(tmp_path)]).exit_code == 0

    doc = json.loads((tmp_path / "catalog.json").read_text())
    doc["info"]["description"] = "edited by hand"
    (tmp_path / "catalog.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    others = sorted(p for p in tmp_path.glob("*.json") if p.name != "catalog.json")
    for path in others[:1]:
        path.unlink()
    result = runner.invoke(app, ["asyncapi", "--check", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "catalog.json: stale" in result.stderr
    for path in others[:1]:
        assert f"{path.name}: missing" in result.stderr


def test_generation_is_reproducible() -> None:
    assert asyncapi.render(CATALOG) == asyncapi.render(CATALOG)


def test_catalog_document_names_every_type_on_its_topics() -> None:
    doc = json.loads(asyncapi.render(CATALOG))
    assert doc["asyncapi"].startswith("3.")
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert {"merchants.products", "review.decisions", "catalog.products"} <= set(channels)
    assert {"merchants.products.dlq", "review.decisions.dlq"} <= set(channels)
    schemas = doc["components"]["schemas"]
    messages = doc["components"]["messages"]

    def types_on(address: str) -> set[str]:
        channel = channels[address]
        (ref,) = [m["$ref"] for m in channel["messages"].values()]
        payload = messages[ref.rsplit("/", 1)[1]]["payload"]
        body = schemas[payload["$ref"].rsplit("/", 1)[1]]
        variants = [schemas[v["$ref"].rsplit("/", 1)[1]] for v in body.get("oneOf", [])]
        return {v["properties"]["type"]["const"] for v in variants or [body]}

    for topic in ("merchants.products", "review.decisions", "catalog.products"):
        assert types_on(topic) == set(TOPICS[topic].types), topic
        assert ", ".join(TOPICS[topic].types) in channels[topic]["description"]
    listed = schemas["ProductListedEvent"]
    assert listed["properties"]["data"] == {"$ref": "#/components/schemas/ProductListed"}
    assert {"version", "merchant_id", "price_fen"} <= set(schemas["ProductListed"]["properties"])
    operations = {op["action"] for op in doc["operations"].values()}
    assert operations == {"send", "receive"}


@pytest.mark.asyncio(loop_scope="session")
async def test_the_service_serves_the_same_document() -> None:
    settings = Settings(service="catalog", kafka_bootstrap=asyncapi.DOCUMENT_BOOTSTRAP)
    service_app = build_app(CATALOG, settings)
    transport = httpx.ASGITransport(app=service_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        served = (await http.get("/asyncapi.json")).json()
        page = await http.get("/asyncapi")
    assert served == json.loads(asyncapi.render(CATALOG))
    assert page.status_code == 200 and "asyncapi" in page.text.lower()
