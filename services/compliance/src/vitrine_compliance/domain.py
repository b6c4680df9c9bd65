"""Policies: validation, amendment, scheduling, retraction and enforcement progress.

Pure: no I/O. ``announce`` / ``retract`` / ``fire`` / ``report`` take the current
:class:`Policy` (or ``None``) and return a :class:`~vitrine.runtime.decision.Decision` about a
:class:`Planned` (the new policy, the schedule changes to write, whether to (re)assess the
impact) with the rulings to publish.

Lifecycle (``state``)::

    announced ─► accepted ─► scheduled ─► in_force (phase block_new, then enforce_existing)
        │                        │              │
        └──► rejected            └──────────────┴──► lifted (policy.retracted)

``announced`` and ``accepted`` are momentary: an announcement is validated and, when valid,
scheduled in the same transaction, so they appear only in a policy's ``history``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from vitrine.contract import policy_kernel
from vitrine.contract.events import (
    EnforcementReported,
    EventData,
    Exemptions,
    Phase,
    PolicyAccepted,
    PolicyAnnounced,
    PolicyEnforcementCompleted,
    PolicyInForce,
    PolicyLifted,
    PolicyRejected,
    PolicyRetracted,
    Reason,
    ReportPhase,
    Rule,
    Source,
    Surface,
    parse_rules,
)

# the kernel's accounts, re-exported for the repository and tests
from vitrine.contract.policy_kernel import Account as Account
from vitrine.contract.policy_kernel import Shop as Shop
from vitrine.runtime.decision import Decision, Emit

State = Literal["announced", "accepted", "rejected", "scheduled", "in_force", "lifted"]
PHASES: tuple[Phase, ...] = ("block_new", "enforce_existing")
#: Which service enforces each surface (and reports before ``policy.enforcement_completed``).
ENFORCER: dict[Surface, str] = {
    "showcase": "showcase",
    "distribution": "distribution",
    "live": "live",
}
#: Report phases after which compliance publishes ``policy.enforcement_completed``.
COMPLETABLE = ("enforce_existing", "lifted")


@dataclass(frozen=True)
class Cause:
    """The announcement a policy's current terms came from (for scheduled events' ids)."""

    id: str
    source: str
    correlationid: str


@dataclass(frozen=True)
class HistoryEntry:
    state: str
    at: datetime
    note: str = ""


@dataclass(frozen=True)
class Policy:
    """One policy as compliance keeps it (one document, ``_id`` = policy id).

    ``terms`` are the accepted terms (``None`` while never accepted); ``revision`` counts
    accepted announcements (1 = original, 2+ = amendments); ``fired`` maps each phase
    published to when; ``reports`` maps a report phase to ``{service: affected}``;
    ``completed`` the report phases whose completion was published.
    """

    policy_id: str
    state: State
    terms: PolicyAccepted | None = None
    revision: int = 0
    cause: Cause | None = None
    fired: Mapping[str, datetime] = field(default_factory=dict)
    lifted_at: datetime | None = None
    lift_reason: str | None = None
    reports: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    completed: Mapping[str, datetime] = field(default_factory=dict)
    last_rejection: tuple[Reason, ...] = ()
    history: tuple[HistoryEntry, ...] = ()

    @property
    def phase(self) -> str | None:
        """The last phase published (``None`` before effect)."""
        fired = [p for p in PHASES if p in self.fired]
        return fired[-1] if fired else None

    @property
    def took_effect(self) -> bool:
        return bool(self.fired)

    @property
    def expected_services(self) -> tuple[str, ...]:
        return expected_services(self.terms.rules if self.terms else [])

    def waiting_for(self, phase: str) -> tuple[str, ...]:
        """Services expected to report ``phase`` that have not yet."""
        got = self.reports.get(phase, {})
        return tuple(s for s in self.expected_services if s not in got)

    def expects(self, phase: str) -> bool:
        """Whether completion of report ``phase`` is due once every service has reported."""
        if phase == "enforce_existing":
            return "enforce_existing" in self.fired
        if phase == "lifted":  # only a policy that bit has anything to restore
            return self.state == "lifted" and self.took_effect
        return False


@dataclass(frozen=True)
class ScheduleOp:
    """Write (``due_at`` set) or cancel (``due_at`` None) the schedule of ``phase``."""

    phase: Phase
    due_at: datetime | None
    revision: int


@dataclass(frozen=True)
class Planned:
    """A policy after one input, the schedule changes to write, whether to assess impact."""

    policy: Policy | None
    schedules: tuple[ScheduleOp, ...] = ()
    assess: bool = False


#: What every lifecycle function here returns.
PolicyDecision = Decision[Planned]


def _decided(
    policy: Policy,
    events: Sequence[EventData] = (),
    schedules: Sequence[ScheduleOp] = (),
    *,
    assess: bool = False,
) -> PolicyDecision:
    emits = [Emit(e, policy.policy_id) for e in events]
    return Decision(Planned(policy, tuple(schedules), assess), emits)


def expected_services(rules: Iterable[Rule]) -> tuple[str, ...]:
    """The services that enforce the rules' surfaces, in a stable order."""
    wanted = {ENFORCER[s] for r in rules for s in r.surfaces}
    return tuple(s for s in ("showcase", "live", "distribution") if s in wanted)


# --- validation --------------------------------------------------------------------------------


def validate(ann: PolicyAnnounced) -> tuple[list[Rule], list[Reason]]:
    """The typed rules, and every reason the announcement cannot be accepted (none = valid)."""
    rules, problems = parse_rules(ann.rules)
    if not ann.rules:
        problems.insert(
            0, Reason(code="empty_rule", message="the policy has no rules", field="rules")
        )
    if ann.enforce_existing_at is not None and ann.enforce_existing_at < ann.effective_at:
        problems.append(
            Reason(
                code="invalid_schedule",
                message="enforce_existing_at is before effective_at: existing goods cannot be "
                "removed before new ones are blocked",
                field="enforce_existing_at",
            )
        )
    if ann.announced_at is not None and ann.announced_at > ann.effective_at:
        problems.append(
            Reason(
                code="invalid_schedule",
                message="announced_at is after effective_at: a policy cannot take effect "
                "before it is announced",
                field="announced_at",
            )
        )
    return rules, problems


def _rejected(policy_id: str, reasons: Sequence[Reason]) -> PolicyRejected:
    return PolicyRejected(
        policy_id=policy_id,
        reasons=[r.model_copy(update={"policy_id": policy_id}) for r in reasons],
    )


def _log(policy: Policy, state: str, at: datetime, note: str = "") -> tuple[HistoryEntry, ...]:
    return (*policy.history, HistoryEntry(state, at, note))[-50:]


def announce(
    current: Policy | None, ann: PolicyAnnounced, at: datetime, cause: Cause
) -> PolicyDecision:
    """Accept (schedule, assess), amend before effect, or reject with reasons."""
    pid = ann.policy_id
    if current is not None and current.state in ("scheduled", "in_force"):
        rules, problems = validate(ann)
        if not problems and _terms(ann, rules) == current.terms:
            # The same announcement again (an upstream retry under a new event id): nothing
            # to amend, and no reason to answer "rejected" for a policy that stands.
            return Decision.ignore(Planned(current), "same_terms")
    base = current or Policy(pid, "announced")
    base = replace(base, history=_log(base, "announced", at, f"announcement {cause.id}"))
    if current is not None and current.state == "lifted":
        return _reject(
            base,
            [
                Reason(
                    code="policy_lifted",
                    message="this policy was retracted; announce a new policy_id instead",
                )
            ],
            at,
        )
    if current is not None and current.took_effect:
        return _reject(
            base,
            [
                Reason(
                    code="already_in_force",
                    message=f"the policy took effect ({current.phase}); it can no longer be "
                    "amended: retract it and announce a new policy",
                )
            ],
            at,
        )
    rules, problems = validate(ann)
    if problems:
        return _reject(base, problems, at)
    amended = current is not None and current.terms is not None
    terms = _terms(ann, rules)
    revision = base.revision + 1
    history = _log(base, "accepted", at, "amended" if amended else "")
    policy = replace(
        base,
        state="scheduled",
        terms=terms,
        revision=revision,
        cause=cause,
        last_rejection=(),
        history=(*history, HistoryEntry("scheduled", at, _schedule_note(terms)))[-50:],
    )
    schedules = [
        ScheduleOp("block_new", ann.effective_at, revision),
        ScheduleOp("enforce_existing", ann.enforce_existing_at, revision),
    ]
    return _decided(policy, [terms], schedules, assess=True)


def _terms(ann: PolicyAnnounced, rules: list[Rule]) -> PolicyAccepted:
    return PolicyAccepted(
        policy_id=ann.policy_id,
        title=ann.title,
        announced_at=ann.announced_at,
        effective_at=ann.effective_at,
        enforce_existing_at=ann.enforce_existing_at,
        rules=rules,
        exemptions=ann.exemptions,
    )


def _schedule_note(terms: PolicyAccepted) -> str:
    note = f"block_new at {terms.effective_at.isoformat()}"
    if terms.enforce_existing_at is not None:
        note += f", enforce_existing at {terms.enforce_existing_at.isoformat()}"
    return note


def _reject(policy: Policy, reasons: Sequence[Reason], at: datetime) -> PolicyDecision:
    """A rejected announcement; an accepted policy keeps its terms and schedules."""
    note = ", ".join(r.code for r in reasons)
    if policy.terms is None:
        new = replace(
            policy,
            state="rejected",
            last_rejection=tuple(reasons),
            history=_log(policy, "rejected", at, note),
        )
    else:  # an invalid or late amendment: the policy stays as it was
        new = replace(
            policy,
            last_rejection=tuple(reasons),
            history=_log(policy, f"amendment rejected ({note})", at),
        )
    return _decided(new, [_rejected(policy.policy_id, reasons)])


def retract(current: Policy | None, cmd: PolicyRetracted, at: datetime) -> PolicyDecision:
    """Lift the policy: cancel what is still scheduled, tell the services to restore.

    Before effect ``policy.lifted`` is still published so that a service that recorded the
    rule (e.g. from ``policy.accepted``) drops it; no enforcement report is awaited then.
    """
    if current is None:
        return Decision.ignore(Planned(None), "unknown_policy")
    if current.state == "lifted":
        return Decision.ignore(Planned(current), "already_lifted")
    if current.terms is None:  # never accepted: nothing to lift
        return _decided(
            replace(current, history=_log(current, "retracted", at, "was never accepted")),
        )
    policy = replace(
        current,
        state="lifted",
        lifted_at=at,
        lift_reason=cmd.reason,
        history=_log(current, "lifted", at, cmd.reason or ""),
    )
    events: list[EventData] = [PolicyLifted(policy_id=policy.policy_id, reason=cmd.reason)]
    schedules = [ScheduleOp(p, None, policy.revision) for p in PHASES if p not in current.fired]
    policy, done = _complete(policy, "lifted", at)
    return _decided(policy, events + done, schedules)


def fire(current: Policy | None, phase: Phase, at: datetime) -> PolicyDecision:
    """A schedule came due: publish ``policy.in_force`` for the phase (block_new first)."""
    if current is None or current.terms is None:
        return Decision.ignore(Planned(current), "unknown_policy")
    if current.state not in ("scheduled", "in_force"):
        return Decision.ignore(Planned(current), f"policy_{current.state}")
    if phase in current.fired:
        return Decision.ignore(Planned(current), "already_fired")
    terms = current.terms
    events: list[EventData] = []
    policy = current
    for p in PHASES[: PHASES.index(phase) + 1]:
        if p in policy.fired:
            continue
        events.append(
            PolicyInForce(
                policy_id=policy.policy_id,
                phase=p,
                rules=terms.rules,
                exemptions=terms.exemptions,
                effective_at=terms.effective_at,
                enforce_existing_at=terms.enforce_existing_at,
            )
        )
        policy = replace(
            policy,
            state="in_force",
            fired={**policy.fired, p: at},
            history=_log(policy, "in_force", at, p),
        )
    policy, done = _complete(policy, "enforce_existing", at)
    return _decided(policy, events + done)


def report(current: Policy | None, rep: EnforcementReported, at: datetime) -> PolicyDecision:
    """Record a service's enforcement report; complete the phase when all have reported.

    The first report of a (phase, service) counts; later ones are logged and ignored, so
    completion is published once.
    """
    if current is None:
        return Decision.ignore(Planned(None), "unknown_policy")
    got = current.reports.get(rep.phase, {})
    if rep.service in got:
        return Decision.ignore(Planned(current), "already_reported")
    policy = replace(
        current,
        reports={**current.reports, rep.phase: {**got, rep.service: rep.affected}},
    )
    policy, done = _complete(policy, rep.phase, at)
    return _decided(policy, done)


def _complete(policy: Policy, phase: ReportPhase, at: datetime) -> tuple[Policy, list[EventData]]:
    if phase not in COMPLETABLE or phase in policy.completed or not policy.expects(phase):
        return policy, []
    if policy.waiting_for(phase):
        return policy, []
    # Only the services the rules touch: a service reporting on a policy outside its
    # surfaces (e.g. with 0 affected) must not make the counts depend on arrival order.
    got = policy.reports.get(phase, {})
    counts = {s: got[s] for s in policy.expected_services}
    done = replace(
        policy,
        completed={**policy.completed, phase: at},
        history=_log(policy, "enforcement_completed", at, phase),
    )
    return done, [
        PolicyEnforcementCompleted(policy_id=policy.policy_id, phase=phase, counts=counts)
    ]


# --- impact assessment -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductInfo:
    """What catalog's ``product.listed`` told us about a product."""

    product_id: str
    merchant_id: str
    source: Source
    listed: bool = True


@dataclass(frozen=True)
class Item:
    """An item on a creator's showcase (``showcase.items``) or in an open live cart
    (``live.rooms``: ``surface`` ``live``)."""

    creator_id: str
    product_id: str
    offer_id: str | None = None
    status: Literal["active", "suspended"] = "active"
    surface: Surface = "showcase"


@dataclass(frozen=True)
class Offer:
    """A distribution offer, from ``distribution.offers``."""

    offer_id: str
    product_id: str
    merchant_id: str
    status: Literal["active", "suspended"] = "active"


@dataclass(frozen=True)
class Impact:
    """What the policy would touch now (active items and offers only)."""

    items: int = 0
    offers: int = 0
    creators: int = 0
    merchants: int = 0
    #: Active items/offers whose product compliance has not seen listed (source unknown).
    unknown_products: int = 0
    #: Active items of open live carts it would suspend (``items`` counts showcase items).
    cart_items: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "offers": self.offers,
            "creators": self.creators,
            "merchants": self.merchants,
            "unknown_products": self.unknown_products,
            "cart_items": self.cart_items,
        }


def assess(
    rules: Sequence[Rule],
    exemptions: Exemptions,
    items: Iterable[Item],
    offers: Iterable[Offer],
    products: Mapping[str, ProductInfo],
    accounts: Mapping[str, Account],
) -> Impact:
    """Count the active showcase items, live cart items and offers the rules would suspend now.

    Judged by :mod:`vitrine.contract.policy_kernel`, the same calls showcase and distribution
    make when they enforce: an item is placed on ``showcase`` by its creator, an offer on
    ``distribution`` by its merchant.
    """
    terms = policy_kernel.Terms("", rules, exemptions)
    n_items = n_cart = n_offers = unknown = 0
    creators: set[str] = set()
    merchants: set[str] = set()
    for item in items:
        if item.status != "active":
            continue
        product = products.get(item.product_id)
        if product is None:
            unknown += 1
            continue
        placement = policy_kernel.Placement(
            item.surface,
            product.merchant_id,
            product.source,
            merchant=accounts.get(product.merchant_id),
            account=accounts.get(item.creator_id),
        )
        if policy_kernel.bars(terms, placement):
            if item.surface == "live":
                n_cart += 1
            else:
                n_items += 1
            creators.add(item.creator_id)
            merchants.add(product.merchant_id)
    for offer in offers:
        if offer.status != "active":
            continue
        known = products.get(offer.product_id)
        if known is None:
            unknown += 1
            continue
        merchant = accounts.get(offer.merchant_id)
        placement = policy_kernel.Placement(
            "distribution", offer.merchant_id, known.source, merchant=merchant, account=merchant
        )
        if policy_kernel.bars(terms, placement):
            n_offers += 1
            merchants.add(offer.merchant_id)
    return Impact(n_items, n_offers, len(creators), len(merchants), unknown, n_cart)
