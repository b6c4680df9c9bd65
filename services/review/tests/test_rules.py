"""The automated review rules, pure and fast."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from vitrine.contract.events import ProductReviewRequested
from vitrine.tools.testing.handlers import review_requested
from vitrine_review import rules
from vitrine_review.config import DEFAULT_BANNED_TERMS, ReviewConfig, normalise_text

CONFIG = ReviewConfig()


def request(**over: Any) -> ProductReviewRequested:
    return review_requested(**{"price_fen": 1990, "stock": 10, **over})


def codes(req: ProductReviewRequested, config: ReviewConfig = CONFIG) -> list[str]:
    return [r.code for r in rules.hard_reasons(req, config)]


def test_clean_draft_is_approved() -> None:
    verdict = rules.evaluate(request(), CONFIG)
    assert verdict.outcome == "approved"
    assert verdict.reasons == ()


@pytest.mark.parametrize("field", ["title", "category", "source", "price_fen"])
def test_missing_field_names_the_field(field: str) -> None:
    reasons = rules.hard_reasons(request(**{field: None}), CONFIG)
    assert [(r.code, r.field) for r in reasons] == [("missing_field", field)]


def test_blank_title_and_category_are_missing() -> None:
    reasons = rules.hard_reasons(request(title="   ", category=""), CONFIG)
    assert [(r.code, r.field) for r in reasons] == [
        ("missing_field", "title"),
        ("missing_field", "category"),
    ]


def test_every_missing_field_is_reported_at_once() -> None:
    req = request(title=None, category=None, source=None, price_fen=None)
    assert sorted(r.field for r in rules.hard_reasons(req, CONFIG) if r.field) == [
        "category",
        "price_fen",
        "source",
        "title",
    ]


def test_title_length_limit_is_60_characters() -> None:
    assert codes(request(title="茶" * 60)) == []
    assert codes(request(title="茶" * 61)) == ["title_too_long"]


@pytest.mark.parametrize(
    ("price", "ok"),
    [(-1, False), (0, False), (1, True), (100_000_000, True), (100_000_001, False)],
)
def test_price_bounds(price: int, ok: bool) -> None:
    assert codes(request(price_fen=price)) == ([] if ok else ["invalid_price"])


def test_no_images() -> None:
    assert codes(request(images=[])) == ["no_images"]


@pytest.mark.parametrize(
    "url",
    [
        "http://img.example/1.jpg",
        "https:///1.jpg",
        "https://",
        "//img.example/1.jpg",
        "img.example/1.jpg",
        "https://img.example/a b.jpg",
        " https://img.example/1.jpg",
        "https://img.example/1.jpg\n",
        "https://user:pw@img.example/1.jpg",
        "https://img.example:99999/1.jpg",
        "https://[::1/1.jpg",
        "https:\\\\img.example\\1.jpg",
        "ftp://img.example/1.jpg",
        "javascript:alert(1)",
        "",
    ],
)
def test_invalid_image_urls(url: str) -> None:
    assert not rules.valid_image_url(url)
    reasons = rules.hard_reasons(request(images=["https://ok.example/a.jpg", url]), CONFIG)
    assert [r.code for r in reasons] == ["invalid_image_url"]
    assert "images[1]" in reasons[0].message


@pytest.mark.parametrize(
    "url",
    [
        "https://img.example/1.jpg",
        "https://cdn.example.com:8443/a/b.png?x=1",
        "https://图片.中国/a.jpg",
    ],
)
def test_valid_image_urls(url: str) -> None:
    assert rules.valid_image_url(url)


@pytest.mark.parametrize("term", ["国家级", "最高级", "最佳", "第一", "顶级"])
def test_default_banned_terms_include_the_law_s_examples(term: str) -> None:
    assert term in DEFAULT_BANNED_TERMS
    assert codes(request(title=f"好茶杯 {term} 品质")) == ["banned_term"]


def test_banned_term_survives_spacing_and_full_width() -> None:
    assert codes(request(title="最 佳 茶杯")) == ["banned_term"]
    config = ReviewConfig(banned_terms=["TOP1"])
    assert codes(request(title="ｔｏｐ１ cup"), config) == ["banned_term"]


def test_banned_term_in_string_attributes_names_the_attribute() -> None:
    req = request(attributes={"slogan": "全网最佳", "weight_g": 300, "fragile": True})
    reasons = rules.hard_reasons(req, CONFIG)
    assert [(r.code, r.field) for r in reasons] == [("banned_term", "attributes.slogan")]


def test_banned_terms_are_configurable() -> None:
    config = ReviewConfig(banned_terms=["miracle"])
    assert codes(request(title="Miracle cup"), config) == ["banned_term"]
    assert codes(request(title="最佳 cup"), config) == []


def test_prohibited_category_is_configurable() -> None:
    assert codes(request(category="Tobacco")) == ["prohibited_category"]
    config = ReviewConfig(prohibited_categories=["kitchen"])
    assert codes(request(), config) == ["prohibited_category"]
    assert codes(request(category="tobacco"), config) == []


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRINE_REVIEW_BANNED_TERMS", '["极品", " ", "极品"]')
    monkeypatch.setenv("VITRINE_REVIEW_PROHIBITED_CATEGORIES", '["Knives"]')
    config = ReviewConfig()
    assert config.banned_terms == ["极品"]
    assert config.prohibited_categories == ["knives"]


def test_seventy_char_title_with_banned_term_and_negative_price_reports_all() -> None:
    title = "最佳" + "x" * 68
    assert len(title) == 70
    assert codes(request(title=title, price_fen=-1)) == [
        "title_too_long",
        "invalid_price",
        "banned_term",
    ]


def test_every_hard_code_at_once() -> None:
    req = request(
        title="第一" * 40,
        category="firearms",
        price_fen=0,
        images=["http://x.example/a.jpg"],
        source=None,
    )
    assert set(codes(req)) == {
        "missing_field",
        "title_too_long",
        "invalid_price",
        "invalid_image_url",
        "banned_term",
        "prohibited_category",
    }


def test_reasons_stay_within_the_contract_bounds() -> None:
    attributes: dict[str, Any] = {f"a{i}": "最佳" for i in range(50)}
    req = request(title=None, images=["http://bad"] * 50, attributes=attributes, price_fen=None)
    verdict = rules.evaluate(req, CONFIG)
    assert verdict.outcome == "rejected"
    assert len(verdict.reasons) <= 100
    long_name = "n" * 100
    reasons = rules.hard_reasons(request(attributes={long_name: "最佳"}), CONFIG)
    assert reasons[0].field is not None and len(reasons[0].field) <= 64


@pytest.mark.parametrize(
    ("live", "price", "jump"),
    [(1000, 1500, False), (1000, 1501, True), (1000, 500, False), (1000, 499, True), (0, 5, False)],
)
def test_price_jump_is_more_than_half_the_live_price(live: int, price: int, jump: bool) -> None:
    verdict = rules.evaluate(request(price_fen=price, live_price_fen=live, live_version=1), CONFIG)
    assert verdict.outcome == ("escalated" if jump else "approved")
    if jump:
        assert [r.code for r in verdict.reasons] == ["price_jump"]


def test_no_live_version_no_price_jump() -> None:
    assert rules.evaluate(request(price_fen=99_999_999), CONFIG).outcome == "approved"


def test_possible_duplicate_escalates() -> None:
    verdict = rules.evaluate(request(), CONFIG, duplicate_of=["p-0"])
    assert verdict.outcome == "escalated"
    assert [r.code for r in verdict.reasons] == ["possible_duplicate"]
    assert "p-0" in verdict.reasons[0].message


def test_soft_rules_do_not_run_when_a_hard_rule_fires() -> None:
    req = request(price_fen=-5, live_price_fen=1000, live_version=1)
    verdict = rules.evaluate(req, CONFIG, duplicate_of=["p-0"])
    assert verdict.outcome == "rejected"
    assert [r.code for r in verdict.reasons] == ["invalid_price"]


def test_both_soft_rules_reported() -> None:
    req = request(price_fen=5000, live_price_fen=1000, live_version=1)
    verdict = rules.evaluate(req, CONFIG, duplicate_of=["p-0"])
    assert [r.code for r in verdict.reasons] == ["price_jump", "possible_duplicate"]


def test_title_key_ignores_case_spacing_punctuation_and_width() -> None:
    key = rules.title_key("m-1", "Tea Cup, Blue!")
    assert key is not None and key.startswith("m-1:")
    assert rules.title_key("m-1", "  tea   cup blue ") == key
    assert rules.title_key("m-1", "ＴＥＡ ＣＵＰ－ＢＬＵＥ") == key
    assert rules.title_key("m-2", "Tea Cup, Blue!") != key
    assert rules.title_key("m-1", "Tea Cup, Red") != key
    assert rules.title_key("m-1", "!!!") is None
    assert rules.title_key("m-1", None) is None


# --- ASCII takes a shortcut; it must land where the Unicode path does --------------------------


def _unicode_title(title: str) -> str:
    folded = unicodedata.normalize("NFKC", title).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in ("L", "N"))


def _unicode_text(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc")
    )


def _unicode_url_chars_ok(url: str) -> bool:
    return not any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url)


@pytest.mark.parametrize("code", range(128))
def test_ascii_shortcuts_agree_with_the_unicode_rules(code: int) -> None:
    ch = chr(code)
    text = f"Tea {ch}Cup{ch}9"
    assert text.isascii()
    assert rules.normalise_title(text) == _unicode_title(text)
    assert normalise_text(text) == _unicode_text(text)
    url = f"https://img.example/a{ch}b.jpg"
    if not _unicode_url_chars_ok(url):
        assert not rules.valid_image_url(url)
    else:  # only a backslash is refused further on (as a path char it is fine to urlsplit)
        assert rules.valid_image_url(url) == (ch != "\\")


def test_non_ascii_still_takes_the_unicode_rules() -> None:
    assert rules.normalise_title("Ｔｅａ　ＣＵＰ！") == "teacup"
    assert normalise_text("最 佳\u200b") == "最佳"
    assert not rules.valid_image_url("https://img.example/a\u200bb.jpg")
    assert not rules.valid_image_url("https://img.example/a\u3000b.jpg")
