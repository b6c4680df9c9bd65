"""The committed AsyncAPI documents (docs/asyncapi/) are what the code generates.

Fails when a service changed its inputs, outputs or event models without regenerating:
run ``uv run vitrine asyncapi`` (or ``make asyncapi``) and commit docs/asyncapi/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from vitrine.contract.envelope import CONTENT_TYPE, new_event
from vitrine.contract.events import ProductListed, Source
from vitrine.contract.reasons import CODE_SETS, DEAD_LETTER_REASONS
from vitrine.contract.topics import DLQ_SUFFIX, TOPICS
from vitrine.runtime.messaging import outbox
from vitrine.runtime.messaging.dlq import DLQ_HEADERS
from vitrine.runtime.service import build_app
from vitrine.runtime.settings import Settings
from vitrine.tools.cli import app, asyncapi
from vitrine_catalog.service import DEFINITION as CATALOG

DOCS = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"
CONTRACT = DOCS.parent / "CONTRACT.md"


def test_committed_documents_are_up_to_date() -> None:
    problems = asyncapi.check(DOCS, CONTRACT)
    assert not problems, (
        "AsyncAPI documents are stale: "
        + "; ".join(f"{p.path.name}: {p.what}" for p in problems)
        + " — run `uv run vitrine asyncapi` and commit docs/asyncapi/"
    )


def test_check_fails_for_a_missing_or_stale_document(tmp_path: Path) -> None:
    runner = CliRunner()
    contract = tmp_path / "CONTRACT.md"
    contract.write_text(CONTRACT.read_text(encoding="utf-8"), encoding="utf-8")
    where = ["--dir", str(tmp_path), "--contract", str(contract)]
    result = runner.invoke(app, ["asyncapi", *where])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "catalog.json").exists()
    assert runner.invoke(app, ["asyncapi", "--check", *where]).exit_code == 0

    # A hand edit inside a generated table of CONTRACT.md is stale too, and is rewritten.
    edited = contract.read_text(encoding="utf-8").replace("| `shop_id` | id | yes |", "", 1)
    contract.write_text(edited, encoding="utf-8")
    result = runner.invoke(app, ["asyncapi", "--check", *where])
    assert result.exit_code == 1 and "CONTRACT.md: generated tables are stale" in result.stderr
    assert runner.invoke(app, ["asyncapi", *where]).exit_code == 0
    assert contract.read_text(encoding="utf-8") == CONTRACT.read_text(encoding="utf-8")

    doc = json.loads((tmp_path / "catalog.json").read_text())
    doc["info"]["description"] = "edited by hand"
    (tmp_path / "catalog.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    others = sorted(p for p in tmp_path.glob("*.json") if p.name != "catalog.json")
    for path in others[:1]:
        path.unlink()
    result = runner.invoke(app, ["asyncapi", "--check", *where])
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


# --- the documents describe the wire, not only the value ------------------------------------


def _documents() -> dict[str, dict[str, Any]]:
    found, _ = asyncapi.documents()
    return {service: json.loads(text) for service, text in found.items()}


def _message(doc: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (ref,) = [m["$ref"] for m in channel["messages"].values()]
    message: dict[str, Any] = doc["components"]["messages"][ref.rsplit("/", 1)[1]]
    return message


def test_event_messages_carry_the_headers_the_outbox_really_sets() -> None:
    event = new_event(
        "product.listed",
        "p-1",
        ProductListed(
            product_id="p-1",
            merchant_id="m-1",
            version=1,
            source=Source(kind="channels_shop"),
            title="茶杯",
            price_fen=100,
        ),
        source="/vitrine/catalog",
    )
    (record,) = outbox.records(outbox.outbox_rows([("catalog.products", event)])[0])
    on_the_wire = {name for name, _ in record.headers}
    doc = json.loads(asyncapi.render(CATALOG))
    assert doc["defaultContentType"] == CONTENT_TYPE
    channel = doc["channels"]["catalog.products:publish"]
    headers = _message(doc, channel)["headers"]
    assert on_the_wire == set(headers["properties"])
    assert set(headers["required"]) <= on_the_wire
    assert headers["properties"]["ce-type"]["enum"] == list(TOPICS["catalog.products"].types)
    assert dict(record.headers)["content-type"].decode() == CONTENT_TYPE
    assert headers["properties"]["content-type"]["const"] == CONTENT_TYPE


def test_every_channel_has_its_kafka_binding_key_and_correlation_id() -> None:
    for service, doc in _documents().items():
        for channel in doc["channels"].values():
            address = channel["address"]
            binding = channel["bindings"]["kafka"]
            message = _message(doc, channel)
            assert binding["topic"] == address
            if address.endswith(DLQ_SUFFIX):
                assert binding["partitions"] == 1
            else:
                assert binding["partitions"] == TOPICS[address].partitions, address
            assert message["contentType"] == CONTENT_TYPE
            assert message["correlationId"]["location"] == "$message.payload#/correlationid"
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            assert "headers" in message, (service, address)
        for operation in doc["operations"].values():
            kafka = operation["bindings"]["kafka"]
            assert kafka["clientId"]["enum"] == [f"vitrine-{service}"]
            if operation["action"] == "receive":
                assert kafka["groupId"]["enum"] == [service]


def test_dead_letters_are_the_original_record_plus_the_dlq_headers() -> None:
    doc = json.loads(asyncapi.render(CATALOG))
    dead = doc["channels"]["merchants.products.dlq:publish"]
    message = _message(doc, dead)
    assert message["headers"]["required"] == list(DLQ_HEADERS)
    assert message["headers"]["additionalProperties"] is True
    reasons = message["headers"]["properties"]["dlq-reason"]["enum"]
    assert reasons == [r.code for r in DEAD_LETTER_REASONS]
    consumed = _message(doc, doc["channels"]["catalog:consume:merchants.products"])
    original, anything = message["payload"]["anyOf"]
    assert original == consumed["payload"]
    assert set(anything) == {"description"}  # honest: any bytes at all


def test_refusal_and_suspension_codes_are_enumerated() -> None:
    doc = _documents()["showcase"]
    schemas = doc["components"]["schemas"]
    refused = schemas["ItemRefused"]["properties"]["reasons"]["items"]["allOf"][1]
    expected = next(s for s in CODE_SETS if "showcase.item_refused" in s.event_types)
    assert refused["properties"]["code"]["enum"] == expected.values
    suspended = schemas["ItemSuspended"]["properties"]["reason"]
    assert {"product_delisted", "policy"} <= set(suspended["enum"])
