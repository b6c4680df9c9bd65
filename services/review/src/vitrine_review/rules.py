"""The automated review rules (DESIGN.md §3 review codes). Pure: no I/O, no clock.

Hard rules reject and report **every** code that applies, so a merchant fixes everything in
one round; soft rules run only when no hard rule fired and send the draft to a person;
otherwise the draft is approved.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from vitrine.contract.events import DEFAULT_SKU, ProductReviewRequested, Reason
from vitrine_review.config import ReviewConfig, normalise_text

MAX_TITLE_CHARS = 60
MAX_PRICE_FEN = 100_000_000
#: A price change of more than this share of the live price is escalated (50 %).
PRICE_JUMP_PERCENT = 50
_MESSAGE_CHARS = 500
_FIELD_CHARS = 64
#: At most this many per-SKU reasons of one code; the rest are summed up in one more reason
#: (a product has up to 500 SKUs, a reason list at most 100 entries).
MAX_SKU_REASONS = 20

Outcome = Literal["approved", "rejected", "escalated"]


@dataclass(frozen=True)
class Verdict:
    """What the rules decided about one draft, and why."""

    outcome: Outcome
    reasons: tuple[Reason, ...] = ()


def _reason(code: str, message: str, field: str | None = None) -> Reason:
    return Reason(
        code=code,
        message=message[:_MESSAGE_CHARS],
        field=field[:_FIELD_CHARS] if field is not None else None,
    )


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def valid_image_url(url: str) -> bool:
    """An absolute ``https`` URL with a host, no credentials, no whitespace or control chars."""
    if not url:
        return False
    if url.isascii():  # ASCII's whitespace and controls: exactly the unprintable and " "
        if not url.isprintable() or " " in url:
            return False
    elif any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        return False
    if "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    host = parts.hostname
    return (
        parts.scheme == "https"
        and bool(host)
        and host is not None
        and not host.startswith(".")
        and ".." not in host
        and parts.username is None
        and parts.password is None
    )


def banned_terms_in(text: str, terms: Iterable[str]) -> list[str]:
    """The (normalised) banned terms ``text`` contains, in configuration order."""
    norm = normalise_text(text)
    return [t for t in terms if t in norm]


def hard_reasons(req: ProductReviewRequested, config: ReviewConfig) -> list[Reason]:
    """Every hard-rule violation of the draft (empty: none)."""
    reasons: list[Reason] = []
    if _blank(req.title):
        reasons.append(_reason("missing_field", "title is required", "title"))
    if _blank(req.category):
        reasons.append(_reason("missing_field", "category is required", "category"))
    if req.source is None:
        reasons.append(_reason("missing_field", "source is required", "source"))
    if not req.skus and req.price_fen is None:
        reasons.append(_reason("missing_field", "price_fen is required", "price_fen"))

    if req.title is not None and len(req.title.strip()) > MAX_TITLE_CHARS:
        reasons.append(
            _reason(
                "title_too_long",
                f"title has {len(req.title.strip())} characters, at most {MAX_TITLE_CHARS}",
                "title",
            )
        )
    reasons += _sku_price_reasons(req)
    if not req.images:
        reasons.append(_reason("no_images", "at least one image is required", "images"))
    else:
        bad = [i for i, url in enumerate(req.images) if not valid_image_url(url)]
        if bad:
            where = ", ".join(f"images[{i}]" for i in bad)
            reasons.append(
                _reason("invalid_image_url", f"{where}: not an https URL with a host", "images")
            )

    if req.title is not None:
        found = banned_terms_in(req.title, config.banned_terms)
        if found:
            reasons.append(_reason("banned_term", f"title uses {', '.join(found)}", "title"))
    for name, value in req.attributes.items():
        if isinstance(value, str):
            found = banned_terms_in(value, config.banned_terms)
            if found:
                reasons.append(
                    _reason(
                        "banned_term",
                        f"attribute {name!r} uses {', '.join(found)}",
                        f"attributes.{name}",
                    )
                )

    if req.category is not None and normalise_text(req.category) in config.prohibited_categories:
        reasons.append(
            _reason(
                "prohibited_category",
                f"category {req.category!r} may not be sold",
                "category",
            )
        )
    return reasons


def _price_field(req: ProductReviewRequested, index: int) -> str:
    """Where a SKU's price came from: ``price_fen`` for the implicit ``default`` SKU of a
    product submitted without ``skus[]``, else ``skus[i].price_fen``."""
    if len(req.skus) == 1 and req.skus[0].sku_id == DEFAULT_SKU:
        return "price_fen"
    return f"skus[{index}].price_fen"


def _capped(reasons: list[Reason]) -> list[Reason]:
    """``reasons`` (all of one code), the ones past :data:`MAX_SKU_REASONS` summed up."""
    if len(reasons) <= MAX_SKU_REASONS:
        return reasons
    kept, rest = reasons[: MAX_SKU_REASONS - 1], len(reasons) - MAX_SKU_REASONS + 1
    return [*kept, _reason(kept[0].code, f"and {rest} more SKUs", "skus")]


def _invalid_price(price_fen: int, field: str) -> Reason:
    return _reason(
        "invalid_price", f"{field} {price_fen} must be > 0 and <= {MAX_PRICE_FEN}", field
    )


def _sku_price_reasons(req: ProductReviewRequested) -> list[Reason]:
    """``missing_field`` / ``invalid_price`` for every SKU (or the top-level price of a
    request that carries no SKUs)."""
    if not req.skus:
        if req.price_fen is not None and not 0 < req.price_fen <= MAX_PRICE_FEN:
            return [_invalid_price(req.price_fen, "price_fen")]
        return []
    missing: list[Reason] = []
    invalid: list[Reason] = []
    for i, sku in enumerate(req.skus):
        field = _price_field(req, i)
        if sku.price_fen is None:
            missing.append(_reason("missing_field", f"{field} is required", field))
        elif not 0 < sku.price_fen <= MAX_PRICE_FEN:
            invalid.append(_invalid_price(sku.price_fen, field))
    return _capped(missing) + _capped(invalid)


def _price_jump_reasons(req: ProductReviewRequested) -> list[Reason]:
    """``price_jump`` per SKU against the live version's SKU of the same id (a new SKU is
    never a jump); a request without SKUs compares the top-level prices."""
    if not req.skus:
        if not price_jumped(req.price_fen, req.live_price_fen):
            return []
        return [
            _reason(
                "price_jump",
                f"price_fen {req.price_fen} vs live {req.live_price_fen} "
                f"(version {req.live_version}): more than {PRICE_JUMP_PERCENT} % change",
                "price_fen",
            )
        ]
    live = {sku.sku_id: sku.price_fen for sku in req.live_skus}
    jumps: list[Reason] = []
    for i, sku in enumerate(req.skus):
        was = live.get(sku.sku_id)
        if price_jumped(sku.price_fen, was):
            field = _price_field(req, i)
            jumps.append(
                _reason(
                    "price_jump",
                    f"{field} {sku.price_fen} vs live {was} of SKU {sku.sku_id} "
                    f"(version {req.live_version}): more than {PRICE_JUMP_PERCENT} % change",
                    field,
                )
            )
    return _capped(jumps)


def price_jumped(price_fen: int | None, live_price_fen: int | None) -> bool:
    """True when the price moves more than 50 % away from the live version's price."""
    if price_fen is None or live_price_fen is None or live_price_fen <= 0:
        return False
    return abs(price_fen - live_price_fen) * 100 > PRICE_JUMP_PERCENT * live_price_fen


def soft_reasons(req: ProductReviewRequested, *, duplicate_of: Iterable[str] = ()) -> list[Reason]:
    """Why a person should look at the draft (empty: no reason)."""
    reasons = _price_jump_reasons(req)
    others = sorted(duplicate_of)
    if others:
        reasons.append(
            _reason(
                "possible_duplicate",
                f"same title as {', '.join(others[:5])} of the same merchant",
                "title",
            )
        )
    return reasons


def evaluate(
    req: ProductReviewRequested,
    config: ReviewConfig,
    *,
    duplicate_of: Iterable[str] = (),
) -> Verdict:
    """Hard rules reject; else soft rules escalate; else approve.

    ``duplicate_of``: the merchant's other products already reviewed under the same
    normalised title (see :func:`title_key`).
    """
    hard = hard_reasons(req, config)
    if hard:
        return Verdict("rejected", tuple(hard))
    soft = soft_reasons(req, duplicate_of=duplicate_of)
    if soft:
        return Verdict("escalated", tuple(soft))
    return Verdict("approved")


#: Every ASCII byte but lower-case letters and digits (:func:`normalise_title` on ASCII).
_ASCII_NOT_ALNUM = bytes(b for b in range(128) if not chr(b).isalnum() or chr(b).isupper())


def normalise_title(title: str) -> str:
    """A title reduced to what makes it the same product name: NFKC, case-folded, letters
    and digits only (spacing and punctuation differences do not make a new product)."""
    if title.isascii():  # NFKC leaves ASCII as it is; its letters and digits are [a-z0-9]
        return title.lower().encode().translate(None, _ASCII_NOT_ALNUM).decode()
    folded = unicodedata.normalize("NFKC", title).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in ("L", "N"))


def title_key(merchant_id: str, title: str | None) -> str | None:
    """The duplicate index's ``_id`` for a merchant's title (None: nothing to compare)."""
    if title is None:
        return None
    norm = normalise_title(title)
    if not norm:
        return None
    return f"{merchant_id}:{hashlib.sha256(norm.encode()).hexdigest()[:32]}"
