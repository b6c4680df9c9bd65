"""Every code of the contract: refusal and escalation reasons, suspension reasons, the causes
carried in a single ``reason`` field, and why a record is dead-lettered (docs/CONTRACT.md).

The ``Reason.code`` and ``reason`` fields of the event models stay plain bounded strings (a
consumer must not fail on a code added later); this registry is what the AsyncAPI documents
enumerate and docs/CONTRACT.md lists, and tests check that the services emit no code missing
from it. ``planned`` marks a code the contract defines but this release does not emit yet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReasonCode:
    """One code and what it means."""

    code: str
    meaning: str
    planned: bool = False


@dataclass(frozen=True, slots=True)
class CodeSet:
    """The codes that may appear in ``field`` of the events of ``event_types``.

    ``field`` is ``reasons`` (the ``code`` of each item of ``reasons[]``) or ``reason``.
    ``open``: other codes may appear too (a reviewer's own codes are passed through).
    """

    name: str
    event_types: tuple[str, ...]
    field: str
    codes: tuple[ReasonCode, ...]
    open: bool = False
    planned: bool = False

    @property
    def values(self) -> list[str]:
        """The codes, in contract order."""
        return [c.code for c in self.codes]


def _c(code: str, meaning: str, *, planned: bool = False) -> ReasonCode:
    return ReasonCode(code, meaning, planned)


_REVIEW_HARD = (
    _c("missing_field", "title, category, source or price_fen is missing (`field` says which)"),
    _c("title_too_long", "the title is longer than 60 characters"),
    _c(
        "invalid_price",
        "a price ≤ 0 or over 100,000,000 fen (`field`: `price_fen`, `skus[i].price_fen`)",
    ),
    _c("no_images", "no image"),
    _c("invalid_image_url", "an image is not an https URL with a host"),
    _c("banned_term", "the title uses an absolute term barred by the PRC Advertising Law art. 9"),
    _c("prohibited_category", "the category is on the prohibited list"),
)
_REVIEW_SOFT = (
    _c(
        "price_jump",
        "a SKU's price changed by more than 50 % from the same SKU of the live version",
    ),
    _c("possible_duplicate", "another product of the merchant has the same title"),
)
_MANUAL_REJECT = _c("manual_reject", "a reviewer rejected it without giving reasons")

_SUSPENSION = (
    _c("product_delisted", "the product is no longer listed"),
    _c("policy", "a policy in force disallows it (the event carries `policy_id`)"),
    _c("sold_out", "the product's total stock is 0", planned=True),
    _c(
        "offer_unavailable",
        "its offer was withdrawn or suspended, or the creator left its targeted plan",
        planned=True,
    ),
)

#: Live carts suspend for the same causes as showcases (and emit every one of them).
_LIVE_SUSPENSION = tuple(ReasonCode(c.code, f"cart item: {c.meaning}") for c in _SUSPENSION)

#: Every set of codes on the wire, by where it appears.
CODE_SETS: tuple[CodeSet, ...] = (
    CodeSet(
        "review rejections",
        ("review.rejected", "product.rejected"),
        "reasons",
        (*_REVIEW_HARD, _MANUAL_REJECT),
        open=True,
    ),
    CodeSet("review escalations", ("review.escalated",), "reasons", _REVIEW_SOFT),
    CodeSet(
        "catalog refusals",
        ("product.refused",),
        "reasons",
        (
            _c("not_product_owner", "the command's merchant_id is not the product's merchant"),
            _c("unknown_sku", "the live version has no such SKU (`product.stock_updated`)"),
            _c("product_not_listed", "unknown product, or no live version (stock)"),
            _c("product_banned", "a banned product takes no command and no reinstatement"),
        ),
    ),
    CodeSet(
        "delisting causes",
        ("product.delisted",),
        "reason",
        (
            _c("withdrawn", "the merchant withdrew the product"),
            _c("violation", "the platform delisted it for a violation"),
            _c("deposit_insufficient", "the merchant's deposit is insufficient"),
            _c("brand_expired", "the brand authorisation expired"),
            _c("banned", "banned by the platform for good"),
        ),
    ),
    CodeSet(
        "showcase refusals",
        ("showcase.item_refused",),
        "reasons",
        (
            _c("product_not_listed", "the product is not on sale"),
            _c("shop_required", "a `require_shop` rule in force: the creator holds no such shop"),
            _c("source_disallowed", "a `disallow_source` rule in force bars the product's source"),
            _c("showcase_full", "the showcase already holds 500 items"),
            _c("offer_not_available", "the offer is unknown, not active, or for another product"),
            _c("not_in_targeted_plan", "the offer's targeted plan does not name the creator"),
            _c("not_showcase_owner", "the request's creator_id is not its key (the creator)"),
        ),
    ),
    CodeSet(
        "showcase suspensions",
        ("showcase.item_suspended", "showcase.item_restored"),
        "reason",
        _SUSPENSION,
    ),
    CodeSet(
        "showcase removals",
        ("showcase.item_removed",),
        "reason",
        (_c("requested", "the creator removed it"),),
    ),
    CodeSet(
        "live refusals",
        ("live.session_refused", "live.item_refused"),
        "reasons",
        (
            _c("session_already_open", "the creator already has an open session"),
            _c("session_not_open", "no such open session"),
            _c("not_session_owner", "the request's creator is not the key, or not the session's"),
            _c("product_not_listed", "the product is not on sale"),
            _c("sold_out", "the product is sold out: no new cart item"),
            _c("not_in_showcase", "neither in the showcase nor taken through a usable offer"),
            _c("offer_not_available", "the offer is unknown or not active"),
            _c("not_in_targeted_plan", "the offer's targeted plan does not name the creator"),
            _c("shop_required", "a `require_shop` rule on `live`: the creator holds no such shop"),
            _c("source_disallowed", "a `disallow_source` rule on `live` bars the source"),
            _c("cart_full", "the cart already holds 500 items"),
            _c("not_in_cart", "remove or explain: the product is not in the session's cart"),
            _c("item_suspended", "explain: the cart item is suspended"),
        ),
    ),
    CodeSet(
        "live suspensions",
        ("live.item_suspended", "live.item_restored"),
        "reason",
        _LIVE_SUSPENSION,
    ),
    CodeSet(
        "live removals",
        ("live.item_removed",),
        "reason",
        (_c("requested", "the creator removed it"),),
    ),
    CodeSet(
        "offer refusals",
        ("offer.refused",),
        "reasons",
        (
            _c("product_not_listed", "the product is not listed"),
            _c("not_product_owner", "the product (or the offer) is another merchant's"),
            _c("invalid_commission", "commission_bps outside 100–9000"),
            _c("source_disallowed", "a policy in force bars the product's source on distribution"),
            _c("general_plan_required", "a targeted plan needs a live general plan"),
            _c("offer_inactive", "the offer is unknown, suspended or withdrawn"),
            _c("offer_product_mismatch", "the offer_id already belongs to another product"),
        ),
    ),
    CodeSet(
        "offer suspensions",
        ("offer.suspended", "offer.restored"),
        "reason",
        (_SUSPENSION[0], _SUSPENSION[1]),
    ),
    CodeSet(
        "offer withdrawals",
        ("offer.withdrawn",),
        "reason",
        (_c("merchant", "the merchant withdrew it"),),
    ),
    CodeSet(
        "commission refusals",
        ("commission.refused",),
        "reasons",
        (
            _c(
                "offer_inactive",
                "no active offer for the order at paid_at (unknown, inactive, other product)",
            ),
            _c("creator_not_eligible", "no creator, or not named by the offer's targeted plan"),
            _c("offer_unknown", "the order's offer never arrived within the wait"),
        ),
    ),
    CodeSet(
        "commission cancellations",
        ("commission.cancelled",),
        "reason",
        (_c("refunded", "a full refund before settlement"),),
    ),
    CodeSet(
        "policy rejections",
        ("policy.rejected",),
        "reasons",
        (
            _c("invalid_schedule", "effective_at / enforce_existing_at out of order"),
            _c("unknown_rule", "a rule of an unknown kind, or one that fails validation"),
            _c("empty_rule", "a policy without rules, or a rule without surfaces or sources"),
            _c("policy_lifted", "the policy was retracted: announce a new policy_id"),
            _c("already_in_force", "the policy took effect and can no longer be amended"),
        ),
    ),
)

#: Why a record went to ``<topic>.dlq`` (its ``dlq-reason`` header).
DEAD_LETTER_REASONS: tuple[ReasonCode, ...] = (
    _c("empty", "the record has no value (a tombstone)"),
    _c("too_large", "the value is larger than the consumer's limit (256 KiB by default)"),
    _c("not_json", "the value is not UTF-8 JSON"),
    _c("forbidden_key", "a JSON key starts with `$`, contains `.` or NUL"),
    _c("not_cloudevent", "not a CloudEvents 1.0 envelope as the contract defines it"),
    _c("unknown_type", "the `type` is not allowed on this topic"),
    _c("key_mismatch", "the record's key is missing or is not the event's `subject`"),
    _c("invalid_data", "`data` does not match the type's schema"),
    _c("handler_error", "the service failed on this event after bounded retries"),
    _c("clock_skew", "the event's `time` is more than 5 minutes in the future"),
)


def code_sets_for(event_type: str) -> list[CodeSet]:
    """The code sets that apply to ``event_type`` (empty for most types)."""
    return [s for s in CODE_SETS if event_type in s.event_types]


def all_codes() -> set[str]:
    """Every reason and dead-letter code of the contract."""
    return {c.code for s in CODE_SETS for c in s.codes} | {c.code for c in DEAD_LETTER_REASONS}
