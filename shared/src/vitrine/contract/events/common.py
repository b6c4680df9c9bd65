"""Bounded field types shared by the event modules (on top of :mod:`vitrine.contract.events.base`).

Every string and list is bounded and every integer fits a MongoDB int64 (docs/CONTRACT.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from vitrine.contract.events.base import Id, Reason

#: A stable machine-readable code (a reason code, a delisting cause such as ``withdrawn``).
Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: A product version: draft n+1 after n submissions.
Version = Annotated[int, Field(ge=1, le=10**9)]
#: A count of things (items, offers, …).
Count = Annotated[int, Field(ge=0, le=10**12)]
#: A place in a creator's showcase (0 = top).
Position = Annotated[int, Field(ge=0, le=100_000)]
#: The reasons of a refusal, escalation or rejection.
ReasonList = Annotated[list[Reason], Field(max_length=100)]
#: Creators named by a targeted plan.
CreatorIds = Annotated[list[Id], Field(max_length=10_000)]
#: A signed amount in fen (a delta, or an unvalidated price review must judge).
SignedFen = Annotated[int, Field(ge=-(10**12), le=10**12)]


class Nested(BaseModel):
    """Base of models nested inside an event's ``data``: same rules as ``EventData``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
