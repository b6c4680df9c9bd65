"""Only owners write, enforced by the broker: SASL/SCRAM principals and the ACL plan on the
embedded Apache Kafka (issue 11 item 7).

The broker runs ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false`` and the
plan of ``vitrine acls apply``. catalog and review authenticate as their own principals; an
upstream merchant system as ``upstream-merchants``. A forged ``review.approved`` from anyone
but review is refused by the broker, and the services keep working meanwhile.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from vitrine.contract.topics import all_topic_names
from vitrine.tools import acls
from vitrine.tools.devstack import EmbeddedStack, choose_broker, free_port
from vitrine.tools.devstack.apache_kafka import ApacheKafkaNode
from vitrine.tools.testing.probe import TopicProbe, cloud_event
from vitrine.tools.testing.services import running
from vitrine.tools.testing.stack import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

PASSWORDS = {p: secrets.token_hex(8) for p in [*acls.principals(), "mallory"]}


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[StackInfo, int]]:
    """Apache Kafka with a SASL/SCRAM listener, the authorizer on and the plan applied."""
    broker, why = choose_broker()
    if broker != "apache":
        pytest.skip(f"broker ACLs need Apache Kafka: {why}")
    with tempfile.TemporaryDirectory(prefix="vitrine-acl-") as tmp:
        sasl_port = free_port()
        node = ApacheKafkaNode(
            free_port(),
            free_port(),
            Path(tmp) / "kafka",
            sasl_port=sasl_port,
            scram_users=PASSWORDS,
            extra={
                "authorizer.class.name": (
                    "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                ),
                # The plaintext listener (and the controller) are the test's admin side.
                "super.users": "User:ANONYMOUS",
                "allow.everyone.if.no.acl.found": "false",
                "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
            },
        )
        stack = EmbeddedStack(
            node.port, free_port(), Path(tmp), broker="apache", broker_reason=why, kafka=node
        )
        with stack:
            acls.apply(acls.plan(), acls.admin_config(stack.kafka_bootstrap, {}))
            yield StackInfo("embedded", stack.kafka_bootstrap, stack.mongo_url, stack), sasl_port


def sasl_settings(principal: str, port: int) -> dict[str, Any]:
    return {
        "kafka_bootstrap": f"127.0.0.1:{port}",
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": principal,
        "kafka_sasl_password": PASSWORDS[principal],
    }


@pytest_asyncio.fixture(loop_scope="session")
async def producer_as(secured: tuple[StackInfo, int]) -> AsyncIterator[Any]:
    _, port = secured
    started: list[AIOKafkaProducer] = []

    async def make(principal: str) -> AIOKafkaProducer:
        p = AIOKafkaProducer(
            bootstrap_servers=f"127.0.0.1:{port}",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username=principal,
            sasl_plain_password=PASSWORDS[principal],
            acks="all",
            request_timeout_ms=10000,
        )
        await p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.stop()


async def send(producer: AIOKafkaProducer, topic: str, event: dict[str, Any]) -> None:
    await producer.send_and_wait(topic, json.dumps(event).encode(), key=event["subject"].encode())


def submitted(pid: str) -> dict[str, Any]:
    return {
        "product_id": pid,
        "merchant_id": "m-acl",
        "title": f"Celadon cup {pid}",
        "category": "kitchen",
        "images": [f"https://img.example.com/{pid}.jpg"],
        "price_fen": 2990,
        "stock": 5,
        "source": {"kind": "channels_shop"},
    }


async def test_foreign_principals_cannot_write_internal_topics_while_services_work(
    secured: tuple[StackInfo, int], producer_as: Any
) -> None:
    from vitrine_catalog.service import DEFINITION as CATALOG
    from vitrine_review.service import DEFINITION as REVIEW

    stack, port = secured
    probe = await TopicProbe(stack.kafka_bootstrap, all_topic_names()).start()
    try:
        async with (
            running(CATALOG, stack, **sasl_settings("vitrine-catalog", port)),
            running(REVIEW, stack, **sasl_settings("vitrine-review", port)),
        ):
            merchant = await producer_as("upstream-merchants")
            first = f"p-acl-{uuid.uuid4().hex[:6]}"
            await send(
                merchant,
                "merchants.products",
                cloud_event("product.submitted", first, submitted(first)),
            )
            await probe.wait_for(
                "catalog.products", type="product.listed", subject=first, timeout=60
            )

            # A forged approval: the merchant system, a stranger, and catalog itself are refused.
            forged_pid = f"p-forged-{uuid.uuid4().hex[:6]}"
            forged = cloud_event(
                "review.approved", forged_pid, {"product_id": forged_pid, "version": 1}
            )
            for who in ("upstream-merchants", "mallory", "vitrine-catalog"):
                with pytest.raises(TopicAuthorizationFailedError):
                    await send(await producer_as(who), "review.decisions", forged)
            # review may not speak for catalog either
            with pytest.raises(TopicAuthorizationFailedError):
                await send(
                    await producer_as("vitrine-review"),
                    "catalog.products",
                    cloud_event("product.listed", forged_pid, {"product_id": forged_pid}),
                )

            # … and the services kept working through all of it.
            second = f"p-acl-{uuid.uuid4().hex[:6]}"
            await send(
                merchant,
                "merchants.products",
                cloud_event("product.submitted", second, submitted(second)),
            )
            await probe.wait_for(
                "catalog.products", type="product.listed", subject=second, timeout=60
            )
            await probe.settle()
            assert not probe.events("review.decisions", subject=forged_pid)
    finally:
        await probe.stop()
