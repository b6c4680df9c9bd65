"""Review's configuration: which terms and categories the automated rules refuse.

Read from the environment as JSON lists (``VITRINE_REVIEW_BANNED_TERMS='["最佳","顶级"]'``,
``VITRINE_REVIEW_PROHIBITED_CATEGORIES='["tobacco"]'``) and injected into the handlers, so
tests and deployments change the lists without code edits.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Absolute terms the PRC Advertising Law art. 9(3) bars ("国家级", "最高级", "最佳" and the
#: like), plus the variants market regulators most often cite under it.
DEFAULT_BANNED_TERMS: tuple[str, ...] = (
    "国家级",
    "最高级",
    "最佳",
    "第一",
    "顶级",
    "最好",
    "最低价",
    "最便宜",
    "唯一",
    "独一无二",
    "史无前例",
    "绝无仅有",
    "世界级",
    "极致",
    "万能",
)

#: Categories that may not be sold through the shop at all (a deployment sets its own).
DEFAULT_PROHIBITED_CATEGORIES: tuple[str, ...] = (
    "firearms",
    "ammunition",
    "tobacco",
    "e-cigarettes",
    "prescription_drugs",
    "枪支弹药",
    "烟草",
    "电子烟",
    "处方药",
)

Term = Annotated[str, StringConstraints(max_length=200)]


#: ASCII's whitespace and control characters (it has no format characters): what
#: :func:`normalise_text` removes from an ASCII text.
_ASCII_SPACE_AND_CONTROL = bytes([*range(0x21), 0x7F])


def normalise_text(text: str) -> str:
    """The form terms are compared in: NFKC (full-width → half-width), case-folded, with
    whitespace and invisible format characters removed, so "最 佳" or "ＴＯＰ" cannot slip by."""
    if text.isascii():  # NFKC leaves ASCII as it is and casefolds it as lower(): same result
        return text.lower().encode().translate(None, _ASCII_SPACE_AND_CONTROL).decode()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc")
    )


class ReviewConfig(BaseSettings):
    """The automated review's lists (environment: ``VITRINE_REVIEW_*``, JSON lists) and how
    long a reviewer's verdict waits for its escalation."""

    model_config = SettingsConfigDict(env_prefix="VITRINE_REVIEW_", extra="ignore", frozen=True)

    banned_terms: Annotated[list[Term], Field(max_length=10_000)] = Field(
        default_factory=lambda: list(DEFAULT_BANNED_TERMS)
    )
    prohibited_categories: Annotated[list[Term], Field(max_length=10_000)] = Field(
        default_factory=lambda: list(DEFAULT_PROHIBITED_CATEGORIES)
    )

    #: A reviewer's verdict on a version not escalated yet (``review.manual`` read ahead of
    #: ``catalog.products``) is held until catalog's event time passes the verdict's ``time`` +
    #: this many hours, then ignored ``not_escalated``.
    manual_wait_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    @property
    def manual_wait(self) -> timedelta:
        return timedelta(hours=self.manual_wait_hours)

    @field_validator("banned_terms", "prohibited_categories")
    @classmethod
    def _normalised(cls, values: list[str]) -> list[str]:
        # Compared in normalised form; empty entries would match everything, so drop them.
        out: list[str] = []
        for value in values:
            norm = normalise_text(value)
            if norm and norm not in out:
                out.append(norm)
        return out
