"""The pure compliance domain: validation, amendment, firing, retraction, reports, impact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vitrine.contract.events import (
    EnforcementReported,
    Exemptions,
    PolicyAccepted,
    PolicyAnnounced,
    PolicyEnforcementCompleted,
    PolicyInForce,
    PolicyLifted,
    PolicyRejected,
    PolicyRetracted,
    Source,
    parse_rules,
)
from vitrine_compliance import domain
from vitrine_compliance.domain import Account, Cause, Item, Offer, Policy, ProductInfo, Shop

T0 = datetime(2022, 3, 4, 12, tzinfo=UTC)
CAUSE = Cause("ev-1", "/tests", "ev-1")
NO_3P = {
    "kind": "disallow_source",
    "surfaces": ["showcase", "distribution"],
    "sources": [{"kind": "third_party_platform"}],
}
REQUIRE = {"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "channels_shop"}


def ann(pid: str = "pol-1", **over: Any) -> PolicyAnnounced:
    data: dict[str, Any] = {
        "policy_id": pid,
        "title": "No third-party goods",
        "announced_at": T0.isoformat(),
        "effective_at": (T0 + timedelta(days=3)).isoformat(),
        "enforce_existing_at": (T0 + timedelta(days=27)).isoformat(),
        "rules": [NO_3P],
    }
    data.update(over)
    return PolicyAnnounced.model_validate(data, strict=False)


def codes(decision: domain.PolicyDecision) -> list[str]:
    (rejected,) = decision.events
    assert isinstance(rejected, PolicyRejected)
    return [r.code for r in rejected.reasons]


def accepted(**over: Any) -> Policy:
    decision = domain.announce(None, ann(**over), T0, CAUSE)
    assert decision.state.policy is not None and decision.state.policy.state == "scheduled"
    return decision.state.policy


# --- validation ---------------------------------------------------------------------------------


def test_valid_announcement_is_accepted_scheduled_and_assessed() -> None:
    d = domain.announce(None, ann(), T0, CAUSE)
    assert (
        d.state.policy is not None
        and d.state.policy.state == "scheduled"
        and d.state.policy.revision == 1
    )
    (event,) = d.events
    assert isinstance(event, PolicyAccepted) and event.rules[0].kind == "disallow_source"
    assert d.state.assess
    assert [(s.phase, s.due_at) for s in d.state.schedules] == [
        ("block_new", T0 + timedelta(days=3)),
        ("enforce_existing", T0 + timedelta(days=27)),
    ]
    assert [h.state for h in d.state.policy.history] == ["announced", "accepted", "scheduled"]


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"rules": []}, ["empty_rule"]),
        (
            {"rules": [{"kind": "disallow_source", "surfaces": ["showcase"], "sources": []}]},
            ["empty_rule"],
        ),
        (
            {"rules": [{"kind": "require_shop", "surfaces": [], "shop_kind": "channels_shop"}]},
            ["empty_rule"],
        ),
        ({"rules": [{"kind": "ban_everything", "surfaces": ["showcase"]}]}, ["unknown_rule"]),
        (
            {"rules": [{"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "x"}]},
            ["unknown_rule"],
        ),
        ({"enforce_existing_at": T0.isoformat()}, ["invalid_schedule"]),
        ({"announced_at": (T0 + timedelta(days=4)).isoformat()}, ["invalid_schedule"]),
        ({"rules": [], "enforce_existing_at": T0.isoformat()}, ["empty_rule", "invalid_schedule"]),
    ],
)
def test_invalid_announcements_are_rejected_with_codes(
    over: dict[str, Any], expected: list[str]
) -> None:
    d = domain.announce(None, ann(**over), T0, CAUSE)
    assert codes(d) == expected
    assert (
        d.state.policy is not None and d.state.policy.state == "rejected" and not d.state.schedules
    )
    rejected = d.events[0]
    assert isinstance(rejected, PolicyRejected)
    assert all(r.policy_id == "pol-1" for r in rejected.reasons)


def test_same_time_for_both_phases_and_no_enforce_existing_are_valid() -> None:
    same = domain.announce(None, ann(enforce_existing_at=ann().effective_at.isoformat()), T0, CAUSE)
    assert same.state.policy is not None and same.state.policy.state == "scheduled"
    none = domain.announce(None, ann(enforce_existing_at=None), T0, CAUSE)
    assert none.state.schedules[1].due_at is None  # = cancel any enforce_existing schedule


# --- amendment ---------------------------------------------------------------------------------


def test_amendment_before_effect_reschedules_and_reassesses() -> None:
    policy = accepted()
    later = (T0 + timedelta(days=5)).isoformat()
    d = domain.announce(policy, ann(effective_at=later, enforce_existing_at=later), T0, CAUSE)
    assert d.state.policy is not None and d.state.policy.revision == 2 and d.state.assess
    assert isinstance(d.events[0], PolicyAccepted)
    assert {s.due_at for s in d.state.schedules} == {T0 + timedelta(days=5)}
    assert {s.revision for s in d.state.schedules} == {2}


def test_invalid_amendment_is_rejected_and_keeps_the_accepted_terms() -> None:
    policy = accepted()
    d = domain.announce(policy, ann(rules=[]), T0, CAUSE)
    assert codes(d) == ["empty_rule"]
    assert d.state.policy is not None and d.state.policy.state == "scheduled"
    assert d.state.policy.terms == policy.terms and not d.state.schedules
    assert [r.code for r in d.state.policy.last_rejection] == ["empty_rule"]


def test_amendment_after_effect_is_rejected_already_in_force() -> None:
    fired = domain.fire(accepted(), "block_new", T0).state.policy
    d = domain.announce(fired, ann(title="changed"), T0, CAUSE)
    assert codes(d) == ["already_in_force"]
    assert (
        d.state.policy is not None and d.state.policy.state == "in_force" and not d.state.schedules
    )


def test_announcing_a_lifted_policy_id_is_rejected() -> None:
    lifted = domain.retract(accepted(), PolicyRetracted(policy_id="pol-1"), T0).state.policy
    assert codes(domain.announce(lifted, ann(), T0, CAUSE)) == ["policy_lifted"]


def test_a_rejected_policy_can_be_announced_again_validly() -> None:
    rejected = domain.announce(None, ann(rules=[]), T0, CAUSE).state.policy
    d = domain.announce(rejected, ann(), T0, CAUSE)
    assert (
        d.state.policy is not None
        and d.state.policy.state == "scheduled"
        and d.state.policy.revision == 1
    )


# --- firing ------------------------------------------------------------------------------------


def test_phases_fire_once_in_order() -> None:
    policy = accepted()
    d1 = domain.fire(policy, "block_new", T0)
    assert [e.phase for e in d1.events if isinstance(e, PolicyInForce)] == ["block_new"]
    assert d1.state.policy is not None and d1.state.policy.state == "in_force"
    assert d1.state.policy.phase == "block_new"
    assert domain.fire(d1.state.policy, "block_new", T0).ignored == "already_fired"
    d2 = domain.fire(d1.state.policy, "enforce_existing", T0)
    assert [type(e) for e in d2.events] == [PolicyInForce]
    assert d2.state.policy is not None and d2.state.policy.phase == "enforce_existing"


def test_enforce_existing_due_first_fires_block_new_with_it() -> None:
    d = domain.fire(accepted(), "enforce_existing", T0)
    phases = [e.phase for e in d.events if isinstance(e, PolicyInForce)]
    assert phases == ["block_new", "enforce_existing"]


def test_lifted_policy_does_not_fire() -> None:
    lifted = domain.retract(accepted(), PolicyRetracted(policy_id="pol-1"), T0).state.policy
    assert domain.fire(lifted, "block_new", T0).ignored == "policy_lifted"


def test_live_rules_wait_for_lives_report() -> None:
    live = {"kind": "disallow_source", "surfaces": ["live"], "sources": [{"kind": "mini_program"}]}
    both = {**live, "surfaces": ["showcase", "live"]}
    assert accepted(rules=[both]).expected_services == ("showcase", "live")
    policy = accepted(rules=[live])
    assert policy.expected_services == ("live",)
    d = domain.fire(policy, "enforce_existing", T0)
    assert not [e for e in d.events if isinstance(e, PolicyEnforcementCompleted)]
    assert d.state.policy is not None
    assert d.state.policy.waiting_for("enforce_existing") == ("live",)


# --- retraction --------------------------------------------------------------------------------


def test_retraction_before_effect_cancels_schedules_and_lifts() -> None:
    d = domain.retract(accepted(), PolicyRetracted(policy_id="pol-1", reason="deleted"), T0)
    assert d.state.policy is not None and d.state.policy.state == "lifted"
    assert [type(e) for e in d.events] == [PolicyLifted]
    assert {(s.phase, s.due_at) for s in d.state.schedules} == {
        ("block_new", None),
        ("enforce_existing", None),
    }
    assert not d.state.policy.expects("lifted")  # nothing was enforced, nothing to report


def test_retraction_after_effect_cancels_what_remains_and_awaits_reports() -> None:
    fired = domain.fire(accepted(), "block_new", T0).state.policy
    d = domain.retract(fired, PolicyRetracted(policy_id="pol-1"), T0)
    assert [s.phase for s in d.state.schedules] == ["enforce_existing"]
    assert d.state.policy is not None and d.state.policy.expects("lifted")
    assert d.state.policy.waiting_for("lifted") == ("showcase", "distribution")
    assert domain.retract(d.state.policy, PolicyRetracted(policy_id="pol-1"), T0).ignored == (
        "already_lifted"
    )


def test_retraction_of_unknown_policy_is_ignored() -> None:
    assert domain.retract(None, PolicyRetracted(policy_id="x"), T0).ignored == "unknown_policy"


# --- reports -----------------------------------------------------------------------------------


def rep(service: str, affected: int, phase: str = "enforce_existing") -> EnforcementReported:
    return EnforcementReported.model_validate(
        {"policy_id": "pol-1", "service": service, "phase": phase, "affected": affected}
    )


def test_completion_once_every_service_reported() -> None:
    policy = domain.fire(accepted(), "enforce_existing", T0).state.policy
    d1 = domain.report(policy, rep("showcase", 3), T0)
    assert d1.events == []
    assert domain.report(d1.state.policy, rep("showcase", 9), T0).ignored == "already_reported"
    d2 = domain.report(d1.state.policy, rep("distribution", 2), T0)
    (done,) = d2.events
    assert isinstance(done, PolicyEnforcementCompleted)
    assert done.counts == {"showcase": 3, "distribution": 2}
    assert domain.report(d2.state.policy, rep("distribution", 2), T0).ignored == "already_reported"


def test_reports_for_block_new_or_before_enforcement_do_not_complete() -> None:
    policy = domain.fire(accepted(), "block_new", T0).state.policy
    d = domain.report(policy, rep("showcase", 1, "block_new"), T0)
    d = domain.report(d.state.policy, rep("distribution", 1, "block_new"), T0)
    assert d.events == []


def test_lifted_after_effect_completes_when_services_restored() -> None:
    policy = domain.fire(accepted(), "enforce_existing", T0).state.policy
    policy = domain.retract(policy, PolicyRetracted(policy_id="pol-1"), T0).state.policy
    d = domain.report(policy, rep("showcase", 3, "lifted"), T0)
    d = domain.report(d.state.policy, rep("distribution", 0, "lifted"), T0)
    (done,) = d.events
    assert isinstance(done, PolicyEnforcementCompleted) and done.phase == "lifted"


# --- impact ------------------------------------------------------------------------------------

ACCOUNTS = {
    "c-lin": Account("c-lin", (Shop("s1", "channels_shop"),)),
    "c-zhou": Account("c-zhou", (Shop("s2", "wechat_mini_shop"),)),
    "c-wu": Account("c-wu", (Shop("s3", "mini_program", service_provider_built=True),)),
    "m-mall": Account("m-mall", (Shop("s4", "mini_program", service_provider_built=True),)),
}
PRODUCTS = {
    "p-jd": ProductInfo("p-jd", "m-jd", Source(kind="third_party_platform", platform="jd")),
    "p-pdd": ProductInfo(
        "p-pdd", "m-pdd", Source(kind="third_party_platform", platform="pinduoduo")
    ),
    "p-mini": ProductInfo("p-mini", "m-craft", Source(kind="wechat_mini_shop")),
    "p-mall": ProductInfo("p-mall", "m-mall", Source(kind="wechat_mini_shop")),
}
ITEMS = [
    Item("c-lin", "p-jd"),
    Item("c-zhou", "p-jd"),
    Item("c-zhou", "p-pdd"),
    Item("c-wu", "p-mini"),
    Item("c-wu", "p-mall"),
    Item("c-lin", "p-pdd", status="suspended"),  # already off: not touched now
    Item("c-lin", "p-unknown"),
]
OFFERS = [
    Offer("o-jd", "p-jd", "m-jd"),
    Offer("o-pdd", "p-pdd", "m-pdd", status="suspended"),
    Offer("o-mini", "p-mini", "m-craft"),
]


def impact(rules: list[dict[str, Any]], **exemptions: Any) -> domain.Impact:
    typed, problems = parse_rules(rules)
    assert not problems
    return domain.assess(typed, Exemptions(**exemptions), ITEMS, OFFERS, PRODUCTS, ACCOUNTS)


def test_impact_of_disallowing_third_party_goods() -> None:
    got = impact([NO_3P])
    assert (got.items, got.offers, got.creators, got.merchants) == (3, 1, 2, 2)
    assert got.unknown_products == 1


def test_impact_by_platform_and_merchant_exemption() -> None:
    jd_only = {**NO_3P, "sources": [{"kind": "third_party_platform", "platform": "jd"}]}
    got = impact([jd_only])
    assert (got.items, got.offers, got.creators, got.merchants) == (2, 1, 2, 1)
    exempt = impact([jd_only], merchant_ids=["m-jd"])
    assert (exempt.items, exempt.offers, exempt.creators, exempt.merchants) == (0, 0, 0, 0)


def test_impact_of_mini_shop_cut_off_spares_provider_built_merchants() -> None:
    mini = {
        "kind": "disallow_source",
        "surfaces": ["showcase", "live"],
        "sources": [{"kind": "wechat_mini_shop"}],
    }
    without = impact([mini])
    assert (without.items, without.offers, without.creators, without.merchants) == (2, 0, 1, 2)
    exempt = impact([mini], service_provider_built=True)
    assert (exempt.items, exempt.creators, exempt.merchants) == (1, 1, 1)  # m-mall spared


def test_impact_of_require_shop_and_the_provider_exemption() -> None:
    got = impact([REQUIRE])  # c-zhou (2 items) and c-wu (2 items) hold no channels shop
    assert (got.items, got.offers, got.creators) == (4, 0, 2)
    exempt = impact([REQUIRE], service_provider_built=True)  # c-wu satisfies it
    assert (exempt.items, exempt.creators) == (2, 1)
    assert exempt.merchants == 2  # m-jd, m-pdd


def test_provider_built_merchant_is_not_exempt_from_require_shop() -> None:
    """The exemption spares a provider-built merchant's goods from source rules only."""
    items = [Item("c-zhou", "p-mall")]  # c-zhou lacks a channels shop; m-mall is provider-built
    typed, _ = parse_rules([REQUIRE])
    got = domain.assess(
        typed, Exemptions(service_provider_built=True), items, [], PRODUCTS, ACCOUNTS
    )
    assert (got.items, got.merchants) == (1, 1)
    spared = domain.assess(
        typed, Exemptions(merchant_ids=["m-mall"]), items, [], PRODUCTS, ACCOUNTS
    )
    assert spared.items == 0


def test_the_same_announcement_again_changes_nothing_before_or_after_effect() -> None:
    policy = accepted()
    assert domain.announce(policy, ann(), T0, CAUSE).ignored == "same_terms"
    fired = domain.fire(policy, "block_new", T0).state.policy
    assert domain.announce(fired, ann(), T0, CAUSE).ignored == "same_terms"
    assert codes(domain.announce(fired, ann(title="other"), T0, CAUSE)) == ["already_in_force"]
