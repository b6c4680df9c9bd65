"""Search over offers: title tokens for Chinese and Latin text, the query parameters, the
keyset cursor, and the MongoDB filter and sort they make. Pure: no I/O.

Tokens (see the service README for why n-grams and not a segmenter such as jieba):

- the title is normalised (NFKC, case-folded), then cut into runs of CJK characters and runs
  of other letters/digits;
- a CJK run is indexed as every character (unigram) and every pair of neighbours (bigram) —
  ``白瓷茶杯`` → 白 瓷 茶 杯 白瓷 瓷茶 茶杯 — and a query run as its bigrams (its one character
  when it has only one), so ``茶杯`` finds ``白瓷茶杯`` whatever a dictionary would say;
- a Latin/digit run is one token (``Tea`` → ``tea``): whole words, no stemming;
- a query matches an offer whose tokens include ALL of the query's tokens (``$all`` on a
  multikey index): no regular expression ever reaches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from vitrine.contract.events.base import Id, SourceKind

#: CJK ideographs (with extensions A and compatibility), kana and hangul: no spaces between words.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_RUNS = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
#: Most tokens one title contributes (a title is ≤ 1000 chars on the wire; 60 after review).
MAX_TITLE_TOKENS = 400
MAX_QUERY_CHARS = 100
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

SortName = Literal["commission_rate", "commission_per_unit", "price", "sales", "newest"]
#: Sort name → the document field it orders by (every one an integer, never null).
SORT_FIELDS: dict[str, str] = {
    "commission_rate": "rate_bps",
    "commission_per_unit": "commission_fen",
    "price": "price_fen",
    "sales": "sales_orders_30d",
    "newest": "published_ms",
}
#: The tie-breaker of every sort (``_id`` cannot be in a compound index on nx-27017).
TIE = "offer_id"


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def title_tokens(title: str) -> list[str]:
    """What a title is indexed under: CJK unigrams and bigrams, Latin/digit words."""
    tokens: dict[str, None] = {}
    for cjk, word in _RUNS.findall(normalize(title)):
        if word:
            tokens[word] = None
            continue
        for i, char in enumerate(cjk):
            tokens[char] = None
            if i + 1 < len(cjk):
                tokens[cjk[i : i + 2]] = None
        if len(tokens) >= MAX_TITLE_TOKENS:
            break
    return list(tokens)[:MAX_TITLE_TOKENS]


def query_tokens(q: str) -> list[str]:
    """What a keyword query must match: CJK bigrams (a lone character as itself), words."""
    tokens: dict[str, None] = {}
    for cjk, word in _RUNS.findall(normalize(q)):
        if word:
            tokens[word] = None
        elif len(cjk) == 1:
            tokens[cjk] = None
        else:
            for i in range(len(cjk) - 1):
                tokens[cjk[i : i + 2]] = None
    return list(tokens)


# --- query parameters --------------------------------------------------------------------------


class BadQuery(ValueError):
    """A query parameter that is malformed: the HTTP layer answers 400 with this message."""


Fen = Annotated[int, Field(ge=0, le=10**12)]


class OfferQuery(BaseModel):
    """``GET /offers`` parameters, validated (unknown names are refused, so typos are not
    silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    q: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)] | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    source_kind: SourceKind | None = None
    platform: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    min_rate_bps: Annotated[int, Field(ge=0, le=10_000)] | None = None
    min_price_fen: Fen | None = None
    max_price_fen: Fen | None = None
    sort: SortName = "newest"
    order: Literal["asc", "desc"] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    creator_id: Id | None = None
    surface: Literal["showcase", "live"] | None = None

    @property
    def direction(self) -> Literal["asc", "desc"]:
        """Cheapest first for price; highest/newest first for everything else."""
        return self.order or ("asc" if self.sort == "price" else "desc")


def parse_query(params: dict[str, str]) -> OfferQuery:
    """Validate query parameters (strings from the URL) or raise :class:`BadQuery`."""
    try:
        query = OfferQuery.model_validate(params)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'query'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise BadQuery("; ".join(problems)) from None
    if (query.creator_id is None) != (query.surface is None):
        raise BadQuery("creator_id and surface go together (surface: showcase | live)")
    if (
        query.min_price_fen is not None
        and query.max_price_fen is not None
        and query.min_price_fen > query.max_price_fen
    ):
        raise BadQuery("min_price_fen is greater than max_price_fen")
    if query.q is not None and not query_tokens(query.q):
        raise BadQuery("q has no letters, digits or CJK characters to search for")
    if query.cursor is not None:
        decode_cursor(query.cursor, query)
    return query


# --- cursor ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: its last (sort value, offer id)."""

    value: int
    offer_id: str


def encode_cursor(query: OfferQuery, value: int, offer_id: str) -> str:
    """An opaque cursor for the page after (value, offer_id) under this sort and order."""
    raw = json.dumps([query.sort, query.direction, value, offer_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: OfferQuery) -> Cursor:
    """The cursor's position; :class:`BadQuery` when it is not one of ours or is for another
    sort or order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort, direction, value, offer_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BadQuery("cursor is not a cursor this service issued") from None
    if not (isinstance(value, int) and not isinstance(value, bool) and isinstance(offer_id, str)):
        raise BadQuery("cursor is not a cursor this service issued")
    if (sort, direction) != (query.sort, query.direction):
        raise BadQuery("cursor belongs to another sort or order: start again without it")
    return Cursor(value, offer_id)


# --- the MongoDB query -------------------------------------------------------------------------


def offer_filter(query: OfferQuery, eligibility: dict[str, Any] | None = None) -> dict[str, Any]:
    """The filter of ``query`` over visible offers; ``eligibility`` is the creator's part
    (``domain.Eligibility.filter``)."""
    clauses: list[dict[str, Any]] = [{"visible": True}]
    if query.q is not None:
        clauses.append({"tokens": {"$all": query_tokens(query.q)}})
    if query.category is not None:
        clauses.append({"category": query.category})
    if query.source_kind is not None:
        clauses.append({"source_kind": query.source_kind})
    if query.platform is not None:
        clauses.append({"source_platform": query.platform})
    if query.min_rate_bps is not None:
        clauses.append({"rate_bps": {"$gte": query.min_rate_bps}})
    price: dict[str, int] = {}
    if query.min_price_fen is not None:
        price["$gte"] = query.min_price_fen
    if query.max_price_fen is not None:
        price["$lte"] = query.max_price_fen
    if price:
        clauses.append({"price_fen": price})
    if eligibility:
        clauses.append(eligibility)
    if query.cursor is not None:
        at = decode_cursor(query.cursor, query)
        field = SORT_FIELDS[query.sort]
        op = "$lt" if query.direction == "desc" else "$gt"
        clauses.append(
            {"$or": [{field: {op: at.value}}, {field: at.value, TIE: {op: at.offer_id}}]}
        )
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def offer_sort(query: OfferQuery) -> list[tuple[str, int]]:
    """(sort field, offer id), both in the query's direction: one index serves both ways."""
    way = -1 if query.direction == "desc" else 1
    return [(SORT_FIELDS[query.sort], way), (TIE, way)]
