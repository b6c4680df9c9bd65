"""Which real stack the tests talk to (DESIGN.md §1 "tests"):

- ``external``: ``VITRINE_TEST_KAFKA`` and ``VITRINE_TEST_MONGO`` name running servers;
- ``docker``: a Docker engine answers → testcontainers with Apache Kafka and a single-node
  MongoDB replica set (transactions on);
- ``embedded``: otherwise a broker + nx-27017 on free loopback ports: Apache Kafka where a JDK
  ≥ 17 is (``VITRINE_DEV_KAFKA=apache|tansu`` chooses), else Tansu.
``VITRINE_TEST_STACK=embedded|docker|external`` forces one; ``external`` on Tansu also needs
``VITRINE_KAFKA_STANDIN=tansu``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vitrine.contract.topics import ensure_topics, wait_for_topics
from vitrine.tools.devstack import EmbeddedStack, free_port


@dataclass(frozen=True)
class StackInfo:
    """Where the test stack listens."""

    kind: str
    kafka_bootstrap: str
    mongo_url: str
    embedded: EmbeddedStack | None = None
    #: ``VITRINE_KAFKA_STANDIN`` for this broker (``tansu`` on the embedded Tansu).
    kafka_standin: str = "none"

    @property
    def broker(self) -> str:
        """``apache`` (Apache Kafka: embedded, Docker or external) or ``tansu``."""
        return "tansu" if self.kafka_standin == "tansu" else "apache"

    def env(self) -> dict[str, str]:
        """The ``VITRINE_*`` variables pointing a service process or the CLI at this stack."""
        return {
            "VITRINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "VITRINE_MONGO_URL": self.mongo_url,
            "VITRINE_KAFKA_STANDIN": self.kafka_standin,
        }


def docker_available() -> bool:
    """True when a Docker engine answers (not merely a docker client installed)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextmanager
def test_stack() -> Iterator[StackInfo]:
    """Start (or find) the stack for a test session and stop it afterwards."""
    forced = os.environ.get("VITRINE_TEST_STACK")
    kafka, mongo = os.environ.get("VITRINE_TEST_KAFKA"), os.environ.get("VITRINE_TEST_MONGO")
    if forced == "external" or (forced is None and kafka and mongo):
        if not (kafka and mongo):
            raise RuntimeError("external stack needs VITRINE_TEST_KAFKA and VITRINE_TEST_MONGO")
        asyncio.run(_topics_ready(kafka))
        yield StackInfo(
            "external", kafka, mongo, kafka_standin=os.environ.get("VITRINE_KAFKA_STANDIN", "none")
        )
    elif forced == "docker" or (forced is None and docker_available()):
        with _docker_stack() as info:
            yield info
    else:
        with tempfile.TemporaryDirectory(prefix="vitrine-test-") as tmp:
            stack = EmbeddedStack(free_port(), free_port(), Path(tmp))
            with stack:
                print(f"\nembedded test stack: {stack.describe()}", file=sys.stderr)
                yield StackInfo(
                    "embedded",
                    stack.kafka_bootstrap,
                    stack.mongo_url,
                    stack,
                    kafka_standin=stack.kafka_standin,
                )


@contextmanager
def _docker_stack() -> Iterator[StackInfo]:
    """Apache Kafka (the same image and version as docker-compose.yml and the embedded stack)
    in KRaft mode, and MongoDB as a single-node replica set, so transactions work as in
    production. Kafka advertises a fixed host port, chosen free before the container starts."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    from vitrine.tools.devstack.apache_kafka import KAFKA_VERSION

    port = free_port()
    kafka = (
        DockerContainer(f"apache/kafka:{KAFKA_VERSION}")
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    )
    mongo = (
        DockerContainer("mongo:7.0")
        .with_command("--replSet rs0 --bind_ip_all")
        .with_exposed_ports(27017)
        .waiting_for(LogMessageWaitStrategy("Waiting for connections").with_startup_timeout(60))
    )
    with kafka, mongo:
        members = "{_id:'rs0',members:[{_id:0,host:'localhost:27017'}]}"
        mongo.exec(["mongosh", "--quiet", "--eval", f"rs.initiate({members})"])
        host, mport = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        url = f"mongodb://{host}:{mport}/?directConnection=true&journal=true"
        _wait_for_primary(url)
        bootstrap = f"127.0.0.1:{port}"
        asyncio.run(_topics_ready(bootstrap))
        yield StackInfo("docker", bootstrap, url)


def _wait_for_primary(url: str, timeout: float = 60.0) -> None:
    """Until the replica set has elected its primary (transactions fail before that)."""
    import time

    from pymongo import MongoClient

    deadline = time.monotonic() + timeout
    client: MongoClient[dict[str, object]]
    with MongoClient(url, serverSelectionTimeoutMS=2000) as client:
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the MongoDB replica set at {url} elected no primary")
            time.sleep(0.5)


async def _topics_ready(bootstrap: str) -> None:
    """Every topic created and in the broker's metadata before a test subscribes."""
    await ensure_topics(bootstrap)
    await wait_for_topics(bootstrap)
