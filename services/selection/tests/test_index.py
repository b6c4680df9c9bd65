"""The in-process offer index against a plain-Python oracle of the same query semantics
(the MongoDB filter of ``search.offer_filter`` and the (sort value, offer id) keyset order):
every filter, sort, direction, page size and cursor, with ties, updates and stale revisions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vitrine_selection.domain import Eligibility
from vitrine_selection.index import OfferIndex
from vitrine_selection.search import (
    SORT_FIELDS,
    OfferQuery,
    encode_cursor,
    parse_query,
    query_tokens,
    title_tokens,
)

WORDS = ["白瓷", "茶杯", "茶壶", "咖啡", "杯", "tea", "cup", "玻璃"]
CATEGORIES = ["家居", "数码", "美妆"]
SOURCES = [
    ("third_party_platform", "vip"),
    ("third_party_platform", "weimob"),
    ("mini_shop_alliance", None),
]
T0 = datetime(2022, 7, 4, 2, 0, tzinfo=UTC)


def doc(i: int, rnd: random.Random, rev: int = 1, **override: Any) -> dict[str, Any]:
    kind, platform = rnd.choice(SOURCES)
    title = " ".join(rnd.sample(WORDS, rnd.randint(1, 3)))
    price = rnd.choice([990, 1990, 4900, 12900])  # few values: many ties
    bps = rnd.choice([500, 1000, 2000])
    targeted = rnd.random() < 0.2
    published = T0 + timedelta(milliseconds=rnd.choice([0, 1, 2]) * 1000 + 123)
    d: dict[str, Any] = {
        "_id": f"o{i:03d}",
        "offer_id": f"o{i:03d}",
        "visible": rnd.random() < 0.85,
        "audience": [f"c{rnd.randrange(3)}"] if targeted else ["*"],
        "plan": "targeted" if targeted else "general",
        "title": title,
        "tokens": title_tokens(title),
        "category": rnd.choice(CATEGORIES),
        "images": [],
        "price_fen": price,
        "sold_out": rnd.random() < 0.1,
        "source_kind": kind,
        "source_platform": platform,
        "supplier": f"{kind}:{platform}" if platform else kind,
        "rate_bps": bps,
        "next_rate_bps": 300 if rnd.random() < 0.2 else None,
        "next_rate_at": T0 + timedelta(days=1) if rnd.random() < 0.2 else None,
        "commission_fen": (price * bps + 5000) // 10_000,
        "sales_orders_30d": rnd.choice([0, 0, 0, 1, 2]),
        "sales_gmv_30d_fen": 0,
        "published_ms": int(published.timestamp() * 1000),
        "published_at": published,
        "open_on": [s for s in ("showcase", "live", "distribution") if rnd.random() < 0.8],
        "shop_exempt": ["pol-1"] if rnd.random() < 0.3 else [],
        "product_id": f"p{i}",
        "merchant_id": f"m{i % 4}",
        "rev": rev,
    }
    d.update(override)
    return d


def oracle(docs: list[dict[str, Any]], q: OfferQuery, elig: Eligibility | None) -> list[str]:
    """Every matching offer id, in the query's order (what paging through MongoDB yields)."""
    wanted = set(query_tokens(q.q)) if q.q else set()
    out = []
    for d in docs:
        if not d["visible"] or not wanted <= set(d["tokens"]):
            continue
        if q.category is not None and d["category"] != q.category:
            continue
        if q.source_kind is not None and d["source_kind"] != q.source_kind:
            continue
        if q.platform is not None and d["source_platform"] != q.platform:
            continue
        if q.min_rate_bps is not None and d["rate_bps"] < q.min_rate_bps:
            continue
        if q.min_price_fen is not None and d["price_fen"] < q.min_price_fen:
            continue
        if q.max_price_fen is not None and d["price_fen"] > q.max_price_fen:
            continue
        if elig is not None and not (
            {"*", elig.creator_id} & set(d["audience"])
            and not d["sold_out"]
            and elig.surface in d["open_on"]
            and all(p in d["shop_exempt"] for p in elig.exempt_by)
        ):
            continue
        out.append(d)
    field = SORT_FIELDS[q.sort]
    out.sort(key=lambda d: (d[field], d["offer_id"]), reverse=q.direction == "desc")
    return [d["offer_id"] for d in out]


def walk(index: OfferIndex, q: OfferQuery, elig: Eligibility | None) -> list[str]:
    seen: list[str] = []
    cursor = q.cursor
    while True:
        page = index.page(q.model_copy(update={"cursor": cursor}), elig)
        seen += [r["offer_id"] for r in page.rows]
        assert len(page.rows) <= q.limit
        if page.after is None:
            return seen
        cursor = encode_cursor(q, *page.after)


def random_query(rnd: random.Random) -> tuple[OfferQuery, Eligibility | None]:
    params: dict[str, str] = {
        "sort": rnd.choice(list(SORT_FIELDS)),
        "order": rnd.choice(["asc", "desc"]),
        "limit": str(rnd.randint(1, 7)),
    }
    if rnd.random() < 0.4:
        params["q"] = rnd.choice(["茶杯", "杯", "白瓷茶杯", "TEA", "咖啡 cup", "茶碗"])
    if rnd.random() < 0.3:
        params["category"] = rnd.choice([*CATEGORIES, "nothing"])
    if rnd.random() < 0.3:
        kind, platform = rnd.choice(SOURCES)
        params["source_kind"] = kind
        if platform and rnd.random() < 0.5:
            params["platform"] = platform
    if rnd.random() < 0.3:
        params["min_rate_bps"] = str(rnd.choice([600, 1000, 2500]))
    if rnd.random() < 0.3:
        params["min_price_fen"] = str(rnd.choice([990, 2000]))
    if rnd.random() < 0.3:
        params["max_price_fen"] = str(rnd.choice([4900, 20000]))
    elig = None
    if rnd.random() < 0.4:
        elig = Eligibility(
            f"c{rnd.randrange(3)}",
            rnd.choice(["showcase", "live"]),
            ("pol-1",) if rnd.random() < 0.3 else (),
        )
    return parse_query(params), elig


@pytest.mark.parametrize("seed", range(6))
def test_every_query_pages_exactly_like_the_oracle(seed: int) -> None:
    rnd = random.Random(seed)
    docs = [doc(i, rnd) for i in rnd.sample(range(400), 150)]  # ids not in insertion order
    index = OfferIndex(capacity=8)  # grows several times
    for start in range(0, len(docs), 40):
        index.apply(docs[start : start + 40])
    for _ in range(60):
        q, elig = random_query(rnd)
        assert walk(index, q, elig) == oracle(docs, q, elig), (q, elig)


def test_updates_replace_older_revisions_only_and_titles_are_reindexed() -> None:
    rnd = random.Random(1)
    docs = {d["_id"]: d for d in (doc(i, rnd) for i in range(50))}
    index = OfferIndex()
    index.apply(docs.values())
    target = docs["o007"]
    renamed = {**target, "title": "紫砂茶壶", "tokens": title_tokens("紫砂茶壶"), "visible": True}
    index.apply([renamed], rev=5)
    docs["o007"] = renamed
    index.apply([{**target, "title": "旧的", "tokens": title_tokens("旧的")}], rev=4)  # stale
    for text in ("紫砂", "白瓷", "旧的"):
        q = parse_query({"q": text, "sort": "price"})
        assert walk(index, q, None) == oracle(list(docs.values()), q, None)
    assert "o007" in walk(index, parse_query({"q": "紫砂"}), None)
    # A withdrawn offer leaves at once; one new (single insertions keep the id order).
    index.apply([{**renamed, "visible": False}], rev=6)
    docs["o007"] = {**renamed, "visible": False}
    for i in (500, 5, 777):
        fresh = doc(i, rnd, rev=7, visible=True)
        docs[fresh["_id"]] = fresh
        index.apply([fresh])
    for sort in SORT_FIELDS:
        q = parse_query({"sort": sort, "limit": "3"})
        assert walk(index, q, None) == oracle(list(docs.values()), q, None)


def test_a_cursor_continues_after_its_position_while_data_changes() -> None:
    rnd = random.Random(2)
    docs = {d["_id"]: d for d in (doc(i, rnd, visible=True) for i in range(0, 200, 2))}
    index = OfferIndex()
    index.apply(docs.values())
    q = parse_query({"sort": "price", "limit": "10"})
    first = index.page(q)
    assert first.after is not None
    value, last_id = first.after
    # Offers arrive on both sides of the cursor, others change price, the last one shown leaves.
    for i in range(1, 200, 10):
        fresh = doc(i, rnd, rev=2, visible=True)
        docs[fresh["_id"]] = fresh
    for oid in list(docs)[::7]:
        docs[oid] = {**docs[oid], "price_fen": rnd.choice([990, 4900]), "rev": 2}
    docs[last_id] = {**docs[last_id], "visible": False, "rev": 2}
    index.apply(docs.values())
    rest = walk(index, q.model_copy(update={"cursor": encode_cursor(q, value, last_id)}), None)
    expected = [
        oid
        for oid in oracle(list(docs.values()), q, None)
        if (docs[oid]["price_fen"], oid) > (value, last_id)
    ]
    assert rest == expected


def test_rows_show_what_mongodb_would_return() -> None:
    rnd = random.Random(3)
    at = datetime(2022, 7, 5, 16, 0, 0, 123456, tzinfo=UTC)
    d = doc(1, rnd, visible=True, next_rate_bps=700, next_rate_at=at)
    index = OfferIndex()
    index.apply([d])
    row = index.page(parse_query({}), None).rows[0]
    assert row["next_rate_at"] == at.replace(microsecond=123000)  # BSON keeps milliseconds
    assert row["published_at"] == d["published_at"]
    for key in ("title", "price_fen", "rate_bps", "commission_fen", "source_kind", "plan"):
        assert row[key] == d[key]


def test_suppliers_count_visible_offers_with_rate_ranges() -> None:
    rnd = random.Random(4)
    docs = [doc(i, rnd) for i in range(120)]
    index = OfferIndex()
    index.apply(docs)
    expected: dict[str, list[int]] = {}
    for d in docs:
        if d["visible"]:
            expected.setdefault(d["supplier"], []).append(d["rate_bps"])
    got = {g["supplier"]: g for g in index.suppliers()}
    assert set(got) == set(expected)
    for name, rates in expected.items():
        assert (got[name]["offers"], got[name]["min_rate_bps"], got[name]["max_rate_bps"]) == (
            len(rates),
            min(rates),
            max(rates),
        )
