"""The two baselines P1 is compared with, run as subprocesses like the services.

Both model the same three hops as catalog → review → catalog, on benchmark-only topics with
the same partition counts and the same topology (catalog's outputs share one topic, which the
review role reads whole, as review reads ``catalog.products``):

    {p}.merchants --catalog--> {p}.products (review_requested) --review--> {p}.decisions
    {p}.decisions --catalog--> {p}.products (listed)

- ``raw`` (the ceiling): a hand-written aiokafka loop per role: ``getmany`` (≤500 records) →
  ``json.loads`` → ONE PyMongo ``bulk_write`` (one document per message) in one journaled
  transaction, like the services → produce every output and wait for the acks → commit.
- ``naive`` (the peer baseline): the FastStream pattern most code starts with: a non-batch
  subscriber per topic with FastStream's defaults (offsets auto-committed, i.e. at-most-once:
  generous to the baseline), one ``await`` MongoDB write per message and one ``await
  broker.publish`` per event.

Both use the broker profile the services use on the same broker
(:mod:`vitrine.runtime.standins`, named by ``--standin`` as ``VITRINE_KAFKA_STANDIN`` names it
for a service): the fetch wait and the idempotent producer, so a ratio system ÷ ceiling compares
like with like on each broker.

``python -m benchmarks.raw --mode raw|naive --role catalog|review --bootstrap B --mongo URL
--prefix P [--standin none|tansu]`` runs one role until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient, ReplaceOne, UpdateOne

from vitrine.runtime import mongo
from vitrine.runtime.standins import BrokerProfile, KafkaStandin, broker_profile
from vitrine.tools.devstack import EmbeddedStack

PARTITIONS = 12


def topics(prefix: str) -> dict[str, int]:
    return {f"{prefix}.{t}": PARTITIONS for t in ("merchants", "products", "decisions")}


def _event(type_: str, subject: str, data: dict[str, Any], cause: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"{cause['id']}>{type_}",
            "source": "/bench/raw",
            "type": type_,
            "subject": subject,
            "time": cause["time"],
            "causationid": cause["id"],
            "data": data,
        }
    ).encode()


Output = tuple[str, bytes, bytes, str]  # topic, key, value, ce-type
Op = ReplaceOne[Any] | UpdateOne


def catalog_step(prefix: str, topic: str, ev: dict[str, Any]) -> tuple[Op | None, Output | None]:
    """Catalog's two hops: a submission becomes a draft + review request; an approval lists."""
    d = ev["data"]
    pid = d["product_id"]
    if topic.endswith(".merchants") and ev["type"] == "product.submitted":
        doc = {"_id": pid, "merchant_id": d["merchant_id"], "draft": d, "version": 1}
        out = _event("product.review_requested", pid, {**d, "version": 1}, ev)
        return ReplaceOne({"_id": pid}, doc, upsert=True), (
            f"{prefix}.products",
            pid.encode(),
            out,
            "product.review_requested",
        )
    if topic.endswith(".decisions") and ev["type"] == "review.approved":
        out = _event("product.listed", pid, {"product_id": pid, "version": d["version"]}, ev)
        return UpdateOne({"_id": pid}, {"$set": {"listed": True, "live": d["version"]}}), (
            f"{prefix}.products",
            pid.encode(),
            out,
            "product.listed",
        )
    return None, None


def review_step(prefix: str, topic: str, ev: dict[str, Any]) -> tuple[Op | None, Output | None]:
    """Review's hop: a review request gets a decision document and an approval."""
    if ev["type"] != "product.review_requested":
        return None, None  # review reads the whole products topic, as the real one does
    d = ev["data"]
    pid = d["product_id"]
    doc = {"_id": f"{pid}:{d['version']}", "product_id": pid, "verdict": "approved"}
    out = _event("review.approved", pid, {"product_id": pid, "version": d["version"]}, ev)
    return ReplaceOne({"_id": doc["_id"]}, doc, upsert=True), (
        f"{prefix}.decisions",
        pid.encode(),
        out,
        "review.approved",
    )


def role_spec(role: str, prefix: str) -> tuple[list[str], Any, str]:
    if role == "catalog":
        return [f"{prefix}.merchants", f"{prefix}.decisions"], catalog_step, "products"
    return [f"{prefix}.products"], review_step, "decisions"


async def run_raw(
    role: str,
    bootstrap: str,
    mongo_url: str,
    prefix: str,
    stop: asyncio.Event,
    profile: BrokerProfile,
) -> None:
    inputs, step, collection = role_spec(role, prefix)
    client = mongo.connect(mongo_url, app_name=f"raw-{role}")
    coll = mongo.database(client, f"{prefix.replace('.', '_')}_{role}")[collection]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1024 * 1024,
        enable_idempotence=profile.idempotent_producer,
    )
    consumer = AIOKafkaConsumer(
        *inputs,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}-{role}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # The services' setting on this broker: Kafka's 500 ms (it answers as soon as data
        # is there), Tansu's 20 ms (it parks a fetch for its whole max wait).
        fetch_max_wait_ms=profile.fetch_max_wait_ms,
    )
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            ops: list[Any] = []
            outs: list[Output] = []
            for tp, records in batch.items():
                for r in records:
                    op, out = step(prefix, tp.topic, json.loads(r.value))
                    if op is not None:
                        ops.append(op)
                    if out is not None:
                        outs.append(out)
            if ops:
                # One journaled transaction per batch: on nx-27017 that is ~8x faster than a
                # plain j:true bulk_write, which commits each document on its own.
                async with mongo.transaction(client) as session:
                    await coll.bulk_write(ops, ordered=False, session=session)
            futures = [
                await producer.send(t, v, key=k, headers=[("ce-type", ty.encode())])
                for t, k, v, ty in outs
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
        await client.close()


async def run_naive(
    role: str,
    bootstrap: str,
    mongo_url: str,
    prefix: str,
    stop: asyncio.Event,
    profile: BrokerProfile,
) -> None:
    from faststream.kafka import KafkaBroker, KafkaMessage

    inputs, step, collection = role_spec(role, prefix)
    client: AsyncMongoClient[Any] = mongo.connect(mongo_url, app_name=f"naive-{role}")
    coll = mongo.database(client, f"{prefix.replace('.', '_')}_{role}")[collection]
    broker = KafkaBroker(
        bootstrap, client_id=f"naive-{role}", enable_idempotence=profile.idempotent_producer
    )

    def subscribe(topic: str) -> None:
        @broker.subscriber(
            topic,
            group_id=f"{prefix}-{role}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=profile.fetch_max_wait_ms,
        )
        async def handle(msg: KafkaMessage) -> None:
            op, out = step(prefix, topic, json.loads(msg.body))
            if isinstance(op, ReplaceOne):
                await coll.replace_one(op._filter, op._doc, upsert=True)
            elif isinstance(op, UpdateOne):
                await coll.update_one(op._filter, op._doc)
            if out is not None:
                t, k, v, ty = out
                await broker.publish(v, t, key=k, headers={"ce-type": ty})

    for topic in inputs:
        subscribe(topic)
    await broker.start()
    try:
        await stop.wait()
    finally:
        await broker.stop()
        await client.close()


def spawn_baseline(
    stack: EmbeddedStack, mode: str, role: str, prefix: str, logs: Path
) -> subprocess.Popen[bytes]:
    """Start one role of a baseline as a subprocess (logs in ``logs``)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.raw",
            "--mode",
            mode,
            "--role",
            role,
            "--bootstrap",
            stack.kafka_bootstrap,
            "--mongo",
            stack.mongo_url,
            "--prefix",
            prefix,
            "--standin",
            stack.kafka_standin,
        ],
        stdout=(logs / f"{mode}-{role}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["raw", "naive"], required=True)
    parser.add_argument("--role", choices=["catalog", "review"], required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--mongo", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--standin", choices=["none", "tansu"], default="none")
    args = parser.parse_args()
    standin: KafkaStandin = args.standin

    async def amain() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        run = run_raw if args.mode == "raw" else run_naive
        profile = broker_profile(standin)
        await run(args.role, args.bootstrap, args.mongo, args.prefix, stop, profile)

    asyncio.run(amain())


if __name__ == "__main__":
    main()
