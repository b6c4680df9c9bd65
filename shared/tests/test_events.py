"""The event ``data`` models (DESIGN.md §3, §5): examples, strictness, bounds, policy rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from vitrine.contract.events import (
    EVENT_TYPES_BY_TOPIC,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    CatalogAuditCancelled,
    CommissionAdjusted,
    CommissionCancelled,
    DisallowSource,
    EventData,
    OfferPublished,
    OfferWithdrawn,
    OfferWithdrawRequested,
    OrderPaid,
    PolicyAnnounced,
    PolicyInForce,
    ProductAuditCancelled,
    ProductPlatformDelisted,
    ProductSubmitted,
    RequireShop,
    ReviewManualDecided,
    Rule,
    ShopRegistered,
    ShowcaseMoveRequested,
    Source,
    SourceMatch,
    dump,
    parse_rules,
)

T = "2022-07-21T10:00:00+08:00"
REASON = {"code": "title_too_long", "message": "title has 72 chars > 60", "field": "title"}
MINI_SHOP_RULE = {
    "kind": "disallow_source",
    "surfaces": ["showcase", "live"],
    "sources": [{"kind": "wechat_mini_shop"}],
}
RULES = [
    MINI_SHOP_RULE,
    {
        "kind": "disallow_source",
        "surfaces": ["showcase", "distribution"],
        "sources": [{"kind": "third_party_platform", "platform": "jd"}],
    },
    {"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "channels_shop"},
]
EXEMPTIONS = {"merchant_ids": ["m-9"], "service_provider_built": True}
DRAFT = {
    "product_id": "p-1001",
    "merchant_id": "m-1",
    "title": "Longjing green tea 250g",
    "category": "food.tea",
    "images": ["https://img.example.com/p-1001/1.jpg"],
    "price_fen": 12_800,
    "stock": 300,
    "source": {"kind": "channels_shop"},
    "attributes": {"origin": "Hangzhou", "weight_g": 250, "organic": True, "abv": 0.0},
}
COMMISSION = {
    "order_id": "o-1",
    "offer_id": "of-1",
    "creator_id": "c-1",
    "merchant_id": "m-1",
    "commission_fen": 1_344,
}

EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "accounts.shops": {
        "shop.registered": {
            "account_id": "c-1",
            "shop_id": "s-1",
            "shop_kind": "wechat_mini_shop",
            "service_provider_built": True,
        },
        "shop.closed": {"account_id": "c-1", "shop_id": "s-1"},
    },
    "merchants.products": {
        "product.submitted": DRAFT,
        "product.stock_updated": {
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "sku_id": "sku-250g",
            "stock": 0,
        },
        "product.withdrawn": {"product_id": "p-1001", "merchant_id": "m-1"},
        "product.audit_cancelled": {"product_id": "p-1001", "merchant_id": "m-1"},
    },
    "platform.actions": {
        "product.platform_delisted": {
            "product_id": "p-1001",
            "reason": "violation",
            "note": "counterfeit report #88",
        },
        "product.platform_reinstated": {"product_id": "p-1001"},
    },
    "review.manual": {
        "review.manual_decided": {
            "product_id": "p-1001",
            "version": 2,
            "reviewer_id": "r-7",
            "verdict": "reject",
            "reasons": [{"code": "banned_term", "message": "最佳", "field": "title"}],
        },
    },
    "creators.showcase": {
        "showcase.add_requested": {"creator_id": "c-1", "product_id": "p-1001", "offer_id": "of-1"},
        "showcase.remove_requested": {"creator_id": "c-1", "product_id": "p-1001"},
        "showcase.move_requested": {"creator_id": "c-1", "product_id": "p-1001", "position": 0},
    },
    "creators.live": {
        "live.start_requested": {"creator_id": "c-1", "session_id": "s-1", "title": "秋季上新"},
        "live.add_requested": {"creator_id": "c-1", "session_id": "s-1", "product_id": "p-1"},
        "live.remove_requested": {"creator_id": "c-1", "session_id": "s-1", "product_id": "p-1"},
        "live.explain_requested": {"creator_id": "c-1", "session_id": "s-1", "product_id": "p-1"},
        "live.end_requested": {"creator_id": "c-1", "session_id": "s-1"},
    },
    "live.rooms": {
        "live.session_started": {"creator_id": "c-1", "session_id": "s-1", "title": "秋季上新"},
        "live.session_refused": {
            "creator_id": "c-1",
            "session_id": "s-2",
            "command": "live.start_requested",
            "reasons": [{"code": "session_already_open", "message": "s-1 is open"}],
        },
        "live.item_added": {
            "creator_id": "c-1",
            "session_id": "s-1",
            "product_id": "p-1",
            "offer_id": "of-1",
            "position": 0,
        },
        "live.item_refused": {
            "creator_id": "c-1",
            "session_id": "s-1",
            "product_id": "p-1",
            "reasons": [{"code": "not_in_showcase", "message": "not in the showcase"}],
        },
        "live.item_removed": {
            "creator_id": "c-1",
            "session_id": "s-1",
            "product_id": "p-1",
            "reason": "requested",
        },
        "live.item_explaining": {"creator_id": "c-1", "session_id": "s-1", "product_id": "p-1"},
        "live.item_suspended": {
            "creator_id": "c-1",
            "session_id": "s-1",
            "product_id": "p-1",
            "reason": "policy",
            "policy_id": "pol-1",
        },
        "live.item_restored": {
            "creator_id": "c-1",
            "session_id": "s-1",
            "product_id": "p-1",
            "reason": "policy",
            "policy_id": "pol-1",
        },
        "live.session_ended": {"creator_id": "c-1", "session_id": "s-1", "items": 3},
    },
    "merchants.offers": {
        "offer.published": {
            "offer_id": "of-1",
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "commission_bps": 1050,
            "plan": "targeted",
            "creator_ids": ["c-1", "c-2"],
        },
        "offer.withdrawn": {"offer_id": "of-1", "merchant_id": "m-1"},
    },
    "orders.lifecycle": {
        "order.paid": {
            "order_id": "o-1",
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "amount_fen": 12_800,
            "creator_id": "c-1",
            "offer_id": "of-1",
            "paid_at": T,
        },
        "order.completed": {"order_id": "o-1"},
        "order.refunded": {"order_id": "o-1", "refund_fen": 6_400},
    },
    "platform.policies": {
        "policy.announced": {
            "policy_id": "pol-2022-11-30-mini-shop",
            "title": "WeChat Mini Shop can no longer be attached to the showcase",
            "announced_at": "2022-07-15T20:00:00+08:00",
            "effective_at": "2022-11-30T00:00:00+08:00",
            "enforce_existing_at": "2022-11-30T00:00:00+08:00",
            "rules": [MINI_SHOP_RULE],
            "exemptions": {"merchant_ids": [], "service_provider_built": True},
        },
        "policy.retracted": {"policy_id": "pol-1", "reason": "postponed"},
    },
    "catalog.products": {
        "product.review_requested": {
            **DRAFT,
            "version": 2,
            "live_version": 1,
            "live_price_fen": 9_900,
            "skus": [{"sku_id": "default", "price_fen": 12_800, "stock": 40}],
            "live_skus": [{"sku_id": "default", "price_fen": 9_900}],
        },
        "product.listed": {
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "version": 2,
            "source": {"kind": "third_party_platform", "platform": "jd"},
            "title": "Longjing green tea 250g",
            "price_fen": 12_800,
            "category": "food.tea",
            "images": ["https://img.example.com/p-1001.jpg"],
            "skus": [
                {"sku_id": "sku-250g", "price_fen": 12_800, "stock": 3, "attributes": {"g": 250}},
                {"sku_id": "sku-500g", "price_fen": 23_800, "stock": 0},
            ],
            "total_stock": 3,
        },
        "product.rejected": {
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "version": 3,
            "reasons": [REASON],
        },
        "product.delisted": {"product_id": "p-1001", "reason": "withdrawn", "version": 2},
        "product.audit_cancelled": {"product_id": "p-1001", "merchant_id": "m-1", "version": 3},
        "product.stock_changed": {
            "product_id": "p-1001",
            "sku_id": "sku-250g",
            "stock": 0,
            "total_stock": 0,
        },
        "product.sold_out": {"product_id": "p-1001", "version": 2},
        "product.back_in_stock": {"product_id": "p-1001", "version": 2, "total_stock": 5},
        "product.refused": {
            "product_id": "p-1001",
            "merchant_id": "m-2",
            "command": "product.withdrawn",
            "reasons": [REASON],
        },
    },
    "review.decisions": {
        "review.approved": {"product_id": "p-1001", "version": 2},
        "review.rejected": {"product_id": "p-1001", "version": 3, "reasons": [REASON]},
        "review.escalated": {
            "product_id": "p-1001",
            "version": 4,
            "reasons": [{"code": "price_jump", "message": "+120 %", "field": "price_fen"}],
        },
    },
    "showcase.items": {
        "showcase.item_added": {
            "creator_id": "c-1",
            "product_id": "p-1001",
            "offer_id": "of-1",
            "position": 0,
        },
        "showcase.item_refused": {
            "creator_id": "c-1",
            "product_id": "p-1001",
            "reasons": [
                {
                    "code": "source_disallowed",
                    "message": "mini shop goods are barred",
                    "policy_id": "pol-1",
                }
            ],
        },
        "showcase.item_removed": {"creator_id": "c-1", "product_id": "p-1001"},
        "showcase.item_suspended": {
            "creator_id": "c-1",
            "product_id": "p-1001",
            "reason": "policy",
            "policy_id": "pol-1",
        },
        "showcase.item_restored": {
            "creator_id": "c-1",
            "product_id": "p-1001",
            "policy_id": "pol-1",
            "reason": "policy_lifted",
        },
        "showcase.item_moved": {"creator_id": "c-1", "product_id": "p-1001", "position": 3},
    },
    "distribution.offers": {
        "offer.activated": {
            "offer_id": "of-1",
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "commission_bps": 1050,
            "plan": "general",
            "creator_ids": [],
            "effective_at": "2022-07-22T00:00:00+08:00",
        },
        "offer.refused": {
            "offer_id": "of-1",
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "reasons": [{"code": "invalid_commission", "field": "commission_bps"}],
        },
        "offer.suspended": {
            "offer_id": "of-1",
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "reason": "policy",
            "policy_id": "pol-1",
        },
        "offer.restored": {
            "offer_id": "of-1",
            "product_id": "p-1001",
            "merchant_id": "m-1",
            "policy_id": "pol-1",
        },
        "offer.withdrawn": {"offer_id": "of-1", "product_id": "p-1001", "merchant_id": "m-1"},
    },
    "distribution.commissions": {
        "commission.accrued": {**COMMISSION, "amount_fen": 12_800, "commission_bps": 1050},
        "commission.settled": {**COMMISSION, "settled_at": T},
        "commission.adjusted": {
            **COMMISSION,
            "commission_fen": 672,
            "delta_fen": -672,
            "refund_fen": 6_400,
        },
        "commission.cancelled": {**COMMISSION, "commission_fen": 0, "reason": "refunded"},
        "commission.refused": {
            "order_id": "o-2",
            "merchant_id": "m-1",
            "offer_id": "of-1",
            "reasons": [{"code": "offer_inactive", "message": "offer suspended at paid_at"}],
        },
    },
    "compliance.rulings": {
        "policy.accepted": {
            "policy_id": "pol-1",
            "title": "No third-party goods",
            "effective_at": "2022-03-07T00:00:00+08:00",
            "enforce_existing_at": "2022-03-31T00:00:00+08:00",
            "rules": RULES,
            "exemptions": EXEMPTIONS,
        },
        "policy.rejected": {
            "policy_id": "pol-1",
            "reasons": [{"code": "unknown_rule", "field": "rules[0].kind"}],
        },
        "policy.impact_assessed": {
            "policy_id": "pol-1",
            "items": 1200,
            "offers": 35,
            "creators": 410,
            "merchants": 12,
            "assessed_at": T,
        },
        "policy.in_force": {
            "policy_id": "pol-1",
            "phase": "enforce_existing",
            "rules": RULES,
            "exemptions": EXEMPTIONS,
            "effective_at": "2022-03-07T00:00:00+08:00",
            "enforce_existing_at": "2022-03-31T00:00:00+08:00",
        },
        "policy.lifted": {"policy_id": "pol-1", "reason": "retracted"},
        "policy.enforcement_completed": {
            "policy_id": "pol-1",
            "phase": "enforce_existing",
            "counts": {"showcase": 1200, "distribution": 35},
        },
    },
    "compliance.reports": {
        "enforcement.reported": {
            "policy_id": "pol-1",
            "service": "showcase",
            "phase": "lifted",
            "affected": 1200,
        },
    },
}

CASES = [
    pytest.param(topic, type_, id=f"{topic}:{type_}")
    for topic, types in EXAMPLES.items()
    for type_ in types
]


def _strict_json(model: type[EventData], data: dict[str, Any]) -> EventData:
    return model.model_validate_json(json.dumps(data), strict=True)


def test_registry_covers_every_topic_and_example() -> None:
    assert set(EVENT_TYPES_BY_TOPIC) == set(INPUT_TOPICS) | set(OUTPUT_TOPICS)
    assert not set(INPUT_TOPICS) & set(OUTPUT_TOPICS)
    assert {t: set(m) for t, m in EVENT_TYPES_BY_TOPIC.items()} == {
        t: set(e) for t, e in EXAMPLES.items()
    }
    for types in EVENT_TYPES_BY_TOPIC.values():
        for type_, model in types.items():
            assert model.event_type == type_


def test_same_type_string_has_separate_input_and_output_models() -> None:
    assert EVENT_TYPES_BY_TOPIC["merchants.products"]["product.audit_cancelled"] is (
        ProductAuditCancelled
    )
    assert EVENT_TYPES_BY_TOPIC["catalog.products"]["product.audit_cancelled"] is (
        CatalogAuditCancelled
    )
    assert EVENT_TYPES_BY_TOPIC["merchants.offers"]["offer.withdrawn"] is OfferWithdrawRequested
    assert EVENT_TYPES_BY_TOPIC["distribution.offers"]["offer.withdrawn"] is OfferWithdrawn


@pytest.mark.parametrize(("topic", "type_"), CASES)
def test_example_round_trips(topic: str, type_: str) -> None:
    model = EVENT_TYPES_BY_TOPIC[topic][type_]
    parsed = _strict_json(model, EXAMPLES[topic][type_])
    assert isinstance(parsed, model)
    # Full JSON dump and the wire form (None omitted) both come back equal.
    assert model.model_validate_json(json.dumps(parsed.model_dump(mode="json")), strict=True) == (
        parsed
    )
    assert model.model_validate_json(json.dumps(dump(parsed)), strict=True) == parsed


@pytest.mark.parametrize(("topic", "type_"), CASES)
def test_unknown_fields_are_ignored_and_models_frozen(topic: str, type_: str) -> None:
    model = EVENT_TYPES_BY_TOPIC[topic][type_]
    parsed = _strict_json(model, {**EXAMPLES[topic][type_], "x_future_field": [1, 2]})
    assert "x_future_field" not in parsed.model_dump()
    field = next(iter(model.model_fields))
    with pytest.raises(ValidationError):
        setattr(parsed, field, "other")


# --- strictness --------------------------------------------------------------------------------


def test_string_price_is_rejected() -> None:
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "price_fen": "100"})


def test_float_commission_is_rejected() -> None:
    data = {**EXAMPLES["merchants.offers"]["offer.published"], "commission_bps": 1050.0}
    with pytest.raises(ValidationError):
        _strict_json(OfferPublished, data)


def test_naive_datetime_and_bool_flag_as_string_are_rejected() -> None:
    with pytest.raises(ValidationError):
        _strict_json(
            OrderPaid,
            {**EXAMPLES["orders.lifecycle"]["order.paid"], "paid_at": "2022-07-21T10:00:00"},
        )
    shop = {**EXAMPLES["accounts.shops"]["shop.registered"], "service_provider_built": "true"}
    with pytest.raises(ValidationError):
        _strict_json(ShopRegistered, shop)


def test_unknown_literal_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        _strict_json(
            ReviewManualDecided,
            {**EXAMPLES["review.manual"]["review.manual_decided"], "verdict": "maybe"},
        )
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "source": {"kind": "taobao"}})


# --- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["x" * 65, "", "p 1", "p/1", "$p"])
def test_bad_ids_are_rejected(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "product_id": bad_id})


def test_image_list_is_bounded() -> None:
    images = [f"https://img.example.com/{i}.jpg" for i in range(50)]
    assert len(_strict_json(ProductSubmitted, {**DRAFT, "images": images}).images) == 50  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "images": [*images, "https://x/51.jpg"]})
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "images": ["https://x/" + "a" * 2048]})


def test_attributes_are_bounded() -> None:
    fifty = {f"a{i}": i for i in range(50)}
    assert len(_strict_json(ProductSubmitted, {**DRAFT, "attributes": fifty}).attributes) == 50  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "attributes": {**fifty, "a50": 1}})
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "attributes": {"note": "x" * 1001}})
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "attributes": {"nested": {"a": 1}}})
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "attributes": {"big": 2**64}})


def test_other_bounds() -> None:
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "title": "t" * 1001})
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "price_fen": 10**12 + 1})
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "stock": -1})
    with pytest.raises(ValidationError):
        _strict_json(ShowcaseMoveRequested, {"creator_id": "c", "product_id": "p", "position": -1})
    offer = EXAMPLES["merchants.offers"]["offer.published"]
    with pytest.raises(ValidationError):
        _strict_json(OfferPublished, {**offer, "commission_bps": 10**6 + 1})
    with pytest.raises(ValidationError):
        _strict_json(OfferPublished, {**offer, "creator_ids": [f"c-{i}" for i in range(10_001)]})
    announced = EXAMPLES["platform.policies"]["policy.announced"]
    with pytest.raises(ValidationError):
        _strict_json(PolicyAnnounced, {**announced, "rules": [MINI_SHOP_RULE] * 51})
    with pytest.raises(ValidationError):
        _strict_json(PolicyAnnounced, {**announced, "title": "t" * 501})


# --- domain refusals are not stolen by validation ----------------------------------------------


def test_submission_accepts_values_review_must_refuse() -> None:
    bare = _strict_json(ProductSubmitted, {"product_id": "p-1", "merchant_id": "m-1"})
    assert bare.title is None and bare.source is None and bare.images == []  # type: ignore[attr-defined]
    bad = _strict_json(
        ProductSubmitted,
        {
            **DRAFT,
            "title": "t" * 61,
            "price_fen": -5,
            "images": ["ftp://not-https", ""],
            "category": "",
        },
    )
    assert bad.price_fen == -5  # type: ignore[attr-defined]


def test_offer_accepts_rates_distribution_must_refuse() -> None:
    offer = EXAMPLES["merchants.offers"]["offer.published"]
    for bps in (0, 50, 9001, -100, 10**6):
        assert _strict_json(OfferPublished, {**offer, "commission_bps": bps}).commission_bps == bps  # type: ignore[attr-defined]


def test_announcement_accepts_rules_compliance_must_refuse() -> None:
    announced = EXAMPLES["platform.policies"]["policy.announced"]
    odd_rules = [{"kind": "ban_everything"}, {"kind": "disallow_source", "surfaces": []}]
    parsed = _strict_json(
        PolicyAnnounced,
        {**announced, "rules": odd_rules, "enforce_existing_at": "2022-01-01T00:00:00+08:00"},
    )
    assert parsed.rules == odd_rules  # type: ignore[attr-defined]


def test_commission_cancelled_is_zero_and_adjusted_delta_may_be_negative() -> None:
    cancelled = EXAMPLES["distribution.commissions"]["commission.cancelled"]
    with pytest.raises(ValidationError):
        _strict_json(CommissionCancelled, {**cancelled, "commission_fen": 5})
    adjusted = EXAMPLES["distribution.commissions"]["commission.adjusted"]
    assert _strict_json(CommissionAdjusted, adjusted).delta_fen == -672  # type: ignore[attr-defined]


# --- policy rules ------------------------------------------------------------------------------


def test_parse_rules_types_valid_rules() -> None:
    rules, problems = parse_rules(RULES)
    assert problems == []
    assert [type(r) for r in rules] == [DisallowSource, DisallowSource, RequireShop]
    first = rules[0]
    assert isinstance(first, DisallowSource)
    assert first.applies_to("showcase") and not first.applies_to("distribution")
    assert first.disallows(Source(kind="wechat_mini_shop"), "live")
    assert not first.disallows(Source(kind="channels_shop"), "live")


def test_parse_rules_unknown_kind() -> None:
    rules, problems = parse_rules([MINI_SHOP_RULE, {"kind": "ban_everything"}, {"surfaces": []}])
    assert len(rules) == 1
    assert [(p.code, p.field) for p in problems] == [
        ("unknown_rule", "rules[1].kind"),
        ("unknown_rule", "rules[2].kind"),
    ]


def test_parse_rules_empty_rules() -> None:
    rules, problems = parse_rules(
        [
            {"kind": "disallow_source", "surfaces": [], "sources": []},
            {"kind": "disallow_source", "surfaces": ["showcase"]},
            {"kind": "require_shop", "shop_kind": "channels_shop"},
        ]
    )
    assert rules == []
    assert [(p.code, p.field) for p in problems] == [
        ("empty_rule", "rules[0].surfaces"),
        ("empty_rule", "rules[0].sources"),
        ("empty_rule", "rules[1].sources"),
        ("empty_rule", "rules[2].surfaces"),
    ]


def test_parse_rules_invalid_rule_is_unknown_rule_with_a_reason() -> None:
    rules, problems = parse_rules(
        [
            {
                "kind": "disallow_source",
                "surfaces": ["mall"],
                "sources": [{"kind": "mini_program"}],
            },
            {"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "taobao"},
            {"kind": "require_shop", "surfaces": ["showcase"]},
            "not a rule",
        ]
    )
    assert rules == []
    assert [p.code for p in problems] == ["unknown_rule"] * 4
    assert problems[0].field == "rules[0].surfaces.0"
    assert "surfaces" in problems[0].message
    assert problems[1].field == "rules[1].shop_kind"
    assert problems[2].field == "rules[2].shop_kind"
    assert problems[3].field == "rules[3]"


def test_source_match() -> None:
    any_third_party = SourceMatch(kind="third_party_platform")
    jd_only = SourceMatch(kind="third_party_platform", platform="jd")
    jd = Source(kind="third_party_platform", platform="jd")
    pdd = Source(kind="third_party_platform", platform="pinduoduo")
    mini = Source(kind="wechat_mini_shop")
    assert any_third_party.matches(jd) and any_third_party.matches(pdd)
    assert not any_third_party.matches(mini)
    assert jd_only.matches(jd)
    assert not jd_only.matches(pdd)
    assert not jd_only.matches(Source(kind="third_party_platform"))


def test_rule_union_and_in_force_carry_typed_rules() -> None:
    rule = TypeAdapter(Rule).validate_python(RULES[2])
    assert isinstance(rule, RequireShop) and rule.shop_kind == "channels_shop"
    in_force = _strict_json(PolicyInForce, EXAMPLES["compliance.rulings"]["policy.in_force"])
    assert isinstance(in_force, PolicyInForce)
    assert [r.kind for r in in_force.rules] == [
        "disallow_source",
        "disallow_source",
        "require_shop",
    ]
    assert in_force.exemptions.service_provider_built
    bad = {**EXAMPLES["compliance.rulings"]["policy.in_force"], "rules": [{"kind": "nope"}]}
    with pytest.raises(ValidationError):
        _strict_json(PolicyInForce, bad)


SKU = {"sku_id": "sku-1", "price_fen": 100, "stock": 1}


@pytest.mark.parametrize(
    "skus",
    [
        [],
        [SKU, SKU],
        [{**SKU, "sku_id": f"s-{i}"} for i in range(501)],
        [{**SKU, "sku_id": "a b"}],
        [{**SKU, "stock": -1}],
        [{"sku_id": "sku-1", "price_fen": 100}],
    ],
    ids=["empty", "repeated-id", "over-500", "bad-id", "negative-stock", "no-stock"],
)
def test_skus_are_bounded_and_unique(skus: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        _strict_json(ProductSubmitted, {**DRAFT, "skus": skus})


def test_a_sku_price_is_lenient_for_review_to_judge() -> None:
    data = _strict_json(ProductSubmitted, {**DRAFT, "skus": [{**SKU, "price_fen": -5}]})
    assert isinstance(data, ProductSubmitted) and data.skus and data.skus[0].price_fen == -5


def test_platform_delisting_reason_is_closed() -> None:
    with pytest.raises(ValidationError):
        _strict_json(ProductPlatformDelisted, {"product_id": "p-1", "reason": "bored"})
