"""Hostile input against the running services (DESIGN.md §2, §6; issue 7).

Hypothesis generates a fixed, reproducible storm (``derandomize=True``) of messages on every
upstream input topic: random bytes, truncated JSON, non-objects, wrong types, huge strings and
lists, unknown types, ``$``- and ``.``-keys, key/subject mismatches, unicode edge cases,
oversized records, and valid events. All of them are published at once to every service that
can be imported, running in-process on the test stack. Then:

- every message is answered by every service consuming its topic: applied (its (source, id,
  subject) is in the service's inbox or in the ``applied`` ids of the aggregate it changed, and
  any output it caused carries ``causationid`` = its id; refusals are outputs with reason codes),
  processed without changing anything (the service's committed offset is past it, and it was
  not dead-lettered), or dead-lettered on ``<topic>.dlq`` with a ``dlq-reason``
  naming that service, partition and offset; messages of a known-bad kind get the expected
  reason (``too_large``, ``forbidden_key``, ``key_mismatch``, ``unknown_type``);
- no service crashes or stalls: after the storm, a valid event per service is still answered
  within seconds;
- no document in any service database holds a key starting with ``$``.

Ownership (a merchant acting on another's product or offer, a creator's request naming another
creator), the consume-side size limit, data values that would become MongoDB field names
(report phases), ``NaN``/``Infinity``, tombstones and an upstream producer reusing an event id
for two products have their own tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from vitrine.contract.envelope import CONTENT_TYPE, DEFAULT_MAX_MESSAGE_BYTES
from vitrine.contract.events import INPUT_TOPICS, OUTPUT_TOPICS
from vitrine.contract.ids import dedupe_key
from vitrine.runtime import mongo
from vitrine.runtime.messaging import inbox
from vitrine.runtime.messaging.inbox import APPLIED_FIELD
from vitrine.runtime.service import ServiceDefinition
from vitrine.tools import acls
from vitrine.tools.testing.probe import Seen, cloud_event
from vitrine.tools.testing.services import running

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

#: What a record may weigh on the broker (Apache Kafka's default message.max.bytes, less
#: the batch overhead); Tansu has no such limit.
BROKER_MAX_RECORD_BYTES = 1_000_000


STORM_SIZE = 200
#: What one generated record may weigh at most: under the broker's default 1 MB record limit.
BROKER_SAFE_BYTES = 700_000
ANSWER_TIMEOUT = 90.0
STOP_TIMEOUT = 45.0
HEADERS = [("content-type", CONTENT_TYPE.encode())]

#: Which data field is the Kafka key of each upstream topic (DESIGN.md §3).
KEY_FIELD = {
    "accounts.shops": "account_id",
    "merchants.products": "product_id",
    "review.manual": "product_id",
    "creators.showcase": "creator_id",
    "creators.live": "creator_id",
    "merchants.offers": "offer_id",
    "orders.lifecycle": "order_id",
    "platform.policies": "policy_id",
    "platform.actions": "product_id",
}


#: Every service, fuzzed together (an import error fails the module, never skips it).
DEFINITIONS: dict[str, ServiceDefinition] = {
    name: importlib.import_module(f"vitrine_{name}.service").DEFINITION for name in acls.SERVICES
}


def consumers_of(topic: str) -> list[str]:
    return [name for name, d in DEFINITIONS.items() if topic in d.handlers]


FUZZED_TOPICS = [t for t in INPUT_TOPICS if consumers_of(t)]


# --- valid events, as templates over generated ids ---------------------------------------------

Ids = dict[str, str]
FUTURE = "2099-01-01T00:00:00+08:00"
FUTURE_ENFORCE = "2099-02-01T00:00:00+08:00"

TEMPLATES: dict[str, dict[str, Callable[[Ids], dict[str, Any]]]] = {
    "accounts.shops": {
        "shop.registered": lambda i: {
            "account_id": i["a"],
            "shop_id": i["s"],
            "shop_kind": "channels_shop",
            "service_provider_built": False,
        },
        "shop.closed": lambda i: {"account_id": i["a"], "shop_id": i["s"]},
    },
    "merchants.products": {
        "product.submitted": lambda i: {
            "product_id": i["p"],
            "merchant_id": i["m"],
            "title": f"Teapot {i['p']}",
            "category": "kitchen",
            "images": ["https://img.example.com/a.jpg"],
            "price_fen": 1990,
            "stock": 5,
            "source": {"kind": "channels_shop"},
            "attributes": {"colour": "blue"},
            # Small on purpose: a huge_list of it (10,001 copies) must stay under the broker's
            # 1 MB record limit to reach the consumers (and be dead-lettered as too_large).
            "skus": [{"sku_id": "blue", "price_fen": 1990, "stock": 5}],
        },
        "product.stock_updated": lambda i: {
            "product_id": i["p"],
            "merchant_id": i["m"],
            "sku_id": "blue",
            "stock": 3,
        },
        "product.withdrawn": lambda i: {"product_id": i["p"], "merchant_id": i["m"]},
        "product.audit_cancelled": lambda i: {"product_id": i["p"], "merchant_id": i["m"]},
    },
    "review.manual": {
        "review.manual_decided": lambda i: {
            "product_id": i["p"],
            "version": 1,
            "reviewer_id": i["r"],
            "verdict": "approve",
            "reasons": [],
        }
    },
    "creators.showcase": {
        "showcase.add_requested": lambda i: {"creator_id": i["c"], "product_id": i["p"]},
        "showcase.remove_requested": lambda i: {"creator_id": i["c"], "product_id": i["p"]},
        "showcase.move_requested": lambda i: {
            "creator_id": i["c"],
            "product_id": i["p"],
            "position": 0,
        },
    },
    "creators.live": {
        "live.start_requested": lambda i: {
            "creator_id": i["c"],
            "session_id": i["p"],
            "title": "直播",
        },
        "live.add_requested": lambda i: {
            "creator_id": i["c"],
            "session_id": i["p"],
            "product_id": i["p"],
        },
        "live.remove_requested": lambda i: {
            "creator_id": i["c"],
            "session_id": i["p"],
            "product_id": i["p"],
        },
        "live.explain_requested": lambda i: {
            "creator_id": i["c"],
            "session_id": i["p"],
            "product_id": i["p"],
        },
        "live.end_requested": lambda i: {"creator_id": i["c"], "session_id": i["p"]},
    },
    "merchants.offers": {
        "offer.published": lambda i: {
            "offer_id": i["o"],
            "product_id": i["p"],
            "merchant_id": i["m"],
            "commission_bps": 1050,
            "plan": "general",
            "creator_ids": [],
        },
        "offer.withdrawn": lambda i: {"offer_id": i["o"], "merchant_id": i["m"]},
    },
    "orders.lifecycle": {
        "order.paid": lambda i: {
            "order_id": i["ord"],
            "product_id": i["p"],
            "merchant_id": i["m"],
            "amount_fen": 9900,
            "creator_id": i["c"],
            "offer_id": i["o"],
            "paid_at": "2026-01-01T12:00:00+08:00",
        },
        "order.completed": lambda i: {"order_id": i["ord"]},
        "order.refunded": lambda i: {"order_id": i["ord"], "refund_fen": 100},
    },
    "platform.policies": {
        # Effective far in the future, so a fuzzed policy never bites other tests' data.
        "policy.announced": lambda i: {
            "policy_id": i["pol"],
            "title": "No mini shop goods",
            "effective_at": FUTURE,
            "enforce_existing_at": FUTURE_ENFORCE,
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["showcase"],
                    "sources": [{"kind": "wechat_mini_shop"}],
                }
            ],
            "exemptions": {"merchant_ids": [], "service_provider_built": True},
        },
        "policy.retracted": lambda i: {"policy_id": i["pol"], "reason": "fuzz"},
    },
    "platform.actions": {
        "product.platform_delisted": lambda i: {
            "product_id": i["p"],
            "reason": "violation",
            "note": "fuzz",
        },
        "product.platform_reinstated": lambda i: {"product_id": i["p"]},
    },
}

UNICODE_EDGES = [
    "\x00",
    "nul\x00inside",
    "\ud800",  # a lone surrogate: valid JSON escape, not encodable as UTF-8
    "\udfff\ud800",
    "\u202eRTL override",
    "\ufeffBOM",
    "zero\u200bwidth\u200djoiner",
    "👩‍👩‍👧‍👦" * 50,
    "e\u0301" * 500,  # combining marks
    "ＴＯＰ最佳国家级",
    "\U0010ffff",
    "\r\n\t\x7f\x1b[31m",
    "ﷺ" * 100,
    "%s%n{0}${jndi:ldap://x}",
]
WRONG_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.text(max_size=12),
)
ID_SUFFIX = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
KINDS = [
    "valid",
    "valid",
    "wrong_type",
    "envelope_wrong_type",
    "huge_string",
    "huge_list",
    "unknown_type",
    "dollar_key",
    "dot_key",
    "key_mismatch",
    "no_key",
    "unicode",
    "random_bytes",
    "truncated",
    "not_object",
    "oversized",
]


@dataclass
class Spec:
    """One generated message, before the run's tag makes its ids unique."""

    kind: str
    topic: str
    type: str
    ids: Ids
    mutation: dict[str, Any] = field(default_factory=dict)


@st.composite
def specs(draw: st.DrawFn, kind: str) -> Spec:
    topic = draw(st.sampled_from(FUZZED_TOPICS))
    etype = draw(st.sampled_from(sorted(TEMPLATES[topic])))
    ids = {k: draw(ID_SUFFIX) for k in ("p", "m", "c", "o", "a", "s", "pol", "ord", "r")}
    fields = sorted(TEMPLATES[topic][etype](ids))
    m: dict[str, Any] = {}
    if kind == "wrong_type":
        m = {"field": draw(st.sampled_from(fields)), "value": draw(WRONG_VALUES)}
    elif kind == "envelope_wrong_type":
        m = {
            "field": draw(st.sampled_from(["id", "source", "time", "specversion", "data"])),
            "value": draw(WRONG_VALUES),
        }
    elif kind == "huge_string":
        m = {
            "field": draw(st.sampled_from(fields)),
            "size": draw(st.sampled_from([2_001, 10_000, 60_000, 200_000])),
            "char": draw(st.sampled_from(["x", "界", "😀"])),
        }
    elif kind == "huge_list":
        m = {
            "field": draw(st.sampled_from(fields)),
            "size": draw(st.sampled_from([51, 101, 10_001])),
        }
    elif kind == "unknown_type":
        m = {
            "type": draw(st.sampled_from(["x.", "product.submitted.v9", "PRODUCT.SUBMITTED"]))
            + draw(st.text(max_size=10))
        }
    elif kind in ("dollar_key", "dot_key"):
        bad = (
            draw(st.sampled_from(["$where", "$gt", "$set", "$"]))
            if kind == "dollar_key"
            else (draw(st.sampled_from(["a.b", ".", "price.fen", "x\x00y"])))
        )
        m = {"where": draw(st.sampled_from(["top", "data", "nested"])), "key": bad}
    elif kind == "unicode":
        m = {"field": draw(st.sampled_from(fields)), "value": draw(st.sampled_from(UNICODE_EDGES))}
    elif kind == "random_bytes":
        m = {"value": draw(st.binary(max_size=300)), "key": draw(st.binary(max_size=20))}
    elif kind == "truncated":
        m = {"cut": draw(st.floats(min_value=0.0, max_value=0.99))}
    elif kind == "not_object":
        m = {
            "value": draw(
                st.sampled_from([b"[]", b"1", b'"str"', b"null", b"true", b"[{}]", b"{}"])
            )
        }
    return Spec(kind, topic, etype, ids, m)


def generate(n: int = STORM_SIZE) -> list[Spec]:
    """A fixed, reproducible list of ``n`` specs, every kind equally often.

    Hypothesis draws the details (derandomized, generate phase only, nothing shrunk); one run
    per kind, so that no kind is starved by Hypothesis' preference for simple examples.
    """
    per_kind: dict[str, list[Spec]] = {}
    each = -(-n // len(KINDS))
    for kind in dict.fromkeys(KINDS):
        found: list[Spec] = per_kind.setdefault(kind, [])

        @settings(
            max_examples=each * KINDS.count(kind),
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            deadline=None,
        )
        @given(specs(kind))
        def collect(spec: Spec) -> None:
            per_kind[spec.kind].append(spec)

        collect()
    out: list[Spec] = []
    while len(out) < n and any(per_kind.values()):
        for found in per_kind.values():
            if found and len(out) < n:
                out.append(found.pop(0))
    return out


@dataclass
class Message:
    """A materialised message, and what the services must answer."""

    kind: str
    topic: str
    key: bytes | None
    value: bytes
    dedupe_key: str | None = None  # (source, id, subject) when the envelope is well-formed
    event_id: str | None = None
    expect_reason: str | None = None  # a DLQ reason every consumer must give
    partition: int = -1
    offset: int = -1


def materialise(spec: Spec, tag: str, n: int) -> Message:
    ids = {k: f"{tag}{k}{n}-{v}" for k, v in spec.ids.items()}
    data = TEMPLATES[spec.topic][spec.type](ids)
    subject = data[KEY_FIELD[spec.topic]]
    event = cloud_event(spec.type, subject, data, source=f"/fuzz/{tag}")
    event["id"] = f"{tag}-{n}"
    key: bytes | None = subject.encode()
    m, kind = spec.mutation, spec.kind
    expect: str | None = None
    dedupe: str | None

    if kind == "wrong_type":
        data[m["field"]] = m["value"]
    elif kind == "envelope_wrong_type":
        event[m["field"]] = m["value"]
    elif kind == "huge_string":
        # Bounded so the record stays under the broker's 1 MB limit once JSON-escaped (an
        # astral char is 12 bytes as \\uXXXX\\uXXXX): still far over the consumers' 256 KiB.
        escaped = len(json.dumps(m["char"])) - 2
        data[m["field"]] = m["char"] * min(m["size"], BROKER_SAFE_BYTES // escaped)
    elif kind == "huge_list":
        data[m["field"]] = [data.get(m["field"]) or "x"] * m["size"]
    elif kind == "unknown_type":
        event["type"] = m["type"]
        expect = "unknown_type" if 1 <= len(m["type"]) <= 128 else None
    elif kind in ("dollar_key", "dot_key"):
        target = {"top": event, "data": data, "nested": data.setdefault("attributes", {})}
        target[m["where"]][m["key"]] = {"$ne": None}
        expect = "forbidden_key"
    elif kind == "unicode":
        data[m["field"]] = m["value"]
    elif kind == "key_mismatch":
        key = f"{subject}-other".encode()
        expect = "key_mismatch"
    elif kind == "no_key":
        key = None
        expect = "key_mismatch"
    if all(isinstance(event.get(f), str) for f in ("source", "id", "subject")):
        # what the inbox (or the aggregate) records, if applied
        dedupe = dedupe_key(event["source"], event["id"], event["subject"])
    else:
        dedupe = None
    value = json.dumps(event).encode()  # ASCII-escaped: lone surrogates survive as \\udxxx
    if kind == "random_bytes":
        value, key, dedupe = m["value"], m["key"] or None, None
    elif kind == "truncated":
        value, dedupe = value[: int(len(value) * m["cut"])], None
    elif kind == "not_object":
        value, dedupe, expect = m["value"], None, "not_cloudevent"
    elif kind == "oversized":
        event["data"]["padding"] = "p" * (DEFAULT_MAX_MESSAGE_BYTES + 1024)
        value, expect = json.dumps(event).encode(), "too_large"
    if kind in ("huge_string", "huge_list") and len(value) > BROKER_MAX_RECORD_BYTES:
        # Apache Kafka refuses a record over its message.max.bytes (1 MB by default) before
        # any consumer sees it; shrink to just under it: still far over Vitrine's own bound.
        field = m["field"]
        while len(value) > BROKER_MAX_RECORD_BYTES:
            data[field] = data[field][: len(data[field]) // 2]
            value = json.dumps(event).encode()
    if len(value) > DEFAULT_MAX_MESSAGE_BYTES:
        expect = "too_large"
    return Message(kind, spec.topic, key, value, dedupe, str(event.get("id")), expect)


# --- running every service ---------------------------------------------------------------------


@dataclass
class Services:
    http: dict[str, Any]
    stack: Any


@contextlib.asynccontextmanager
async def all_services(stack: Any) -> AsyncIterator[Services]:
    """Start every importable service in-process, concurrently; stop them all at the end."""
    stop = asyncio.Event()
    clients: dict[str, Any] = {}
    ready = {name: asyncio.Event() for name in DEFINITIONS}

    async def serve(name: str, defn: ServiceDefinition) -> None:
        async with running(defn, stack) as (_, http):
            clients[name] = http
            ready[name].set()
            await stop.wait()

    tasks = [asyncio.create_task(serve(n, d), name=f"svc-{n}") for n, d in DEFINITIONS.items()]
    try:
        deadline = time.monotonic() + 120
        while not all(e.is_set() for e in ready.values()) and time.monotonic() < deadline:
            for t in tasks:
                if t.done():  # a service died while starting: show its error
                    t.result()
                    raise AssertionError(f"{t.get_name()} stopped while starting")
            await asyncio.sleep(0.1)
        assert all(e.is_set() for e in ready.values()), "services did not start in 120 s"
        yield Services(clients, stack)
    finally:
        stop.set()  # graceful: each service finishes its batch and flushes its outbox
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert not pending, f"did not stop within {STOP_TIMEOUT} s: " + ", ".join(
            t.get_name() for t in pending
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services(stack: Any) -> AsyncIterator[Services]:
    async with all_services(stack) as svc:
        yield svc


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def raw_producer(stack: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap,
        acks="all",
        max_request_size=4 * 1024 * 1024,
        linger_ms=2,
    )
    await producer.start()
    yield producer
    await producer.stop()


async def publish(producer: AIOKafkaProducer, messages: list[Message]) -> None:
    futures = [await producer.send(m.topic, m.value, key=m.key, headers=HEADERS) for m in messages]
    for m, fut in zip(messages, futures, strict=True):
        meta = await fut
        m.partition, m.offset = meta.partition, meta.offset


def dead_letters(probe: Any, topic: str) -> dict[tuple[str, int, int], dict[str, str]]:
    """DLQ records of ``topic`` by (service, partition, offset) → their dlq-* headers."""
    out: dict[tuple[str, int, int], dict[str, str]] = {}
    for r in probe.events(f"{topic}.dlq"):
        h = r.headers
        if h.get("dlq-topic") != topic:
            continue
        with contextlib.suppress(KeyError, ValueError):
            out[(h["dlq-service"], int(h["dlq-partition"]), int(h["dlq-offset"]))] = h
    return out


async def applied_keys(stack: Any, keys: list[str]) -> dict[str, set[str]]:
    """Which of ``keys`` each running service has recorded as applied: in its inbox, or in the
    ``applied`` ids of the aggregates it dedupes in (``inbox.with_applied``)."""
    wanted = set(keys)
    client = mongo.connect(stack.mongo_url, app_name="hostile-test")
    try:
        found: dict[str, set[str]] = {}
        for name in DEFINITIONS:
            db = client[name]
            cursor = db["inbox"].find({"_id": {"$in": keys}}, {"_id": 1})
            found[name] = {d["_id"] async for d in cursor}
            for collection in await db.list_collection_names():
                docs = db[collection].find({APPLIED_FIELD: {"$exists": True}}, {APPLIED_FIELD: 1})
                async for doc in docs:
                    found[name] |= inbox.applied_keys(doc[APPLIED_FIELD]) & wanted
        return found
    finally:
        await client.close()


async def committed_offsets(stack: Any) -> dict[str, dict[tuple[str, int], int]]:
    """Each service's consumer group's committed offsets: a record below its partition's
    committed offset was processed (offsets are committed only once effects are durable)."""
    out: dict[str, dict[tuple[str, int], int]] = {}
    for name, defn in DEFINITIONS.items():
        # A consumer of the group that never joins it: it only fetches the group's offsets.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=stack.kafka_bootstrap, group_id=name, enable_auto_commit=False
        )
        await consumer.start()
        try:
            # A consumer that subscribed to nothing knows no topic until it asks for them all
            # (Apache Kafka answers an empty metadata request with none; Tansu with every one).
            await consumer._client.force_metadata_update()
            out[name] = {}
            for topic in defn.handlers:
                for partition in consumer.partitions_for_topic(topic) or ():
                    offset = await consumer.committed(TopicPartition(topic, partition))
                    out[name][topic, partition] = -1 if offset is None else offset
        finally:
            await consumer.stop()
    return out


@dataclass
class Verdicts:
    unanswered: list[str]
    wrong_reason: list[str]
    outcomes: Counter[str]


async def answers(stack: Any, probe: Any, messages: list[Message]) -> Verdicts:
    keys = [m.dedupe_key for m in messages if m.dedupe_key]
    applied = await applied_keys(stack, keys)
    committed = await committed_offsets(stack)
    dlq = {t: dead_letters(probe, t) for t in {m.topic for m in messages}}
    caused: Counter[str] = Counter()
    for r in probe.records:
        if r.topic in OUTPUT_TOPICS:
            with contextlib.suppress(ValueError):
                caused[r.event.get("causationid")] += 1
    unanswered, wrong, outcomes = [], [], Counter[str]()
    for m in messages:
        for service in consumers_of(m.topic):
            letter = dlq[m.topic].get((service, m.partition, m.offset))
            recorded = bool(m.dedupe_key) and m.dedupe_key in applied[service]
            if letter is not None:
                reason = letter.get("dlq-reason", "")
                outcomes[f"dlq:{reason}"] += 1
                if not reason:
                    wrong.append(f"{m.kind} {m.topic}@{m.offset} → {service}: DLQ without reason")
                elif m.expect_reason and reason != m.expect_reason:
                    wrong.append(
                        f"{m.kind} {m.topic}@{m.offset} → {service}: {reason}, "
                        f"expected {m.expect_reason}"
                    )
            elif m.expect_reason:  # must be dead-lettered: wait for its letter
                if recorded or caused[m.event_id or ""]:
                    wrong.append(
                        f"{m.kind} {m.topic}@{m.offset} → {service}: applied, "
                        f"expected DLQ {m.expect_reason}"
                    )
                else:
                    unanswered.append(f"{m.kind} {m.topic}@{m.partition}/{m.offset} by {service}")
            elif recorded:
                outcomes["applied, caused output" if caused[m.event_id or ""] else "applied"] += 1
            elif caused[m.event_id or ""]:
                outcomes["caused output (refused)"] += 1
            elif committed[service].get((m.topic, m.partition), -1) > m.offset:
                outcomes["processed, changed nothing"] += 1
            else:
                unanswered.append(f"{m.kind} {m.topic}@{m.partition}/{m.offset} by {service}")
    return Verdicts(unanswered, wrong, outcomes)


def dollar_keys(doc: Any, path: str = "") -> list[str]:
    if isinstance(doc, dict):
        bad = [f"{path}.{k}" for k in doc if isinstance(k, str) and k.startswith("$")]
        for k, v in doc.items():
            bad += dollar_keys(v, f"{path}.{k}")
        return bad
    if isinstance(doc, list):
        return [b for i, v in enumerate(doc) for b in dollar_keys(v, f"{path}[{i}]")]
    return []


# --- canaries: one valid request per service, answered promptly --------------------------------


async def canaries(publisher: Any, probe: Any, tag: str, timeout: float = 30.0) -> None:
    """One valid request to each service that answers on a topic (selection and dashboard
    answer over HTTP only: the storm's DLQ and offset checks cover them)."""
    started = time.monotonic()
    checks = []
    # catalog
    pid = f"{tag}-canary-p"
    data = TEMPLATES["merchants.products"]["product.submitted"]({"p": pid, "m": f"{tag}-canary-m"})
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, data))
    checks.append(
        probe.wait_for("catalog.products", type="product.listed", subject=pid, timeout=timeout)
    )
    # showcase
    cid = f"{tag}-canary-c"
    data = {"creator_id": cid, "product_id": f"{tag}-nothing"}
    await publisher.send("creators.showcase", cloud_event("showcase.add_requested", cid, data))
    checks.append(
        probe.wait_for("showcase.items", type="showcase.item_refused", subject=cid, timeout=timeout)
    )
    # live
    cid = f"{tag}-canary-lc"
    data = {"creator_id": cid, "session_id": f"{tag}-nothing"}
    await publisher.send("creators.live", cloud_event("live.end_requested", cid, data))
    checks.append(
        probe.wait_for("live.rooms", type="live.session_refused", subject=cid, timeout=timeout)
    )
    # distribution
    oid = f"{tag}-canary-o"
    data = TEMPLATES["merchants.offers"]["offer.published"](
        {"o": oid, "p": f"{tag}-nothing", "m": f"{tag}-m"}
    )
    await publisher.send("merchants.offers", cloud_event("offer.published", oid, data))
    checks.append(
        probe.wait_for("distribution.offers", type="offer.refused", subject=oid, timeout=timeout)
    )
    # compliance
    pol = f"{tag}-canary-pol"
    data = TEMPLATES["platform.policies"]["policy.announced"]({"pol": pol})
    await publisher.send("platform.policies", cloud_event("policy.announced", pol, data))
    checks.append(
        probe.wait_for("compliance.rulings", type="policy.accepted", subject=pol, timeout=timeout)
    )
    await asyncio.gather(*checks)
    assert time.monotonic() - started < timeout


# --- the tests ---------------------------------------------------------------------------------


async def test_the_storm_is_reproducible_and_covers_every_kind() -> None:
    first, second = generate(), generate()
    assert [(s.kind, s.topic, s.type, s.ids) for s in first] == [
        (s.kind, s.topic, s.type, s.ids) for s in second
    ]
    assert {s.kind for s in first} == set(KINDS)
    assert {s.topic for s in first} == set(FUZZED_TOPICS)


async def test_every_hostile_message_is_answered_and_nothing_stalls(
    services: Services, probe: Any, publisher: Any, raw_producer: AIOKafkaProducer
) -> None:
    tag = f"hz{uuid.uuid4().hex[:6]}"
    messages = [materialise(s, tag, n) for n, s in enumerate(generate())]
    await publish(raw_producer, messages)

    deadline = time.monotonic() + ANSWER_TIMEOUT
    while True:
        verdicts = await answers(services.stack, probe, messages)
        if not verdicts.unanswered or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    print(f"hostile input outcomes ({len(messages)} messages): {dict(verdicts.outcomes)}")
    assert not verdicts.unanswered, f"{len(verdicts.unanswered)} unanswered: " + "; ".join(
        verdicts.unanswered[:20]
    )
    assert not verdicts.wrong_reason, "; ".join(verdicts.wrong_reason[:20])
    assert verdicts.outcomes["applied"] + verdicts.outcomes["applied, caused output"] > 0
    for name, http in services.http.items():
        resp = await http.get("/healthz")
        assert resp.status_code == 200, f"{name} not alive after the storm"

    await canaries(publisher, probe, tag)


async def test_no_dollar_key_reaches_mongodb(services: Services) -> None:
    """Runs after the storm: scans every document of every service database."""
    client = mongo.connect(services.stack.mongo_url, app_name="hostile-scan")
    try:
        found: list[str] = []
        scanned = 0
        for name in DEFINITIONS:
            db = client[name]
            for coll in await db.list_collection_names():
                async for doc in db[coll].find({}):
                    scanned += 1
                    found += [f"{name}.{coll} {doc.get('_id')!r}: {p}" for p in dollar_keys(doc)]
        assert scanned > 0
        assert not found, found[:20]
    finally:
        await client.close()


async def test_oversized_messages_are_dead_lettered_as_too_large(
    services: Services, probe: Any, raw_producer: AIOKafkaProducer
) -> None:
    tag = f"big{uuid.uuid4().hex[:6]}"
    messages = []
    for n, topic in enumerate(FUZZED_TOPICS):
        etype = sorted(TEMPLATES[topic])[0]
        ids = {k: f"{tag}{k}{n}" for k in ("p", "m", "c", "o", "a", "s", "pol", "ord", "r")}
        data = TEMPLATES[topic][etype](ids)
        data["padding"] = "x" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
        event = cloud_event(etype, data[KEY_FIELD[topic]], data)
        messages.append(
            Message(
                "oversized",
                topic,
                event["subject"].encode(),
                json.dumps(event).encode(),
                expect_reason="too_large",
            )
        )
    await publish(raw_producer, messages)
    for m in messages:
        for service in consumers_of(m.topic):

            def matches(r: Seen, m: Message = m, service: str = service) -> bool:
                return (
                    r.headers.get("dlq-service") == service
                    and r.headers.get("dlq-offset") == str(m.offset)
                    and r.headers.get("dlq-partition") == str(m.partition)
                )

            [letter] = await probe.wait_for(f"{m.topic}.dlq", where=matches, timeout=30)
            assert letter.headers["dlq-reason"] == "too_large"
            assert letter.value == m.value  # the original, unchanged


def _event_id(value: bytes) -> Any:
    try:
        return json.loads(value).get("id")
    except (ValueError, AttributeError):
        return None


class LogSpy:
    """Stands in for a module's structlog logger: records every call, then passes it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., Any]:
        def log(event: str, **kw: Any) -> Any:
            self.calls.append((level, event, kw))
            return getattr(self.inner, level)(event, **kw)

        return log


async def test_a_merchant_cannot_change_another_merchants_product(
    services: Services, probe: Any, publisher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = importlib.import_module("vitrine_catalog.handlers")
    spy = LogSpy(handlers.log)
    monkeypatch.setattr(handlers, "log", spy)
    tag = uuid.uuid4().hex[:6]
    pid, owner, intruder = f"own-p-{tag}", f"own-m-{tag}", f"evil-m-{tag}"
    data = TEMPLATES["merchants.products"]["product.submitted"]({"p": pid, "m": owner})
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, data))
    await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)

    attempts = [
        ("product.withdrawn", {"product_id": pid, "merchant_id": intruder}),
        ("product.audit_cancelled", {"product_id": pid, "merchant_id": intruder}),
        ("product.submitted", {**data, "merchant_id": intruder, "price_fen": 1}),
        (
            "product.stock_updated",
            {"product_id": pid, "merchant_id": intruder, "sku_id": "blue", "stock": 0},
        ),
    ]
    for etype, body in attempts:
        event = await publisher.send("merchants.products", cloud_event(etype, pid, body))
        [refused] = await probe.wait_for(
            "catalog.products",
            type="product.refused",
            subject=pid,
            where=lambda r, eid=event["id"]: r.event.get("causationid") == eid,
        )
        assert [r["code"] for r in refused.data["reasons"]] == ["not_product_owner"]
        assert refused.data["merchant_id"] == intruder
    logged = [c for c in spy.calls if c[1] == "product.command_refused"]
    assert len(logged) == len(attempts)
    assert all(c[0] == "warning" and c[2]["code"] == "not_product_owner" for c in logged)
    resp = await services.http["catalog"].get(f"/products/{pid}")
    doc = resp.json()
    assert doc["merchant_id"] == owner
    current = doc.get("draft") or doc.get("live")
    assert current["number"] == 1 and current["content"]["price_fen"] == 1990  # not the intruder's


@pytest.mark.skipif(
    not {"catalog", "review", "distribution"} <= set(DEFINITIONS),
    reason="needs catalog, review and distribution",
)
async def test_a_merchant_cannot_offer_or_withdraw_another_merchants_goods(
    services: Services, probe: Any, publisher: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    pid, owner, intruder = f"offp-{tag}", f"offm-{tag}", f"offevil-{tag}"
    data = TEMPLATES["merchants.products"]["product.submitted"]({"p": pid, "m": owner})
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, data))
    await probe.wait_for("catalog.products", type="product.listed", subject=pid, timeout=60)
    http = services.http["distribution"]
    for _ in range(100):  # distribution projects catalog.products on its own schedule
        if (await http.get(f"/products/{pid}")).status_code == 200:
            break
        await asyncio.sleep(0.2)

    def offer(oid: str, merchant: str) -> dict[str, Any]:
        return TEMPLATES["merchants.offers"]["offer.published"]({"o": oid, "p": pid, "m": merchant})

    evil = await publisher.send(
        "merchants.offers",
        cloud_event("offer.published", f"o1-{tag}", offer(f"o1-{tag}", intruder)),
    )
    [refused] = await probe.wait_for(
        "distribution.offers", type="offer.refused", subject=f"o1-{tag}", timeout=30
    )
    assert refused.event["causationid"] == evil["id"]
    assert "not_product_owner" in [r["code"] for r in refused.data["reasons"]]

    await publisher.send(
        "merchants.offers", cloud_event("offer.published", f"o2-{tag}", offer(f"o2-{tag}", owner))
    )
    await probe.wait_for("distribution.offers", type="offer.activated", subject=f"o2-{tag}")
    grab = await publisher.send(
        "merchants.offers",
        cloud_event(
            "offer.withdrawn", f"o2-{tag}", {"offer_id": f"o2-{tag}", "merchant_id": intruder}
        ),
    )
    [refused] = await probe.wait_for(
        "distribution.offers",
        type="offer.refused",
        subject=f"o2-{tag}",
        where=lambda r: r.event.get("causationid") == grab["id"],
    )
    assert [r["code"] for r in refused.data["reasons"]] == ["not_product_owner"]
    await probe.settle(1.0)
    assert not probe.events("distribution.offers", type="offer.withdrawn", subject=f"o2-{tag}")


async def test_a_creators_request_keyed_to_another_creator_changes_nothing(
    services: Services, probe: Any, publisher: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    me, victim = f"cr-{tag}", f"victim-{tag}"
    event = cloud_event(
        "showcase.add_requested", me, {"creator_id": victim, "product_id": f"p-{tag}"}
    )
    await publisher.send("creators.showcase", event)

    def answered() -> list[Seen]:
        refusals = [
            r for r in probe.events("showcase.items") if r.event.get("causationid") == event["id"]
        ]
        letters = [
            r
            for r in probe.events("creators.showcase.dlq")
            if r.headers.get("dlq-service") == "showcase" and _event_id(r.value) == event["id"]
        ]
        return refusals + letters

    deadline = time.monotonic() + 30
    while not answered() and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
    [answer] = answered()
    assert answer.type == "showcase.item_refused", answer.topic
    assert [r["code"] for r in answer.data["reasons"]] == ["not_showcase_owner"]
    assert answer.subject == me
    assert not probe.events("showcase.items", type="showcase.item_added", subject=victim)
    assert not probe.events("showcase.items", type="showcase.item_added", subject=me)


# --- values that must never become keys, numbers JSON does not have, tombstones, reused ids ----


def _dlq_matcher(m: Message, service: str) -> Callable[[Seen], bool]:
    def matches(r: Seen) -> bool:
        return (
            r.headers.get("dlq-service") == service
            and r.headers.get("dlq-offset") == str(m.offset)
            and r.headers.get("dlq-partition") == str(m.partition)
        )

    return matches


@pytest.mark.parametrize("phase", ["$where", "a.b", "$set"])
async def test_a_report_phase_that_is_no_phase_is_dead_lettered(
    services: Services, probe: Any, raw_producer: AIOKafkaProducer, phase: str
) -> None:
    """Compliance keys its record of reports by phase: a free string there would be a MongoDB
    field name (an operator, a path). The phase is an enumeration: anything else is
    ``invalid_data`` and reaches no document."""
    pol = f"pol-{uuid.uuid4().hex[:8]}"
    data = {"policy_id": pol, "service": "showcase", "phase": phase, "affected": 1}
    event = cloud_event("enforcement.reported", pol, data, source="/vitrine/showcase")
    m = Message("bad_phase", "compliance.reports", pol.encode(), json.dumps(event).encode())
    await publish(raw_producer, [m])
    [letter] = await probe.wait_for(
        "compliance.reports.dlq", where=_dlq_matcher(m, "compliance"), timeout=30
    )
    assert letter.headers["dlq-reason"] == "invalid_data"
    assert "phase" in letter.headers["dlq-error"]
    client = mongo.connect(services.stack.mongo_url, app_name="hostile-phase")
    try:
        assert await client["compliance"]["policies"].find_one({"_id": pol}) is None
    finally:
        await client.close()


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_dead_lettered_as_not_json(
    services: Services, probe: Any, raw_producer: AIOKafkaProducer, token: str
) -> None:
    """Even in a field no service reads (an envelope extension): not JSON is not JSON."""
    tag = f"nan{uuid.uuid4().hex[:6]}"
    messages = []
    for n, topic in enumerate(FUZZED_TOPICS):
        etype = sorted(TEMPLATES[topic])[0]
        ids = {k: f"{tag}{k}{n}" for k in ("p", "m", "c", "o", "a", "s", "pol", "ord", "r")}
        data = TEMPLATES[topic][etype](ids)
        event = cloud_event(etype, data[KEY_FIELD[topic]], data)
        event["xscore"] = 987654.25
        value = json.dumps(event).encode().replace(b"987654.25", token.encode())
        messages.append(Message("not_json", topic, event["subject"].encode(), value))
    await publish(raw_producer, messages)
    for m in messages:
        for service in consumers_of(m.topic):
            [letter] = await probe.wait_for(
                f"{m.topic}.dlq", where=_dlq_matcher(m, service), timeout=30
            )
            assert letter.headers["dlq-reason"] == "not_json"
            assert letter.value == m.value


async def _raw_dead_letter(stack: Any, m: Message, service: str, timeout: float = 30.0) -> Any:
    """The dead letter of ``m`` by ``service``, as a raw ``ConsumerRecord`` (the probe turns a
    null value into b"")."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        dlq = f"{m.topic}.dlq"
        await consumer._client.force_metadata_update()  # every topic (see committed_offsets)
        consumer.assign([TopicPartition(dlq, p) for p in consumer.partitions_for_topic(dlq) or ()])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    h = {k: v.decode("utf-8", "replace") for k, v in r.headers or ()}
                    if (h.get("dlq-service"), h.get("dlq-partition"), h.get("dlq-offset")) == (
                        service,
                        str(m.partition),
                        str(m.offset),
                    ):
                        return r
        raise AssertionError(f"no dead letter of {m.topic}@{m.partition}/{m.offset} by {service}")
    finally:
        await consumer.stop()


async def test_a_tombstone_is_dead_lettered_as_a_tombstone(
    services: Services, raw_producer: AIOKafkaProducer
) -> None:
    """A record with a null value is dead-lettered ``empty`` with a null value, not b""."""
    topic = "merchants.products"
    m = Message("tombstone", topic, f"tomb-{uuid.uuid4().hex[:8]}".encode(), None)  # type: ignore[arg-type]
    await publish(raw_producer, [m])
    for service in consumers_of(topic):
        letter = await _raw_dead_letter(services.stack, m, service)
        assert letter.value is None
        assert letter.key == m.key
        assert dict(letter.headers)["dlq-reason"] == b"empty"


@pytest.mark.skipif(
    not {"catalog", "review", "distribution", "showcase"} <= set(DEFINITIONS),
    reason="needs catalog, review, distribution and showcase",
)
async def test_an_upstream_id_reused_for_two_products_lists_both(
    services: Services, probe: Any, publisher: Any
) -> None:
    """An upstream producer reuses one event id for two different products (DESIGN.md §6, one
    id, one event): both are reviewed and listed, every output event has its own id, and the
    consumers that dedupe through their inbox (showcase, distribution) apply both listings."""
    tag = uuid.uuid4().hex[:6]
    shared_id = f"reused-{tag}"
    pids = [f"ru1-{tag}", f"ru2-{tag}"]
    for pid in pids:
        data = TEMPLATES["merchants.products"]["product.submitted"]({"p": pid, "m": f"rm-{tag}"})
        await publisher.send(
            "merchants.products",
            cloud_event("product.submitted", pid, data, source=f"/erp/{tag}", id=shared_id),
        )
    outputs = []
    for pid in pids:
        outputs += await probe.wait_for("catalog.products", type="product.listed", subject=pid)
        outputs += probe.events("catalog.products", type="product.review_requested", subject=pid)
        outputs += probe.events("review.decisions", type="review.approved", subject=pid)
    await probe.settle(1.0)
    ids = [r.event["id"] for r in outputs]
    assert len(ids) == 6 and len(set(ids)) == 6, sorted(ids)
    for pid in pids:
        for service in ("distribution", "showcase"):
            http = services.http[service]
            for _ in range(150):  # each projects catalog.products on its own schedule
                resp = await http.get(f"/products/{pid}")
                if resp.status_code == 200 and resp.json().get("listed"):
                    break
                await asyncio.sleep(0.2)
            assert resp.status_code == 200 and resp.json().get("listed"), (service, pid, resp.text)


async def test_a_live_request_keyed_to_another_creator_changes_nothing(
    services: Services, probe: Any, publisher: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    me, victim = f"lc-{tag}", f"lvictim-{tag}"
    start = cloud_event(
        "live.start_requested",
        me,
        {"creator_id": victim, "session_id": f"ls-{tag}", "title": "直播"},
    )
    await publisher.send("creators.live", start)
    (answer,) = await probe.wait_for("live.rooms", type="live.session_refused", subject=me)
    assert answer.event.get("causationid") == start["id"]
    assert [r["code"] for r in answer.data["reasons"]] == ["not_session_owner"]
    await probe.settle()
    assert not probe.events("live.rooms", type="live.session_started", subject=victim)
    assert not probe.events("live.rooms", type="live.session_started", subject=me)


async def test_an_event_stamped_in_the_future_is_dead_lettered_as_clock_skew(
    services: Services, probe: Any, raw_producer: AIOKafkaProducer
) -> None:
    """Decisions follow event time (DESIGN.md §6): an event more than 5 minutes ahead of the
    consumer's clock is ``clock_skew`` for every consumer, whatever its topic (the 5-minute
    boundary itself is tested in shared/tests/test_envelope.py)."""
    tag = f"skew{uuid.uuid4().hex[:6]}"
    ahead = datetime.now(UTC) + timedelta(hours=2)
    messages = []
    for n, topic in enumerate(FUZZED_TOPICS):
        etype = sorted(TEMPLATES[topic])[0]
        ids = {k: f"{tag}{k}{n}" for k in ("p", "m", "c", "o", "a", "s", "pol", "ord", "r")}
        data = TEMPLATES[topic][etype](ids)
        event = cloud_event(etype, data[KEY_FIELD[topic]], data)
        event["time"] = ahead.isoformat()
        messages.append(
            Message("clock_skew", topic, event["subject"].encode(), json.dumps(event).encode())
        )
    await publish(raw_producer, messages)
    for m in messages:
        for service in consumers_of(m.topic):
            [letter] = await probe.wait_for(
                f"{m.topic}.dlq", where=_dlq_matcher(m, service), timeout=30
            )
            assert letter.headers["dlq-reason"] == "clock_skew"
            assert letter.value == m.value
