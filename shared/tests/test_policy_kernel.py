"""The policy kernel, and the promise it exists for: what compliance estimates is what showcase
and distribution do. The property tests call the same domain entry points the services call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vitrine.contract.events import (
    DisallowSource,
    Exemptions,
    OfferPublished,
    RequireShop,
    Rule,
    ShowcaseAddRequested,
    Source,
    SourceMatch,
)
from vitrine.contract.policy_kernel import (
    Account,
    Placement,
    Shop,
    Terms,
    bars,
    breaches,
    judges_existing,
    judges_new,
)
from vitrine_compliance import domain as compliance
from vitrine_distribution import domain as distribution
from vitrine_showcase import domain as showcase

T0 = datetime(2022, 11, 30, tzinfo=UTC)
MINI = Source(kind="wechat_mini_shop")
JD = Source(kind="third_party_platform", platform="jd")
CHANNELS = Source(kind="channels_shop")
NO_MINI = DisallowSource(surfaces=["showcase", "live"], sources=[SourceMatch(kind=MINI.kind)])
NEED_CHANNELS = RequireShop(surfaces=["showcase"], shop_kind="channels_shop")
SPB_MALL = Shop("s-mall", "mini_program", service_provider_built=True)


def terms(*rules: Rule, **exemptions: Any) -> Terms:
    return Terms("pol", rules, Exemptions(**exemptions))


def on(surface: str, source: Source | None = MINI, **kw: Any) -> Placement:
    return Placement(surface, kw.pop("merchant_id", "m1"), source, **kw)  # type: ignore[arg-type]


# --- the semantics of DESIGN.md §5 ---------------------------------------------------------------


def test_disallow_source_applies_only_on_its_surfaces() -> None:
    policy = terms(NO_MINI)
    assert bars(policy, on("showcase")) and bars(policy, on("live"))
    assert not bars(policy, on("distribution"))
    assert not bars(policy, on("showcase", CHANNELS))
    assert not bars(policy, on("showcase", None))  # source unknown: never barred by source


def test_platform_matching() -> None:
    jd_only = DisallowSource(
        surfaces=["showcase"], sources=[SourceMatch(kind="third_party_platform", platform="jd")]
    )
    assert bars(terms(jd_only), on("showcase", JD))
    pdd = Source(kind="third_party_platform", platform="pinduoduo")
    assert not bars(terms(jd_only), on("showcase", pdd))


def test_merchant_ids_exempt_from_every_rule() -> None:
    policy = terms(NO_MINI, NEED_CHANNELS, merchant_ids=["m1"])
    assert breaches(policy, on("showcase")) == []
    assert [b.code for b in breaches(terms(NO_MINI, NEED_CHANNELS), on("showcase"))] == [
        "shop_required",
        "source_disallowed",
    ]


def test_service_provider_built_spares_merchants_goods_and_satisfies_require_shop() -> None:
    mall = Account("m1", (SPB_MALL,))
    policy = terms(NO_MINI, NEED_CHANNELS, service_provider_built=True)
    # the merchant's provider-built mall spares its goods from source rules, not its creators
    assert [b.code for b in breaches(policy, on("showcase", merchant=mall))] == ["shop_required"]
    creator = Account("c1", (SPB_MALL,))
    assert [b.code for b in breaches(policy, on("showcase", account=creator))] == [
        "source_disallowed"
    ]
    # without the exemption a provider-built mall is just a shop of its kind
    plain = terms(NO_MINI, NEED_CHANNELS)
    assert len(breaches(plain, on("showcase", merchant=mall, account=creator))) == 2


def test_require_shop_is_judged_against_the_account_using_the_surface() -> None:
    policy = terms(
        RequireShop(surfaces=["showcase", "live", "distribution"], shop_kind="channels_shop")
    )
    holder = Account("a", (Shop("s", "channels_shop"),))
    for surface in ("showcase", "live", "distribution"):
        assert bars(policy, on(surface, account=None))
        assert not bars(policy, on(surface, account=holder))
        assert bars(policy, on(surface, account=holder.close("s")))


def test_phases() -> None:
    assert not judges_new([]) and judges_new(["block_new"])
    assert not judges_existing(["block_new"]) and judges_existing(["block_new", "enforce_existing"])


# --- compliance's estimate == what showcase and distribution do --------------------------------

CREATORS = ["c1", "c2", "c3"]
MERCHANTS = ["m1", "m2", "m3"]
SOURCES = [MINI, JD, CHANNELS, Source(kind="third_party_platform", platform="pinduoduo")]
SHOP_KINDS = ["channels_shop", "wechat_mini_shop", "mini_program"]
SURFACES = ["showcase", "live", "distribution"]

shops = st.lists(
    st.builds(
        lambda i, kind, spb: Shop(f"s{i}", kind, spb),
        st.integers(0, 3),
        st.sampled_from(SHOP_KINDS),
        st.booleans(),
    ),
    max_size=2,
    unique_by=lambda s: s.shop_id,
)
surfaces = st.lists(st.sampled_from(SURFACES), min_size=1, max_size=3, unique=True)
source_matches = st.lists(
    st.sampled_from(SOURCES).map(lambda s: SourceMatch(kind=s.kind, platform=s.platform))
    | st.sampled_from(SOURCES).map(lambda s: SourceMatch(kind=s.kind)),
    min_size=1,
    max_size=2,
)
rules = st.lists(
    st.builds(lambda s, m: DisallowSource(surfaces=s, sources=m), surfaces, source_matches)
    | st.builds(
        lambda s, k: RequireShop(surfaces=s, shop_kind=k), surfaces, st.sampled_from(SHOP_KINDS)
    ),
    min_size=1,
    max_size=3,
)
exemptions = st.builds(
    lambda ids, spb: Exemptions(merchant_ids=ids, service_provider_built=spb),
    st.lists(st.sampled_from(MERCHANTS), max_size=2, unique=True),
    st.booleans(),
)


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    accounts = {a: Account(a, tuple(draw(shops))) for a in CREATORS + MERCHANTS}
    products = {
        f"p{i}": (draw(st.sampled_from(MERCHANTS)), draw(st.sampled_from(SOURCES)))
        for i in range(5)
    }
    items = draw(
        st.lists(
            st.tuples(st.sampled_from(CREATORS), st.sampled_from(sorted(products))),
            max_size=10,
            unique=True,
        )
    )
    offers = draw(st.lists(st.sampled_from(sorted(products)), max_size=5, unique=True))
    known = draw(st.lists(st.sampled_from(CREATORS + MERCHANTS), unique=True))
    return {
        "accounts": {a: accounts[a] for a in known},
        "products": products,
        "items": items,
        "offers": offers,
    }


@settings(max_examples=300, deadline=None)
@given(worlds(), rules, exemptions)
def test_compliance_estimates_what_showcase_and_distribution_suspend(
    world: dict[str, Any], rule_list: list[Rule], exempt: Exemptions
) -> None:
    accounts: dict[str, Account] = world["accounts"]
    products: dict[str, tuple[str, Source]] = world["products"]

    # compliance: its projections of showcase.items and distribution.offers
    impact = compliance.assess(
        rule_list,
        exempt,
        [compliance.Item(c, p) for c, p in world["items"]],
        [compliance.Offer(f"o-{p}", p, products[p][0]) for p in world["offers"]],
        {p: compliance.ProductInfo(p, m, s) for p, (m, s) in products.items()},
        accounts,
    )

    # showcase: enforce_existing on every item, as its handler calls the domain
    policy = showcase.Policy(
        "pol", tuple(rule_list), exempt, frozenset({"block_new", "enforce_existing"})
    )
    held = []
    for c, p in world["items"]:
        merchant, source = products[p]
        item = showcase.Item(c, p, merchant, source, 0)
        decision = showcase.enforce(policy, item, accounts.get(c), accounts.get(merchant))
        if decision is not None:
            assert decision.state.holds == {"policy:pol"}
            held.append(item)
            # the sweep's indexed pre-selection finds it (by source, or a creator lacking a shop)
            by_source = any(
                s.kind == source.kind and s.platform in (None, source.platform)
                for s in policy.source_candidates()
            )
            assert by_source or showcase.lacks_required_shop(policy, accounts.get(c))

    # distribution: enforce_existing over the offers
    offers = [
        distribution.Offer(
            f"o-{p}", p, products[p][0], history=(distribution.StatusChange(T0, "active"),)
        )
        for p in world["offers"]
    ]
    views = {p: distribution.ProductView(p, m, True, s) for p, (m, s) in products.items()}
    view = distribution.PolicyView("pol", "enforce_existing", tuple(rule_list), exempt)
    enforced = distribution.enforce(view, offers, views, accounts, T0).state

    assert impact.items == len(held)
    assert impact.creators == len({i.creator_id for i in held})
    assert impact.offers == enforced.affected
    offer_merchants = {o.merchant_id for o in offers if o.offer_id in enforced.offers}
    assert impact.merchants == len({i.merchant_id for i in held} | offer_merchants)


@settings(max_examples=200, deadline=None)
@given(worlds(), rules, exemptions)
def test_refusals_of_new_placements_match_the_kernel(
    world: dict[str, Any], rule_list: list[Rule], exempt: Exemptions
) -> None:
    """What showcase refuses to add and distribution refuses to publish is what the kernel
    bars (block_new), and names the policy."""
    accounts: dict[str, Account] = world["accounts"]
    policy = showcase.Policy("pol", tuple(rule_list), exempt, frozenset({"block_new"}))
    view = distribution.PolicyView("pol", "block_new", tuple(rule_list), exempt)
    for pid, (merchant, source) in world["products"].items():
        for creator in CREATORS:
            ctx = showcase.AddContext(
                product=showcase.Product(pid, merchant, source, True),
                creator=accounts.get(creator),
                merchant=accounts.get(merchant),
                offer=None,
                policies=[policy],
            )
            cmd = ShowcaseAddRequested(creator_id=creator, product_id=pid)
            refused = showcase.add(showcase.Showcase(creator), cmd, ctx).refused
            where = Placement(
                "showcase", merchant, source, accounts.get(merchant), accounts.get(creator)
            )
            assert bool(refused) == bars(policy, where)
            assert all(r.policy_id == "pol" for r in refused)
        publish = OfferPublished(
            offer_id=f"o-{pid}",
            product_id=pid,
            merchant_id=merchant,
            commission_bps=1000,
            plan="general",
        )
        out = distribution.publish(
            None,
            publish,
            T0,
            product=distribution.ProductView(pid, merchant, True, source),
            policies=[view],
            merchant=accounts.get(merchant),
            general_live=False,
        )
        m = accounts.get(merchant)
        assert bool(out.refused) == bars(view, Placement("distribution", merchant, source, m, m))
