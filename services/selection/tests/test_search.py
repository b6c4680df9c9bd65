"""Search: Chinese and Latin tokens, query parameters, the opaque cursor (pure, no I/O)."""

from __future__ import annotations

import pytest

from vitrine_selection import search
from vitrine_selection.search import BadQuery, parse_query, query_tokens, title_tokens


def matches(q: str, title: str) -> bool:
    return set(query_tokens(q)) <= set(title_tokens(title))


def test_a_chinese_word_inside_a_title_without_spaces_is_found() -> None:
    assert matches("茶杯", "白瓷茶杯")
    assert matches("白瓷茶杯", "景德镇白瓷茶杯 4只装")
    assert matches("杯", "白瓷茶杯")
    assert not matches("茶壶", "白瓷茶杯")
    assert not matches("白杯", "白瓷茶杯")


def test_latin_words_are_case_folded_and_full_width_normalised() -> None:
    assert matches("TEA", "Tea cup 茶杯")
    assert matches("ｉｐｈｏｎｅ", "iPhone 15 手机壳")
    assert matches("iphone 手机", "iPhone 15 手机壳")
    assert not matches("tea", "Teapot")


def test_title_tokens_are_bounded_and_unique() -> None:
    tokens = title_tokens("好" * 1000)
    assert tokens == ["好", "好好"]
    assert len(title_tokens("".join(chr(0x4E00 + i) for i in range(1000)))) == 400


def test_parameters_are_validated_and_unknown_ones_refused() -> None:
    q = parse_query({"q": "茶杯", "min_rate_bps": "500", "limit": "50", "sort": "price"})
    assert q.min_rate_bps == 500 and q.limit == 50 and q.direction == "asc"
    for bad in (
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"sort": "random"},
        {"min_rate_bps": "-1"},
        {"min_price_fen": "10", "max_price_fen": "5"},
        {"source_kind": "ebay"},
        {"creator_id": "c-1"},
        {"surface": "live"},
        {"creator_id": "c-1", "surface": "distribution"},
        {"q": "(.*)+$"},
        {"q": "x" * 101},
        {"min_rate": "10"},
        {"cursor": "not-a-cursor!"},
    ):
        with pytest.raises(BadQuery):
            parse_query(bad)


def test_the_cursor_round_trips_and_belongs_to_its_sort() -> None:
    q = parse_query({"sort": "commission_rate"})
    token = search.encode_cursor(q, 1200, "o-7")
    assert search.decode_cursor(token, q) == search.Cursor(1200, "o-7")
    with pytest.raises(BadQuery, match="another sort"):
        parse_query({"sort": "price", "cursor": token})
    with pytest.raises(BadQuery):
        parse_query({"cursor": "W10"})  # base64 of "[]"


def test_the_filter_keys_on_sort_value_then_offer_id() -> None:
    q = parse_query({"sort": "sales"})
    after = parse_query({"sort": "sales", "cursor": search.encode_cursor(q, 5, "o-3")})
    flt = search.offer_filter(after)
    assert {
        "$or": [
            {"sales_orders_30d": {"$lt": 5}},
            {"sales_orders_30d": 5, "offer_id": {"$lt": "o-3"}},
        ]
    } in flt["$and"]
    assert search.offer_sort(after) == [("sales_orders_30d", -1), ("offer_id", -1)]


def test_every_filter_reaches_the_query() -> None:
    q = parse_query(
        {
            "q": "茶杯",
            "category": "家居",
            "source_kind": "third_party_platform",
            "platform": "jd",
            "min_rate_bps": "1000",
            "min_price_fen": "100",
            "max_price_fen": "900",
        }
    )
    clauses = search.offer_filter(q)["$and"]
    assert {"tokens": {"$all": ["茶杯"]}} in clauses
    assert {"category": "家居"} in clauses
    assert {"source_kind": "third_party_platform"} in clauses
    assert {"source_platform": "jd"} in clauses
    assert {"rate_bps": {"$gte": 1000}} in clauses
    assert {"price_fen": {"$gte": 100, "$lte": 900}} in clauses
