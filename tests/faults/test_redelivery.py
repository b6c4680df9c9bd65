"""Every input delivered three times, shuffled per key where the contract allows (issue 7).

Kafka promises order per key only, and at-least-once delivery means any message may come
again later (a consumer that crashed before committing re-reads from its last offset). So the
same script is run twice on fresh ids:

- run A: each input once, in order;
- run B: each input three times; across keys the order is shuffled at random; within a key the
  first copies keep their order and each repeat lands at a random later place;

and then, in run B, every event the services published (``catalog.products``,
``review.decisions``) is published again twice, as a broker redelivery would hand it to
their consumers. Final state must be identical between A and B (catalog products, review's
audit trail), the repeats must cause no new event, and effects whose outcome does not depend
on timing must be announced by exactly one event id.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from harness import duplicated, effects, fleet
from workload import product, wait_until

from vitrine.tools.testing.probe import cloud_event

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

PRODUCTS = 160
OUTPUTS = ("catalog.products", "review.decisions")


def script(tag: str, n: int) -> list[dict[str, Any]]:
    """Inputs whose final state does not depend on timing (see the module docstring)."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        pid, m = f"{tag}-p{i:04d}", f"{tag}-m{i % 7}"
        kind = i % 4
        if kind == 0:  # listed
            events.append(cloud_event("product.submitted", pid, product(pid, m, i)))
        elif kind == 1:  # rejected (banned term)
            events.append(
                cloud_event("product.submitted", pid, product(pid, m, i, title=f"顶级 cup {i}"))
            )
        elif kind == 2:  # two versions: whichever way review's answers interleave, v2 is live
            events.append(cloud_event("product.submitted", pid, product(pid, m, i)))
            events.append(cloud_event("product.submitted", pid, product(pid, m, i, price=2090)))
        else:  # another merchant tries to take it over: refused
            events.append(cloud_event("product.submitted", pid, product(pid, m, i)))
            intruder = {**product(pid, f"{tag}-evil", i), "price_fen": 1}
            events.append(cloud_event("product.submitted", pid, intruder))
    return events


def triple_and_shuffle(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Three copies of each event; per key, originals in order and repeats after them."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_key.setdefault(e["subject"], []).append(e)
    sequences = []
    for seq in by_key.values():
        out = list(seq)
        for e in seq:
            for _ in range(2):  # the original is the first occurrence (ids are unique)
                out.insert(rng.randint(out.index(e) + 1, len(out)), e)
        sequences.append(out)
    merged: list[dict[str, Any]] = []
    while sequences:
        seq = rng.choice(sequences)
        merged.append(seq.pop(0))
        if not seq:
            sequences.remove(seq)
    return merged


def deterministic(records: list[Any]) -> list[Any]:
    """Outputs about products whose effects do not depend on timing (kinds 0, 1, 3)."""
    return [r for r in records if int(r.subject.rsplit("-p", 1)[1]) % 4 != 2]


async def test_inputs_delivered_three_times_and_shuffled_give_the_same_state(
    stack: Any, probe: Any, publisher: Any
) -> None:
    rng = random.Random(11)
    base = uuid.uuid4().hex[:6]
    tag_a, tag_b = f"ra{base}", f"rb{base}"
    run_a, run_b = script(tag_a, PRODUCTS), script(tag_b, PRODUCTS)
    delivered_b = triple_and_shuffle(run_b, rng)
    assert len(delivered_b) == 3 * len(run_b)

    def outputs(tag: str) -> list[Any]:
        return [r for t in OUTPUTS for r in probe.events(t) if (r.key or "").startswith(tag)]

    def settled(tag: str) -> bool:
        """Every product has the final event its script leads to."""
        final = {
            (r.subject, r.type, r.data.get("version"))
            for r in outputs(tag)
            if r.type in ("product.listed", "product.rejected", "product.refused")
        }
        wanted: list[list[tuple[str, int | None]]] = [
            [("product.listed", 1)],
            [("product.rejected", 1)],
            [("product.listed", 2)],
            [("product.listed", 1), ("product.refused", None)],
        ]
        return all(
            (f"{tag}-p{i:04d}", t, v) in final for i in range(PRODUCTS) for t, v in wanted[i % 4]
        )

    with fleet(stack, ["catalog", "review"], "redelivery") as f:
        await f.start()
        await publisher.send_many("merchants.products", run_a)
        await publisher.send_many("merchants.products", delivered_b)
        await wait_until(lambda: settled(tag_a) and settled(tag_b), 240, "both runs to settle")
        await probe.settle(2.0)

        # The services' own outputs redelivered twice to their consumers.
        published_b = outputs(tag_b)
        for _ in range(2):
            for topic in OUTPUTS:
                copies = [r.event for r in published_b if r.topic == topic]
                await publisher.send_many(topic, copies)
        await probe.settle(3.0)

        after_b = outputs(tag_b)
        ids_before = {r.event["id"] for r in published_b}
        assert {r.event["id"] for r in after_b} == ids_before, "a redelivery caused a new event"
        assert not duplicated(deterministic(outputs(tag_a)))
        assert not duplicated(deterministic(after_b))
        swap = {tag_a: tag_b}
        assert {
            tuple(x.replace(tag_a, tag_b) for x in k)
            for k in effects(deterministic(outputs(tag_a)))
        } == set(effects(deterministic(after_b))), swap

        for i in range(PRODUCTS):
            pa, pb = f"{tag_a}-p{i:04d}", f"{tag_b}-p{i:04d}"
            sa, doc_a = await f["catalog"].get_async(f"/products/{pa}")
            sb, doc_b = await f["catalog"].get_async(f"/products/{pb}")
            assert sa == sb == 200
            assert json.dumps(doc_a, sort_keys=True).replace(tag_a, tag_b) == json.dumps(
                doc_b, sort_keys=True
            ), (doc_a, doc_b)
            _, trail_a = await f["review"].get_async(f"/products/{pa}/decisions")
            _, trail_b = await f["review"].get_async(f"/products/{pb}/decisions")
            assert [(d["version"], d["outcome"]) for d in trail_a["decisions"]] == [
                (d["version"], d["outcome"]) for d in trail_b["decisions"]
            ], (pa, trail_a, trail_b)
