"""Who may write what, enforced by the broker: one principal per service and per upstream.

The plan is derived, not written by hand: a service may read the topics its
``ServiceDefinition`` consumes, write the topics it ``publishes`` and the dead-letter topics of
its inputs, and use its own consumer group; an upstream system may only write the input
topics it owns (``UPSTREAM_WRITERS``); operators may read everything. Nothing else is allowed
once the broker runs an authorizer (``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found
=false``): a client that publishes ``review.approved`` on ``review.decisions`` without being
review is refused by the broker (``TopicAuthorizationFailed``) before any service sees it.

``vitrine acls plan`` prints the plan; ``vitrine acls apply`` creates it with the admin client
of ``confluent-kafka`` (aiokafka has no ACL API).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vitrine.contract.topics import DLQ_SUFFIX, TOPICS

Resource = Literal["topic", "group"]
Operation = Literal["READ", "WRITE", "DESCRIBE"]

#: The services whose definitions the plan is derived from (package ``vitrine_<name>``).
SERVICES = (
    "catalog",
    "review",
    "showcase",
    "distribution",
    "compliance",
    "live",
    "selection",
    "dashboard",
)

#: Upstream systems and the input topics each may write (and nothing else).
UPSTREAM_WRITERS: dict[str, tuple[str, ...]] = {
    "upstream-accounts": ("accounts.shops",),
    "upstream-merchants": ("merchants.products", "merchants.offers"),
    "upstream-review-desk": ("review.manual",),
    "upstream-creators": ("creators.showcase", "creators.live"),
    "upstream-orders": ("orders.lifecycle",),
    "upstream-platform": ("platform.policies", "platform.actions"),
}

#: Reads every topic and describes groups (tail, dlq list, lag); writes nothing.
OPERATOR = "operator"


def service_principal(service: str) -> str:
    """The Kafka user a service authenticates as."""
    return f"vitrine-{service}"


@dataclass(frozen=True, order=True, slots=True)
class Grant:
    """One ALLOW ACL: ``User:<principal>`` may ``operation`` the literal resource ``name``."""

    principal: str
    resource: Resource
    name: str
    operation: Operation

    def __str__(self) -> str:
        return f"User:{self.principal:<24} {self.operation:<8} {self.resource} {self.name}"


def _topic_grants(principal: str, topics: Iterable[str], op: Operation) -> list[Grant]:
    return [
        g
        for t in topics
        for g in (Grant(principal, "topic", t, op), Grant(principal, "topic", t, "DESCRIBE"))
    ]


def service_grants(service: str, inputs: Sequence[str], outputs: Sequence[str]) -> list[Grant]:
    """Read its inputs, write its outputs and its inputs' DLQs, use its own group."""
    who = service_principal(service)
    return [
        *_topic_grants(who, inputs, "READ"),
        *_topic_grants(who, [*outputs, *(t + DLQ_SUFFIX for t in inputs)], "WRITE"),
        Grant(who, "group", service, "READ"),
        Grant(who, "group", service, "DESCRIBE"),
    ]


def definitions(services: Sequence[str] = SERVICES) -> dict[str, Any]:
    """Each service's ``ServiceDefinition`` (imported from its package)."""
    return {s: importlib.import_module(f"vitrine_{s}.service").DEFINITION for s in services}


def plan(services: Sequence[str] = SERVICES) -> list[Grant]:
    """Every ACL Vitrine needs, sorted and without repeats."""
    grants: set[Grant] = set()
    for name, defn in definitions(services).items():
        grants.update(service_grants(name, list(defn.handlers), list(defn.publishes)))
    for who, topics in UPSTREAM_WRITERS.items():
        grants.update(_topic_grants(who, topics, "WRITE"))
    every = [n for t in TOPICS.values() for n in (t.name, t.dlq)]
    grants.update(_topic_grants(OPERATOR, every, "READ"))
    return sorted(grants)


def principals(services: Sequence[str] = SERVICES) -> list[str]:
    """Every principal the plan names (users to create with SCRAM credentials)."""
    return sorted({g.principal for g in plan(services)})


def _bindings(grants: Iterable[Grant]) -> list[Any]:
    # confluent-kafka's stubs do not re-export these names; they are its public API.
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    return [
        AclBinding(
            kinds[g.resource],
            g.name,
            ResourcePatternType.LITERAL,
            f"User:{g.principal}",
            "*",
            getattr(AclOperation, g.operation),
            AclPermissionType.ALLOW,
        )
        for g in grants
    ]


def admin_config(
    bootstrap: str, client_args: dict[str, Any], cafile: str | None = None
) -> dict[str, Any]:
    """librdkafka settings from the same ``VITRINE_KAFKA_*`` arguments aiokafka gets
    (``cafile``: ``VITRINE_KAFKA_SSL_CAFILE``, a private CA for SSL/SASL_SSL)."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap}
    protocol = client_args.get("security_protocol", "PLAINTEXT")
    config["security.protocol"] = protocol.lower()
    if cafile and protocol in ("SSL", "SASL_SSL"):
        config["ssl.ca.location"] = cafile
    if client_args.get("sasl_mechanism"):
        config["sasl.mechanism"] = client_args["sasl_mechanism"]
        config["sasl.username"] = client_args.get("sasl_plain_username") or ""
        config["sasl.password"] = client_args.get("sasl_plain_password") or ""
    return config


def read_users(path: Path) -> dict[str, str]:
    """``{principal: password}`` from a JSON file, or from a directory holding one file per
    principal, named after it, with the password inside (a mounted Kubernetes Secret or
    Compose secrets; hidden entries such as a Secret volume's ``..data`` are skipped)."""
    if path.is_dir():
        return {
            f.name: f.read_text().rstrip("\r\n")
            for f in sorted(path.iterdir())
            if not f.name.startswith(".") and f.is_file()
        }
    users = json.loads(path.read_text())
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in users.items()
    ):
        raise ValueError(f"{path}: expected a JSON object {{principal: password}}")
    return users


def apply(grants: Sequence[Grant], config: dict[str, Any], timeout: float = 30.0) -> int:
    """Create the ACLs (creating an existing one is a no-op); returns how many were sent."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(config)
    futures = admin.create_acls(_bindings(grants), request_timeout=timeout)
    for future in futures.values():
        future.result(timeout)
    return len(grants)


def create_users(passwords: dict[str, str], config: dict[str, Any], timeout: float = 30.0) -> int:
    """Create or update SCRAM-SHA-256 credentials (KRaft keeps them in its metadata)."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialAlteration,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(config)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(u, info, p.encode()) for u, p in passwords.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
        future.result(timeout)
    return len(upserts)
