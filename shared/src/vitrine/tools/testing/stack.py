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

from vitrine.contract.topics import ensure_topics
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
        asyncio.run(ensure_topics(kafka))
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
    """Kafka (Confluent's image in KRaft mode: the one testcontainers' KafkaContainer knows)
    and MongoDB as a single-node replica set, so transactions work as in production."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    mongo = (
        DockerContainer("mongo:7.0")
        .with_command("--replSet rs0 --bind_ip_all")
        .with_exposed_ports(27017)
    )
    with kafka, mongo:
        wait_for_logs(mongo, "Waiting for connections", timeout=60)
        members = "{_id:'rs0',members:[{_id:0,host:'localhost:27017'}]}"
        mongo.exec(["mongosh", "--quiet", "--eval", f"rs.initiate({members})"])
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        url = f"mongodb://{host}:{port}/?directConnection=true&journal=true"
        bootstrap = kafka.get_bootstrap_server()
        asyncio.run(ensure_topics(bootstrap))
        yield StackInfo("docker", bootstrap, url)
