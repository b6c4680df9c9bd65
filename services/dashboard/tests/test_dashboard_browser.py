"""The page as a person sees it: Debian's Chromium, headless, driven by Playwright, against the
dashboard running as its own process on the real stack. Orders are published while the page is
open; the figures on screen must change to the exact expected values without a reload.

Skipped only when ``/usr/bin/chromium`` is absent (``apt-get install -y chromium``); Playwright's
own browser downloads are never used. ``VITRINE_SCREENSHOT=<path>`` saves the live view there
(docs/img/dashboard-live.png was made that way).
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.process import ServiceProcess
from vitrine_dashboard.domain import TZ

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.stack,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium)",
    ),
]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def order(
    session: str, creator: str, product: str, amount: int, paid_at: datetime, quantity: int = 1
) -> dict[str, Any]:
    oid = uid("o")
    data = {
        "order_id": oid,
        "product_id": product,
        "merchant_id": "m-tea",
        "creator_id": creator,
        "amount_fen": amount,
        "paid_at": paid_at.isoformat(),
        "live_session_id": session,
        "quantity": quantity,
    }
    return cloud_event("order.paid", oid, data)


async def test_live_view_updates_without_reload(stack, publisher, tmp_path) -> None:
    from playwright.async_api import async_playwright, expect

    session, creator = uid("live"), uid("c")
    now = datetime.now(TZ).replace(second=0, microsecond=0)
    started = {"creator_id": creator, "session_id": session, "title": "白瓷茶杯 tea night"}
    explaining = {"creator_id": creator, "session_id": session, "product_id": "p-teacup"}
    await publisher.send_many(
        "live.rooms",
        [
            cloud_event(
                "live.session_started",
                creator,
                started,
                source="/vitrine/live",
                time=now - timedelta(minutes=30),
            ),
            cloud_event("live.item_explaining", creator, explaining, source="/vitrine/live"),
        ],
    )
    # Half an hour of sales, a few orders a minute (each lands in its own paid_at minute).
    products = [("p-teacup", 1990), ("p-teapot", 8800), ("p-tea-tin", 4500)]
    first: list[dict[str, Any]] = []
    for minute in range(30, 0, -1):
        for i in range(1 + (minute * 7) % 4):
            pid, price = products[(minute + i) % 3]
            first.append(order(session, creator, pid, price, now - timedelta(minutes=minute)))
    await publisher.send_many("orders.lifecycle", first)
    gmv = sum(e["data"]["amount_fen"] for e in first)

    svc = ServiceProcess.against(
        stack, "dashboard", tmp_path / "logs", VITRINE_DASHBOARD_PUSH_SECONDS="0.3"
    )
    with svc:
        await svc.start().wait_ready()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1600, "height": 900})
                await page.goto(f"http://127.0.0.1:{svc.port}/?live={session}")
                await expect(page.locator("#kpi-orders")).to_have_text(
                    str(len(first)), timeout=30_000
                )
                await expect(page.locator("#kpi-gmv")).to_have_text(yuan(gmv))
                await expect(page.locator("#explaining")).to_have_text("p-teacup")
                await expect(page.locator("#connection")).to_have_text("● live")
                await page.evaluate("window.__notReloaded = true")

                # While the page is open: two more orders now and a refund.
                more = [
                    order(session, creator, "p-teapot", 8800, now, quantity=2),
                    order(session, creator, "p-teacup", 1990, now),
                ]
                await publisher.send_many("orders.lifecycle", more)
                refunded = more[1]["data"]["order_id"]
                await publisher.send(
                    "orders.lifecycle",
                    cloud_event(
                        "order.refunded", refunded, {"order_id": refunded, "refund_fen": 990}
                    ),
                )
                total = gmv + 8800 + 1990
                await expect(page.locator("#kpi-orders")).to_have_text(
                    str(len(first) + 2), timeout=30_000
                )
                await expect(page.locator("#kpi-gmv")).to_have_text(yuan(total))
                await expect(page.locator("#kpi-refunds")).to_have_text(yuan(990))
                await expect(page.locator("#kpi-net")).to_have_text(yuan(total - 990))
                assert await page.evaluate("window.__notReloaded === true")
                # What the screen shows is what the API answers.
                status, body = await svc.get_async(f"/api/live/{session}")
                assert status == 200 and body["gmv_fen"] == total
                top = page.locator("#top-products tbody tr").first.locator("td").nth(1)
                await expect(top).to_have_text(body["top_products"][0]["product_id"])
                await expect(page.locator("#chart canvas")).to_have_count(1)
                if target := os.environ.get("VITRINE_SCREENSHOT"):
                    await page.screenshot(path=target)

                # The creator's day: the same orders, counted on their own Asia/Shanghai day.
                day = now.date()
                on_day = [
                    e
                    for e in [*first, *more]
                    if datetime.fromisoformat(e["data"]["paid_at"]).astimezone(TZ).date() == day
                ]
                await page.goto(f"http://127.0.0.1:{svc.port}/?creator={creator}&date={day}")
                await expect(page.locator("#kpi-orders")).to_have_text(
                    str(len(on_day)), timeout=30_000
                )
                on_day_fen = sum(e["data"]["amount_fen"] for e in on_day)
                await expect(page.locator("#kpi-gmv")).to_have_text(yuan(on_day_fen))
                await expect(page.locator("#subtitle")).to_contain_text(str(day))

                # The operator's view: a policy in force, showcase reported, live waited for.
                pol = uid("pol")
                await publisher.send_many(
                    "compliance.rulings",
                    [
                        cloud_event(
                            "policy.accepted", pol, accepted(pol), source="/vitrine/compliance"
                        ),
                        cloud_event(
                            "policy.in_force", pol, in_force(pol), source="/vitrine/compliance"
                        ),
                    ],
                )
                report = {"policy_id": pol, "service": "showcase", "phase": "enforce_existing"}
                await publisher.send(
                    "compliance.reports",
                    cloud_event(
                        "enforcement.reported",
                        pol,
                        {**report, "affected": 12},
                        source="/vitrine/showcase",
                    ),
                )
                await page.goto(f"http://127.0.0.1:{svc.port}/?view=policies")
                card = page.locator(f'article[data-policy="{pol}"]')
                await expect(card.locator('tr[data-service="showcase"] td').nth(3)).to_have_text(
                    "12", timeout=30_000
                )
                await expect(card.locator('tr[data-service="live"] td').nth(1)).to_have_text(
                    "waiting"
                )
                await expect(card.locator(".steps li.done")).to_have_text(["announced", "in force"])

                # Bad input as a person meets it: an unknown session says so.
                await page.goto(f"http://127.0.0.1:{svc.port}/?live={uid('nope')}")
                await expect(page.locator("#error")).to_contain_text("no live session")

                # A phone: the page still fits (no horizontal scrolling).
                phone = await browser.new_page(viewport={"width": 390, "height": 844})
                await phone.goto(f"http://127.0.0.1:{svc.port}/?live={session}")
                await expect(phone.locator("#kpi-gmv")).to_have_text(yuan(total), timeout=30_000)
                width = await phone.evaluate("document.documentElement.scrollWidth")
                assert width <= 390
            finally:
                await browser.close()


def accepted(pol: str) -> dict[str, Any]:
    at = "2022-11-30T00:00:00+08:00"
    rule = {
        "kind": "disallow_source",
        "surfaces": ["showcase", "live"],
        "sources": [{"kind": "wechat_mini_shop"}],
    }
    return {
        "policy_id": pol,
        "title": "Mini Shop goods leave showcases and live carts",
        "effective_at": at,
        "enforce_existing_at": at,
        "rules": [rule],
    }


def in_force(pol: str) -> dict[str, Any]:
    at = "2022-11-30T00:00:00+08:00"
    return {"policy_id": pol, "phase": "enforce_existing", "effective_at": at}


def yuan(fen: int) -> str:
    """What the page shows for ``fen`` (app.js ``yuan``)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"
