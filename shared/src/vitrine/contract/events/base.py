"""Base types shared by every event's ``data`` model.

Every input is bounded (lengths, list sizes) and strict (no silent coercion), as docs/CONTRACT.md
asks; every output is built from the same models so producers and consumers cannot drift.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Opaque ids: 1–64 chars of ``[A-Za-z0-9._:-]`` (docs/CONTRACT.md).
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
#: Free text shown to people (titles, messages). Bounded so one event cannot bloat a document.
Text = Annotated[str, StringConstraints(max_length=2000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
#: Money is integer fen (1/100 CNY); never floats.
Fen = Annotated[int, Field(ge=0, le=10**12)]
#: Rates are integer basis points (1050 = 10.50 %).
Bps = Annotated[int, Field(ge=0, le=10_000)]

SourceKind = Literal[
    "channels_shop",
    "wechat_mini_shop",
    "mini_program",
    "mini_program_alliance",
    "mini_shop_alliance",
    "third_party_platform",
]
ShopKind = Literal["channels_shop", "wechat_mini_shop", "mini_program"]
Surface = Literal["showcase", "live", "distribution"]


class EventData(BaseModel):
    """Base of every event's ``data``: strict, bounded, immutable, unknown fields ignored.

    ``event_type`` names the CloudEvents ``type`` the model is the data of.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_type: ClassVar[str] = ""


class Reason(BaseModel):
    """Why something was refused, escalated or suspended (codes: ``vitrine.contract.reasons``)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    message: Text = ""
    field: Annotated[str, StringConstraints(max_length=64)] | None = None
    policy_id: Id | None = None


class Source(BaseModel):
    """Where a product comes from: its shop kind, and the platform for third-party goods."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    kind: SourceKind
    platform: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


def reasons(*items: Reason) -> list[Reason]:
    """A list of reasons, for readability at call sites."""
    return list(items)


def dump(data: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a model; ``None`` omitted so optional fields stay optional."""
    return data.model_dump(mode="json", exclude_none=True)
