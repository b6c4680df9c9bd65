"""Showcase against the real stack: upstream facts and creators' requests published by the test."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vitrine.tools.testing.services import running
from vitrine_showcase.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ITEMS = "showcase.items"
REPORTS = "compliance.reports"


def _order(view: dict[str, Any]) -> list[tuple[str, int]]:
    return [(i["product_id"], i["position"]) for i in view["items"]]


async def test_add_move_remove_round_trip(stack, probe, world) -> None:
    u = world.uid()
    c, m = f"c-{u}", f"m-{u}"
    pids = [f"p{i}-{u}" for i in range(3)]
    async with running(DEFINITION, stack) as (_, http):
        await world.creator(c)
        for pid in pids:
            await world.listed(pid, m)
        for pid in pids:  # each on its own partition: one being known says nothing of the rest
            await world.until(http, f"/products/{pid}")
        await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
        for pid in pids:
            await world.add(c, pid)
        added = await probe.wait_for(ITEMS, type="showcase.item_added", subject=c, count=3)
        assert [(r.data["product_id"], r.data["position"]) for r in added] == [
            (pids[0], 0),
            (pids[1], 1),
            (pids[2], 2),
        ]
        await world.move(c, pids[2], 0)  # pin to top
        moved = await probe.wait_for(ITEMS, type="showcase.item_moved", subject=c)
        assert moved[0].data == {"creator_id": c, "product_id": pids[2], "position": 0}
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert _order(view) == [(pids[2], 0), (pids[0], 1), (pids[1], 2)]

        await world.remove(c, pids[0])
        await probe.wait_for(ITEMS, type="showcase.item_removed", subject=c, product_id=pids[0])
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert _order(view) == [(pids[2], 0), (pids[1], 1)]
        # moving past the end lands last; adding what is there already is idempotent
        await world.move(c, pids[2], 50)
        await probe.wait_for(ITEMS, type="showcase.item_moved", subject=c, count=2)
        await world.add(c, pids[1])
        await world.move(c, pids[2], 1)  # already there: nothing
        await world.remove(c, f"nope-{u}")  # not there: nothing
        await probe.settle()
        assert len(probe.events(ITEMS, type="showcase.item_added", subject=c)) == 3
        assert len(probe.events(ITEMS, type="showcase.item_moved", subject=c)) == 2
        assert len(probe.events(ITEMS, type="showcase.item_refused", subject=c)) == 0
        assert len(probe.events(ITEMS, type="showcase.item_removed", subject=c)) == 1
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert _order(view) == [(pids[1], 0), (pids[2], 1)]
        assert (await http.get("/creators/bad$id/showcase")).status_code == 400
        # removed and added back (typically in one batch): a new item, at the end
        await world.remove(c, pids[1])
        await world.add(c, pids[1])
        again = await probe.wait_for(ITEMS, type="showcase.item_added", subject=c, count=4)
        assert again[-1].data["position"] == 1
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert _order(view) == [(pids[2], 0), (pids[1], 1)]


async def test_every_refusal_code(stack, probe, world) -> None:
    u = world.uid()
    m, plat = f"m-{u}", f"plat-{u}"
    c = f"c-{u}"
    ok, third = f"ok-{u}", f"tp-{u}"
    pol_src, pol_shop = f"pol-src-{u}", f"pol-shop-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await world.creator(c)
        await world.listed(ok, m)
        await world.listed(third, m, world.third_party(plat))
        await world.offer(f"o-gen-{u}", ok, m)
        await world.offer(f"o-tgt-{u}", ok, m, "targeted", [f"someone-{u}"])
        await world.offer(f"o-off-{u}", ok, m)
        await world.offer_withdrawn(f"o-off-{u}", ok, m)
        await world.in_force(pol_src, "block_new", [world.disallow(plat)])
        await world.until(http, f"/offers/o-off-{u}", lambda o: o["withdrawn"])
        await world.until(http, f"/offers/o-tgt-{u}")
        await world.until(http, f"/products/{third}")
        await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
        await world.until(
            http, "/policies", lambda b: any(p["policy_id"] == pol_src for p in b["policies"])
        )

        # product_not_listed
        await world.add(c, f"ghost-{u}")
        assert "product_not_listed" in world.codes(await world.outcome(c, f"ghost-{u}"))
        # source_disallowed (names the policy)
        await world.add(c, third)
        refused = await world.outcome(c, third)
        assert refused.type == "showcase.item_refused"
        assert [r.get("policy_id") for r in refused.data["reasons"]] == [pol_src]
        assert world.codes(refused) == {"source_disallowed"}
        # offer_not_available: unknown, withdrawn, for another product
        for oid, pid in ((f"o-none-{u}", ok), (f"o-off-{u}", ok), (f"o-gen-{u}", third)):
            c2 = f"c-{oid}"
            await world.creator(c2)
            await world.until(http, f"/accounts/{c2}", lambda a: len(a["shops"]) == 3)
            await world.add(c2, pid, oid)
            assert "offer_not_available" in world.codes(await world.outcome(c2, pid))
        # not_in_targeted_plan
        await world.add(c, ok, f"o-tgt-{u}")
        assert world.codes(await world.outcome(c, ok)) == {"not_in_targeted_plan"}
        # the general offer is fine
        await world.add(c, ok, f"o-gen-{u}")
        assert (await world.outcome(c, ok)).type == "showcase.item_added"

        # shop_required: a creator without a channels shop, while the rule is in force
        bare = f"bare-{u}"
        await world.shop(bare, "mini_program")
        await world.in_force(
            pol_shop,
            "block_new",
            [{"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "channels_shop"}],
        )
        try:
            await world.until(
                http, "/policies", lambda b: any(p["policy_id"] == pol_shop for p in b["policies"])
            )
            await world.until(http, f"/accounts/{bare}")
            await world.add(bare, ok)
            refused = await world.outcome(bare, ok)
            assert world.codes(refused) == {"shop_required"}
            assert refused.data["reasons"][0]["policy_id"] == pol_shop
            await world.shop(bare, "channels_shop")
            await world.until(http, f"/accounts/{bare}", lambda a: len(a["shops"]) == 2)
            await world.add(bare, ok)
            await probe.wait_for(ITEMS, type="showcase.item_added", subject=bare, product_id=ok)
        finally:
            await world.lifted(pol_shop)
            await probe.wait_for(REPORTS, subject=pol_shop, phase="lifted")

        # showcase_full at 500 (suspended items count): fill a showcase through events
        full = f"full-{u}"
        await world.creator(full)
        many = [f"f{i}-{u}" for i in range(501)]
        for pid in many:
            await world.listed(pid, m)
        await world.until(http, f"/products/{many[-1]}")
        await world.until(http, f"/accounts/{full}", lambda a: len(a["shops"]) == 3)
        for pid in many[:500]:
            await world.add(full, pid)
        await probe.wait_for(ITEMS, type="showcase.item_added", subject=full, count=500, timeout=60)
        await world.delisted(many[0], m)  # a suspended item still takes its place
        await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=full)
        await world.add(full, many[500])
        assert world.codes(await world.outcome(full, many[500])) == {"showcase_full"}

        # every reason at once
        await world.add(full, third, f"o-tgt-{u}")
        assert world.codes(await world.outcome(full, third)) >= {
            "source_disallowed",
            "showcase_full",
            "offer_not_available",
            "not_in_targeted_plan",
        }
        await world.lifted(pol_src)
        await probe.wait_for(REPORTS, subject=pol_src, phase="lifted")


async def test_delist_relist_follows_the_catalog_everywhere(stack, probe, world) -> None:
    u = world.uid()
    m, pid, other = f"m-{u}", f"p-{u}", f"q-{u}"
    creators = [f"c{i}-{u}" for i in range(3)]
    async with running(DEFINITION, stack) as (_, http):
        await world.listed(pid, m)
        await world.listed(other, m)
        for c in creators:
            await world.creator(c)
        await world.until(http, f"/products/{other}")
        for c in creators:
            await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
            await world.add(c, other)
            await world.add(c, pid)
            await probe.wait_for(ITEMS, type="showcase.item_added", subject=c, count=2)

        await world.delisted(pid, m)
        for c in creators:
            got = await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c)
            assert got[0].data == {"creator_id": c, "product_id": pid, "reason": "product_delisted"}
        view = (await http.get(f"/creators/{creators[0]}/showcase")).json()
        assert [i["product_id"] for i in view["items"]] == [other]
        view = (await http.get(f"/creators/{creators[0]}/showcase?include_suspended=true")).json()
        assert [(i["product_id"], i["active"]) for i in view["items"]] == [
            (other, True),
            (pid, False),
        ]
        assert view["items"][1]["suspensions"] == [{"reason": "product_delisted"}]
        # delisted products cannot be added
        late = f"late-{u}"
        await world.creator(late)
        await world.until(http, f"/accounts/{late}", lambda a: len(a["shops"]) == 3)
        await world.add(late, pid)
        assert world.codes(await world.outcome(late, pid)) == {"product_not_listed"}

        await world.listed(pid, m, version=2)
        for c in creators:
            got = await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
            assert got[0].data == {"creator_id": c, "product_id": pid, "reason": "product_delisted"}
        view = (await http.get(f"/creators/{creators[2]}/showcase")).json()
        assert _order(view) == [(other, 0), (pid, 1)]  # back in its place


async def test_delisting_and_a_policy_hold_the_same_item(stack, probe, world) -> None:
    """Relisting does not bring back an item a policy still suspends, and vice versa."""
    u = world.uid()
    m, c, pid, plat, pol = f"m-{u}", f"c-{u}", f"p-{u}", f"plat-{u}", f"pol-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await world.placed(http, c, pid, m, world.third_party(plat))
        await world.delisted(pid, m)
        await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c)
        await world.in_force(pol, "enforce_existing", [world.disallow(plat)])
        report = await probe.wait_for(REPORTS, subject=pol, phase="enforce_existing")
        assert report[0].data["affected"] == 1
        await world.listed(pid, m, world.third_party(plat), version=2)
        await world.until(http, f"/products/{pid}", lambda p: p["listed"])
        view = (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json()
        assert view["items"][0]["suspensions"] == [{"reason": "policy", "policy_id": pol}]
        await world.lifted(pol)
        restored = await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
        assert restored[0].data["policy_id"] == pol
        await probe.settle()
        assert len(probe.events(ITEMS, type="showcase.item_restored", subject=c)) == 1


async def test_two_policies_hold_one_item(stack, probe, world) -> None:
    u = world.uid()
    m, c, pid, plat = f"m-{u}", f"c-{u}", f"p-{u}", f"plat-{u}"
    pol_a, pol_b = f"pol-a-{u}", f"pol-b-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await world.placed(http, c, pid, m, world.third_party(plat))

        await world.in_force(pol_a, "enforce_existing", [world.disallow(plat)])
        await world.in_force(pol_b, "enforce_existing", [world.disallow(plat)])
        for pol in (pol_a, pol_b):
            report = await probe.wait_for(REPORTS, subject=pol, phase="enforce_existing")
            assert report[0].data == {
                "policy_id": pol,
                "service": "showcase",
                "phase": "enforce_existing",
                "affected": 1,
            }
            got = await probe.wait_for(ITEMS, type="showcase.item_suspended", policy_id=pol)
            assert got[0].data == world.policy_hold(c, pid, pol)
        view = (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json()
        assert sorted(s["policy_id"] for s in view["items"][0]["suspensions"]) == [pol_a, pol_b]

        await world.lifted(pol_a)
        report = await probe.wait_for(REPORTS, subject=pol_a, phase="lifted")
        assert report[0].data["affected"] == 1
        await probe.settle()
        assert probe.events(ITEMS, type="showcase.item_restored", subject=c) == []
        view = (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json()
        assert view["items"][0]["suspensions"] == [{"reason": "policy", "policy_id": pol_b}]
        assert (await http.get(f"/creators/{c}/showcase")).json()["items"] == []

        await world.lifted(pol_b)
        restored = await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
        assert restored[0].data == world.policy_hold(c, pid, pol_b)
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert _order(view) == [(pid, 0)]


async def test_enforcement_honours_exemptions(stack, probe, world) -> None:
    u = world.uid()
    plat, pol = f"plat-{u}", f"pol-{u}"
    c = f"c-{u}"
    plain, listed_exempt, spb, spb_off = f"m-{u}", f"mx-{u}", f"ms-{u}", f"mo-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await world.creator(c)
        # merchants' accounts share the id space: ms-* holds a provider-built mall
        await world.shop(spb, "mini_program", spb=True)
        await world.shop(spb_off, "mini_program")
        for merchant in (plain, listed_exempt, spb, spb_off):
            await world.listed(f"p-{merchant}", merchant, world.third_party(plat))
        await world.until(http, f"/products/p-{spb_off}")
        await world.until(http, f"/accounts/{spb_off}")
        await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
        for merchant in (plain, listed_exempt, spb, spb_off):
            await world.add(c, f"p-{merchant}")
        await probe.wait_for(ITEMS, type="showcase.item_added", subject=c, count=4)

        await world.in_force(
            pol,
            "enforce_existing",
            [world.disallow(plat)],
            {"merchant_ids": [listed_exempt], "service_provider_built": True},
        )
        report = await probe.wait_for(REPORTS, subject=pol, phase="enforce_existing")
        assert report[0].data["affected"] == 2
        await probe.settle()
        suspended = {
            r.data["product_id"]
            for r in probe.events(ITEMS, type="showcase.item_suspended", subject=c)
        }
        assert suspended == {f"p-{plain}", f"p-{spb_off}"}
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert [i["product_id"] for i in view["items"]] == [f"p-{listed_exempt}", f"p-{spb}"]
        # block_new honours the same exemptions for additions
        c2 = f"c2-{u}"
        await world.creator(c2)
        await world.until(http, f"/accounts/{c2}", lambda a: len(a["shops"]) == 3)
        for merchant in (plain, listed_exempt, spb):
            await world.add(c2, f"p-{merchant}")
        assert world.codes(await world.outcome(c2, f"p-{plain}")) == {"source_disallowed"}
        assert (await world.outcome(c2, f"p-{listed_exempt}")).type == "showcase.item_added"
        assert (await world.outcome(c2, f"p-{spb}")).type == "showcase.item_added"
        await world.lifted(pol)
        report = await probe.wait_for(REPORTS, subject=pol, phase="lifted")
        assert report[0].data["affected"] == 2
        await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c, count=2)


async def test_require_shop_enforcement(stack, probe, world) -> None:
    """Creators lacking the required shop lose their items to the policy (exemptions aside)."""
    u = world.uid()
    m, pid, pol = f"m-{u}", f"p-{u}", f"pol-shop-{u}"
    has, lacks, spb = f"has-{u}", f"lacks-{u}", f"spb-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await world.listed(pid, m)
        await world.shop(has, "channels_shop")
        await world.shop(lacks, "wechat_mini_shop")
        await world.shop(spb, "mini_program", spb=True)
        await world.until(http, f"/products/{pid}")
        for c in (has, lacks, spb):
            await world.until(http, f"/accounts/{c}")
            await world.add(c, pid)
            await probe.wait_for(ITEMS, type="showcase.item_added", subject=c)
        await world.in_force(
            pol,
            "enforce_existing",
            [{"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "channels_shop"}],
            {"service_provider_built": True},
        )
        try:
            await probe.wait_for(REPORTS, subject=pol, phase="enforce_existing", timeout=60)
            await probe.settle()
            mine = {
                r.subject
                for r in probe.events(ITEMS, type="showcase.item_suspended", policy_id=pol)
                if r.subject in (has, lacks, spb)
            }
            assert mine == {lacks}
        finally:
            await world.lifted(pol)
            await probe.wait_for(REPORTS, subject=pol, phase="lifted", timeout=60)
        await probe.wait_for(ITEMS, type="showcase.item_restored", subject=lacks, policy_id=pol)


async def test_redelivery_changes_nothing(stack, probe, publisher, world) -> None:
    u = world.uid()
    m, c, plat, pol = f"m-{u}", f"c-{u}", f"plat-{u}", f"pol-{u}"
    pids = [f"p{i}-{u}" for i in range(3)]
    async with running(DEFINITION, stack) as (_, http):
        await world.creator(c)
        await world.listed(pids[0], m)
        await world.listed(pids[1], m, world.third_party(plat))
        await world.listed(pids[2], m)
        await world.offer(f"o-{u}", pids[2], m)
        await world.until(http, f"/offers/o-{u}")
        await world.until(http, f"/products/{pids[2]}")
        await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
        await world.add(c, pids[0])
        await world.add(c, pids[1])
        await world.add(c, pids[2], f"o-{u}")
        await world.add(c, f"ghost-{u}")
        await probe.wait_for(ITEMS, type="showcase.item_added", subject=c, count=3)
        await world.move(c, pids[2], 0)
        await world.remove(c, pids[0])
        await world.delisted(pids[2], m)
        await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c)
        await world.listed(pids[2], m, version=2)
        await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
        await world.in_force(pol, "enforce_existing", [world.disallow(plat)])
        await probe.wait_for(REPORTS, subject=pol)
        await world.lifted(pol)
        await probe.wait_for(REPORTS, subject=pol, count=2)
        await probe.settle()
        before_items = [(r.type, r.data) for r in probe.events(ITEMS, subject=c)]
        before_reports = len(probe.events(REPORTS, subject=pol))
        view = (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json()

        # every input again, same ids (as Kafka redelivers) ...
        for topic, event in world.sent:
            await publisher.send(topic, event)
        # ... and the same commands again under new ids (a client retrying)
        await world.add(c, pids[1])
        await world.listed(pids[2], m, version=2)  # relisted again: no hold left to lift
        await world.move(c, pids[2], 0)  # already on top
        await probe.settle(2.0)
        after_items = [(r.type, r.data) for r in probe.events(ITEMS, subject=c)]
        assert after_items == before_items
        assert len(probe.events(REPORTS, subject=pol)) == before_reports
        assert (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json() == view
        assert [(i["product_id"], i["position"]) for i in view["items"]] == [
            (pids[2], 0),
            (pids[1], 1),
        ]


async def test_malformed_input_goes_to_the_dlq(stack, probe, publisher, world) -> None:
    u = world.uid()
    c = f"c-{u}"
    bad = [
        (b"not json at all", f"{c}-1".encode()),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": u,
                    "source": "/x",
                    "type": "showcase.add_requested",
                    "subject": f"{c}-2",
                    "time": "2022-07-21T10:00:00+08:00",
                    "data": {"creator_id": f"{c}-2"},
                }
            ).encode(),
            f"{c}-2".encode(),
        ),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": u + "x",
                    "source": "/x",
                    "type": "showcase.explode",
                    "subject": f"{c}-3",
                    "time": "2022-07-21T10:00:00+08:00",
                    "data": {},
                }
            ).encode(),
            f"{c}-3".encode(),
        ),
    ]
    async with running(DEFINITION, stack):
        for value, key in bad:
            await publisher.send_raw("creators.showcase", value, key)
        # someone else's showcase: data.creator_id != subject
        await world.send(
            "creators.showcase",
            "showcase.add_requested",
            f"{c}-4",
            {"creator_id": f"victim-{u}", "product_id": "p"},
            "/creators-app",
        )
        reasons = {}
        for i, why in ((1, "not_json"), (2, "invalid_data"), (3, "unknown_type")):
            got = await probe.wait_for("creators.showcase.dlq", subject=f"{c}-{i}", timeout=60)
            reasons[i] = got[0].headers["dlq-reason"]
            assert got[0].headers["dlq-service"] == "showcase"
            assert why == reasons[i]
        # a valid request keyed to another creator is refused, not dead-lettered
        [refused] = await probe.wait_for(
            "showcase.items", type="showcase.item_refused", subject=f"{c}-4", timeout=60
        )
        assert [r["code"] for r in refused.data["reasons"]] == ["not_showcase_owner"]
        assert not probe.events("creators.showcase.dlq", subject=f"{c}-4")
        # and the partition goes on
        await world.creator(f"{c}-5")
        await world.add(f"{c}-5", f"ghost-{u}")
        await world.outcome(f"{c}-5", f"ghost-{u}")
