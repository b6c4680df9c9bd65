"""Policies: ``platform.policies`` (announcements), ``compliance.rulings`` and
``compliance.reports`` (docs/CONTRACT.md).

An announcement keeps its rules as raw dicts: a rule compliance cannot understand must come
back as a ``policy.rejected`` with ``unknown_rule`` / ``empty_rule``, not go to the DLQ.
:func:`parse_rules` turns them into the typed :data:`Rule` models that rulings carry and the
enforcing services use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, StringConstraints, TypeAdapter, ValidationError

from vitrine.contract.events.base import (
    EventData,
    Id,
    Reason,
    ShopKind,
    Source,
    SourceKind,
    Surface,
    Text,
)
from vitrine.contract.events.common import Count, Nested, ReasonList

MAX_RULES = 50
PolicyTitle = Annotated[str, StringConstraints(max_length=500)]
Phase = Literal["block_new", "enforce_existing"]
#: Phase of an enforcement report: a ruling's phase, or ``lifted``. An enumeration, not any
#: string: compliance keys its record of reports by phase, so a free string would become a
#: MongoDB field name (``$where``, ``a.b``) — anything else is dead-lettered ``invalid_data``.
ReportPhase = Literal["block_new", "enforce_existing", "lifted"]
EnforcingService = Literal["showcase", "live", "distribution"]
Surfaces = Annotated[list[Surface], Field(min_length=1, max_length=10)]
RawRule = Annotated[dict[str, Any], Field(max_length=20)]


# --- rules -------------------------------------------------------------------------------------


class SourceMatch(Nested):
    """Matches a product source by ``kind`` and, when given, ``platform``."""

    kind: SourceKind
    platform: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None

    def matches(self, source: Source) -> bool:
        if source.kind != self.kind:
            return False
        return self.platform is None or source.platform == self.platform


class DisallowSource(Nested):
    """Goods from these sources may not appear on these surfaces."""

    kind: Literal["disallow_source"] = "disallow_source"
    surfaces: Surfaces
    sources: Annotated[list[SourceMatch], Field(min_length=1, max_length=50)]

    def applies_to(self, surface: Surface) -> bool:
        return surface in self.surfaces

    def disallows(self, source: Source, surface: Surface) -> bool:
        """Whether goods from ``source`` are barred from ``surface`` (exemptions aside)."""
        return self.applies_to(surface) and any(m.matches(source) for m in self.sources)


class RequireShop(Nested):
    """Only accounts holding a shop of ``shop_kind`` may use these surfaces."""

    kind: Literal["require_shop"] = "require_shop"
    surfaces: Surfaces
    shop_kind: ShopKind

    def applies_to(self, surface: Surface) -> bool:
        return surface in self.surfaces


Rule = Annotated[DisallowSource | RequireShop, Field(discriminator="kind")]
Rules = Annotated[list[Rule], Field(max_length=MAX_RULES)]
RULE_KINDS: frozenset[str] = frozenset({"disallow_source", "require_shop"})
#: Validates one typed rule (for services that read rules back from their own documents).
RULE_ADAPTER: TypeAdapter[DisallowSource | RequireShop] = TypeAdapter(Rule)
_RULE_ADAPTER = RULE_ADAPTER


class Exemptions(Nested):
    """Merchants never touched by the policy; and whether provider-built malls are exempt."""

    merchant_ids: Annotated[list[Id], Field(max_length=10_000)] = Field(default_factory=list)
    service_provider_built: bool = False


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, list | tuple) and len(value) == 0)


def parse_rules(raw: Sequence[Any]) -> tuple[list[Rule], list[Reason]]:
    """Type an announcement's raw rules.

    Returns the rules that are valid and a reason for each problem found: ``unknown_rule``
    (a ``kind`` other than ``disallow_source``/``require_shop``, or a rule that fails validation
    otherwise — the message says why), ``empty_rule`` (no surfaces, or a ``disallow_source``
    without sources). The policy is acceptable only if no reasons are returned.
    """
    rules: list[Rule] = []
    problems: list[Reason] = []
    for i, item in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            problems.append(
                Reason(code="unknown_rule", message="a rule must be an object", field=where)
            )
            continue
        kind = item.get("kind")
        if not isinstance(kind, str) or kind not in RULE_KINDS:
            problems.append(
                Reason(
                    code="unknown_rule",
                    message=f"unknown rule kind {str(kind)[:100]!r}; expected one of "
                    + ", ".join(sorted(RULE_KINDS)),
                    field=f"{where}.kind",
                )
            )
            continue
        empty: list[Reason] = []
        if _is_empty(item.get("surfaces")):
            empty.append(
                Reason(
                    code="empty_rule",
                    message="the rule names no surfaces",
                    field=f"{where}.surfaces",
                )
            )
        if kind == "disallow_source" and _is_empty(item.get("sources")):
            empty.append(
                Reason(
                    code="empty_rule", message="the rule names no sources", field=f"{where}.sources"
                )
            )
        if empty:
            problems.extend(empty)
            continue
        try:
            rules.append(_RULE_ADAPTER.validate_python(item, strict=True))
        except ValidationError as exc:
            err = exc.errors(include_url=False, include_input=False)[0]
            # loc starts with the discriminator tag ("disallow_source", ...): drop it.
            loc = [str(p) for p in err["loc"] if p not in RULE_KINDS]
            field = ".".join([where, *loc])[:64]
            message = f"invalid {kind} rule: {'.'.join(loc) or '<rule>'}: {err['msg']}"
            problems.append(Reason(code="unknown_rule", message=message[:2000], field=field))
    return rules, problems


# --- platform.policies (inputs) ----------------------------------------------------------------


class PolicyAnnounced(EventData):
    """A platform policy. ``rules`` stay raw here: see :func:`parse_rules`."""

    event_type: ClassVar[str] = "policy.announced"

    policy_id: Id
    title: PolicyTitle
    announced_at: AwareDatetime | None = None
    effective_at: AwareDatetime
    enforce_existing_at: AwareDatetime | None = None
    rules: Annotated[list[RawRule], Field(max_length=MAX_RULES)] = Field(default_factory=list)
    exemptions: Exemptions = Field(default_factory=Exemptions)


class PolicyRetracted(EventData):
    event_type: ClassVar[str] = "policy.retracted"

    policy_id: Id
    reason: Text | None = None


# --- compliance.rulings (outputs) --------------------------------------------------------------


class PolicyAccepted(EventData):
    """The announcement is valid; carries the normalized policy."""

    event_type: ClassVar[str] = "policy.accepted"

    policy_id: Id
    title: PolicyTitle
    announced_at: AwareDatetime | None = None
    effective_at: AwareDatetime
    enforce_existing_at: AwareDatetime | None = None
    rules: Rules = Field(default_factory=list)
    exemptions: Exemptions = Field(default_factory=Exemptions)


class PolicyRejected(EventData):
    event_type: ClassVar[str] = "policy.rejected"

    policy_id: Id
    reasons: ReasonList = Field(default_factory=list)


class PolicyImpactAssessed(EventData):
    """How much the policy will touch, before it bites."""

    event_type: ClassVar[str] = "policy.impact_assessed"

    policy_id: Id
    items: Count
    offers: Count
    creators: Count
    merchants: Count
    assessed_at: AwareDatetime
    #: Items in open live carts (小黄车) it will suspend; ``items`` counts showcase items.
    cart_items: Count = 0


class PolicyInForce(EventData):
    """``block_new`` at ``effective_at``; ``enforce_existing`` at ``enforce_existing_at``."""

    event_type: ClassVar[str] = "policy.in_force"

    policy_id: Id
    phase: Phase
    rules: Rules = Field(default_factory=list)
    exemptions: Exemptions = Field(default_factory=Exemptions)
    effective_at: AwareDatetime
    enforce_existing_at: AwareDatetime | None = None


class PolicyLifted(EventData):
    """Retracted: services restore exactly what this policy suspended."""

    event_type: ClassVar[str] = "policy.lifted"

    policy_id: Id
    reason: Text | None = None


class PolicyEnforcementCompleted(EventData):
    """Every enforcing service reported; ``counts`` maps service → items/offers affected."""

    event_type: ClassVar[str] = "policy.enforcement_completed"

    policy_id: Id
    phase: ReportPhase
    counts: Annotated[
        dict[Annotated[str, StringConstraints(min_length=1, max_length=32)], Count],
        Field(max_length=10),
    ] = Field(default_factory=dict)


# --- compliance.reports ------------------------------------------------------------------------


class EnforcementReported(EventData):
    """A service applied a ruling to its own data (``phase``: ``enforce_existing`` | ``lifted``)."""

    event_type: ClassVar[str] = "enforcement.reported"

    policy_id: Id
    service: EnforcingService
    phase: ReportPhase
    affected: Count
