"""Live against the real stack: every refusal code, the cart following delisting, offers and
policies, enforcement reports, and the queries."""

from __future__ import annotations

from typing import Any

import pytest

from vitrine.tools.testing.services import running
from vitrine_live.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ROOMS = "live.rooms"
REPORTS = "compliance.reports"


def codes(record: Any) -> list[str]:
    return [r["code"] for r in record.data.get("reasons", [])]


async def test_sessions_and_every_refusal_code(stack, probe, room) -> None:
    u = room.uid()
    c, other, m, sid = f"c-{u}", f"x-{u}", f"m-{u}", f"s-{u}"
    p_ok, p_off, p_new, p_tp = f"p1-{u}", f"p2-{u}", f"p3-{u}", f"p4-{u}"
    platform = f"tp-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await room.shop(c, "channels_shop")
        await room.listed(p_ok, m)
        await room.listed(p_new, m)
        await room.listed(p_tp, m, room.third_party(platform))
        await room.in_showcase(c, p_ok)
        await room.in_showcase(c, p_tp)
        await room.offer(f"ot-{u}", p_new, m, "targeted", [other])

        assert codes(await room.add(c, sid, p_ok)) == ["session_not_open"]
        assert (await room.start(c, sid)).type == "live.session_started"
        assert codes(await room.start(c, f"s2-{u}")) == ["session_already_open"]
        # another creator names this session; a request keyed to c acting for another creator
        assert codes(await room.start(other, sid)) == ["not_session_owner"]
        assert codes(await room.add(other, sid, p_ok, key=c)) == ["not_session_owner"]

        added = await room.add(c, sid, p_ok)
        assert added.type == "live.item_added" and added.data["position"] == 0
        assert codes(await room.add(c, sid, p_off)) == ["product_not_listed", "not_in_showcase"]
        assert codes(await room.add(c, sid, p_new)) == ["not_in_showcase"]
        assert codes(await room.add(c, sid, p_new, f"nope-{u}")) == ["offer_not_available"]
        assert codes(await room.add(c, sid, p_new, f"ot-{u}")) == ["not_in_targeted_plan"]

        rule = {
            "kind": "disallow_source",
            "surfaces": ["live"],
            "sources": [room.third_party(platform)],
        }
        await room.in_force(f"pol-{u}", "block_new", [rule])
        refused = await room.add(c, sid, p_tp)
        assert codes(refused) == ["source_disallowed"]
        assert refused.data["reasons"][0]["policy_id"] == f"pol-{u}"
        shop_rule = {"kind": "require_shop", "surfaces": ["live"], "shop_kind": "mini_program"}
        await room.in_force(f"pols-{u}", "block_new", [shop_rule])
        assert "shop_required" in codes(await room.add(c, sid, p_tp))
        await room.lifted(f"pols-{u}")
        await room.lifted(f"pol-{u}")

        # explain: one at a time; the cart and the presented product in the queries
        answers = ("live.item_explaining", "live.item_refused")
        data = {"creator_id": c, "session_id": sid, "product_id": p_ok}
        got = await room.ask("live.explain_requested", c, data, answers, p_ok)
        assert got.type == "live.item_explaining"
        data = {"creator_id": c, "session_id": sid, "product_id": p_new}
        assert codes(await room.ask("live.explain_requested", c, data, answers, p_new)) == [
            "not_in_cart"
        ]
        view = (await http.get(f"/creators/{c}/live")).json()
        assert view["session_id"] == sid and view["explaining"] == p_ok
        assert [i["product_id"] for i in view["items"]] == [p_ok]

        ended = await room.ask(
            "live.end_requested",
            c,
            {"creator_id": c, "session_id": sid},
            ("live.session_ended", "live.session_refused"),
        )
        assert ended.type == "live.session_ended" and ended.data["items"] == 1
        assert (await http.get(f"/creators/{c}/live")).status_code == 404
        session = (await http.get(f"/sessions/{sid}")).json()
        assert session["status"] == "ended" and session["total"] == 1
        missing = await http.get(f"/sessions/nope-{u}")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_cart_full_at_500(stack, probe, room) -> None:
    u = room.uid()
    c, m, sid = f"c-{u}", f"m-{u}", f"s-{u}"
    async with running(DEFINITION, stack):
        await room.shop(c, "channels_shop")
        pids = [f"p{i}-{u}" for i in range(501)]
        for pid in pids:
            await room.send(
                "catalog.products",
                "product.listed",
                pid,
                {
                    "product_id": pid,
                    "merchant_id": m,
                    "version": 1,
                    "source": {"kind": "channels_shop"},
                    "title": "t",
                    "price_fen": 100,
                },
                "/vitrine/catalog",
            )
            await room.send(
                "showcase.items",
                "showcase.item_added",
                c,
                {"creator_id": c, "product_id": pid, "position": 0},
                "/vitrine/showcase",
            )
        await room.projected("showcase", f"{c}/{pids[-1]}")
        await room.projected("products", pids[-1])
        await room.start(c, sid)
        for pid in pids[:-1]:
            await room.request(
                "live.add_requested", c, {"creator_id": c, "session_id": sid, "product_id": pid}
            )
        await probe.wait_for(ROOMS, type="live.item_added", subject=c, count=500, timeout=60)
        assert codes(await room.add(c, sid, pids[-1])) == ["cart_full"]


async def test_cart_follows_delisting_offers_and_policies(stack, probe, room) -> None:
    u = room.uid()
    c, m, sid, oid = f"c-{u}", f"m-{u}", f"s-{u}", f"o-{u}"
    p_show, p_offer = f"p1-{u}", f"p2-{u}"
    platform = f"tp-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await room.shop(c, "channels_shop")
        await room.listed(p_show, m, room.third_party(platform))
        await room.listed(p_offer, m)
        await room.in_showcase(c, p_show)
        await room.offer(oid, p_offer, m, "targeted", [c])
        await room.start(c, sid)
        assert (await room.add(c, sid, p_show)).type == "live.item_added"
        assert (await room.add(c, sid, p_offer, oid)).type == "live.item_added"

        # delisting suspends, relisting restores
        await room.delisted(p_show, m)
        (held,) = await probe.wait_for(
            ROOMS, type="live.item_suspended", subject=c, product_id=p_show
        )
        assert held.data == {
            "creator_id": c,
            "session_id": sid,
            "product_id": p_show,
            "reason": "product_delisted",
        }
        await room.listed(p_show, m, room.third_party(platform))
        await probe.wait_for(ROOMS, type="live.item_restored", subject=c, product_id=p_show)

        # the offer it was taken through: re-published without the creator, then withdrawn
        await room.offer(oid, p_offer, m, "targeted", [f"else-{u}"])
        (off,) = await probe.wait_for(
            ROOMS, type="live.item_suspended", subject=c, product_id=p_offer
        )
        assert off.data["reason"] == "offer_unavailable"

        # a policy naming live: enforced in bulk, reported, lifted
        rule = {
            "kind": "disallow_source",
            "surfaces": ["showcase", "live"],
            "sources": [room.third_party(platform)],
        }
        pol = f"pol-{u}"
        await room.in_force(pol, "block_new", [rule])
        await room.in_force(pol, "enforce_existing", [rule])
        (report,) = await probe.wait_for(REPORTS, type="enforcement.reported", subject=pol)
        assert report.data == {
            "policy_id": pol,
            "service": "live",
            "phase": "enforce_existing",
            "affected": 1,
        }
        (by_policy,) = await probe.wait_for(
            ROOMS, type="live.item_suspended", subject=c, product_id=p_show, reason="policy"
        )
        assert by_policy.data["policy_id"] == pol
        view = (await http.get(f"/creators/{c}/live?include_suspended=true")).json()
        assert {i["product_id"]: i["suspensions"] for i in view["items"]} == {
            p_show: [{"reason": "policy", "policy_id": pol}],
            p_offer: [{"reason": "offer_unavailable"}],
        }
        assert (await http.get(f"/creators/{c}/live")).json()["items"] == []

        await room.lifted(pol)
        lifted = await probe.wait_for(REPORTS, type="enforcement.reported", subject=pol, count=2)
        assert lifted[-1].data["phase"] == "lifted" and lifted[-1].data["affected"] == 1
        restored = await probe.wait_for(
            ROOMS, type="live.item_restored", subject=c, product_id=p_show, count=2
        )
        assert restored[-1].data["policy_id"] == pol


async def test_sold_out_goods_are_refused_and_cart_items_follow_stock(stack, probe, room) -> None:
    u = room.uid()
    c, m, sid, p_in, p_out = f"c-{u}", f"m-{u}", f"s-{u}", f"p1-{u}", f"p2-{u}"
    async with running(DEFINITION, stack):
        await room.shop(c, "channels_shop")
        for pid in (p_in, p_out):
            await room.listed(pid, m)
            await room.in_showcase(c, pid)
        await room.start(c, sid)
        assert (await room.add(c, sid, p_in)).type == "live.item_added"
        for pid in (p_in, p_out):
            data: dict[str, Any] = {"product_id": pid, "merchant_id": m}
            await room.send("catalog.products", "product.sold_out", pid, data, "/vitrine/catalog")
        await room.projected("products", p_out, lambda d: bool(d["sold_out"]))
        assert codes(await room.add(c, sid, p_out)) == ["sold_out"]
        (held,) = await probe.wait_for(
            ROOMS, type="live.item_suspended", subject=c, product_id=p_in
        )
        assert held.data["reason"] == "sold_out"
        data = {"product_id": p_in, "merchant_id": m, "total_stock": 4}
        await room.send("catalog.products", "product.back_in_stock", p_in, data, "/vitrine/catalog")
        (back,) = await probe.wait_for(ROOMS, type="live.item_restored", subject=c, product_id=p_in)
        assert back.data["reason"] == "sold_out"
