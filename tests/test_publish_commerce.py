"""``vitrine publish`` validates the commerce types (SKUs, stock, platform actions) exactly as
catalog decodes them: good lines pass, bad ones are named with the consumers' DLQ reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vitrine.tools.cli.publish import read_lines, validate
from vitrine.tools.testing.probe import cloud_event


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events)


SKU = {"sku_id": "blue", "price_fen": 1990, "stock": 5}
SUBMITTED = {"product_id": "p-1", "merchant_id": "m-1", "title": "Cup", "skus": [SKU]}


def test_commerce_inputs_validate_on_their_topics() -> None:
    products = jsonl(
        cloud_event("product.submitted", "p-1", SUBMITTED),
        cloud_event(
            "product.stock_updated",
            "p-1",
            {"product_id": "p-1", "merchant_id": "m-1", "sku_id": "blue", "stock": 0},
        ),
    )
    valid, invalid = validate("merchants.products", read_lines(products))
    assert len(valid) == 2 and not invalid
    actions = jsonl(
        cloud_event("product.platform_delisted", "p-1", {"product_id": "p-1", "reason": "banned"}),
        cloud_event("product.platform_reinstated", "p-1", {"product_id": "p-1"}),
    )
    valid, invalid = validate("platform.actions", read_lines(actions))
    assert len(valid) == 2 and not invalid


@pytest.mark.parametrize(
    ("topic", "etype", "data", "reason"),
    [
        ("merchants.products", "product.submitted", {**SUBMITTED, "skus": []}, "invalid_data"),
        (
            "merchants.products",
            "product.submitted",
            {**SUBMITTED, "skus": [SKU, SKU]},
            "invalid_data",
        ),
        (
            "merchants.products",
            "product.stock_updated",
            {"product_id": "p-1", "merchant_id": "m-1", "sku_id": "blue", "stock": -1},
            "invalid_data",
        ),
        (
            "platform.actions",
            "product.platform_delisted",
            {"product_id": "p-1", "reason": "withdrawn"},
            "invalid_data",
        ),
        ("platform.actions", "product.submitted", SUBMITTED, "unknown_type"),
        (
            "merchants.products",
            "product.platform_reinstated",
            {"product_id": "p-1"},
            "unknown_type",
        ),
    ],
    ids=[
        "no-skus",
        "repeated-sku",
        "negative-stock",
        "merchant-reason",
        "submit-on-platform",
        "reinstate-on-merchants",
    ],
)
def test_bad_commerce_lines_are_named(
    topic: str, etype: str, data: dict[str, Any], reason: str
) -> None:
    valid, invalid = validate(topic, read_lines(jsonl(cloud_event(etype, "p-1", data))))
    assert not valid and [(i.number, i.reason) for i in invalid] == [(1, reason)]
