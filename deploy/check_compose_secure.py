"""Checks of docker-compose.secure.yml merged onto docker-compose.yml (run by check_compose.py).

What they prove: the broker, configured the way the apache/kafka image turns ``KAFKA_*``
variables into server properties, runs the ACL authorizer with no allow-by-default; every
listener a container or the host can reach requires SASL/SCRAM; the super-user side listens on
the kafka container's loopback only; every service authenticates as its own principal with a
password only it receives; the ``acls`` job creates every principal of the ACL plan and runs
after the topics and before every service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import kafka_users

SASL_MECHANISM = "SCRAM-SHA-256"
JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ADMIN_BOOTSTRAP = "127.0.0.1:9092"
PASSWORD_FILE = "/run/secrets/kafka-password"  # noqa: S105 - a path, not a credential
ACLS_COMMAND = "vitrine acls apply --users /run/secrets"


def merge(base: Any, override: Any) -> Any:
    """Compose's merge for what these files use: mappings merge, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


_SINGLE = re.compile(r"[^_]_[^_]")


def convert_key(key: str) -> str:
    """The apache/kafka image's ConvertKey (docker/resources/utility): ``_`` -> ``.``,
    ``__`` -> ``_``, ``___`` -> ``-``, lower case."""
    single = _SINGLE.sub(lambda m: m.group(0).replace("_", "."), key)
    return single.replace("___", "-").replace("__", "_").lower()


def broker_properties(env: dict[str, str]) -> dict[str, str]:
    """The server.properties the image renders from the container's ``KAFKA_*`` variables."""
    excluded = {"KAFKA_VERSION", "KAFKA_HEAP_OPT", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS"}
    excluded |= {"KAFKA_JMX_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS"}
    return {
        convert_key(k[len("KAFKA_") :]): v
        for k, v in env.items()
        if k.startswith("KAFKA_") and k not in excluded and not k.startswith("KAFKA_LOG4J")
    }


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in env.items()}


def _text(v: Any) -> str:
    return " ".join(str(x) for x in v) if isinstance(v, list) else str(v or "")


def _depends(svc: dict[str, Any]) -> dict[str, str]:
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}


def _secrets(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each secret a service receives."""
    out = []
    for s in svc.get("secrets") or []:
        if isinstance(s, str):
            out.append((s, s))
        else:
            out.append((s["source"], s.get("target", s["source"])))
    return out


def _listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {NAME: host:port}."""
    return dict(p.split("://", 1) for p in value.split(",") if "://" in p)


def check_broker(kafka: dict[str, Any], check: Callable[[bool, str], None]) -> None:
    props = broker_properties(_env(kafka))
    check(props.get("authorizer.class.name") == AUTHORIZER, f"kafka: authorizer {AUTHORIZER}")
    check(props.get("allow.everyone.if.no.acl.found") == "false", "kafka: no allow-by-default")
    check(props.get("super.users") == "User:ANONYMOUS", "kafka: super.users User:ANONYMOUS only")
    check(props.get("sasl.enabled.mechanisms") == SASL_MECHANISM, f"kafka: {SASL_MECHANISM}")
    listeners = _listeners(props.get("listeners", ""))
    protocols = dict(
        p.split(":", 1) for p in props.get("listener.security.protocol.map", "").split(",")
    )
    check(bool(listeners), "kafka: no listeners")
    for name, address in listeners.items():
        protocol = protocols.get(name, "")
        if protocol.startswith("SASL_"):
            jaas = f"listener.name.{name.lower()}.{SASL_MECHANISM.lower()}.sasl.jaas.config"
            check(props.get(jaas) == JAAS, f"kafka: {jaas} must be the SCRAM login module")
        else:
            # Its principal is ANONYMOUS, a super user: only the kafka container may reach it.
            check(
                address.startswith("127.0.0.1:"),
                f"kafka: listener {name} ({protocol or 'no protocol'}) must bind 127.0.0.1",
            )
    voters = props.get("controller.quorum.voters", "")
    check(voters.endswith("@127.0.0.1:9093"), "kafka: the controller quorum is on loopback")
    check(
        f"--bootstrap-server {ADMIN_BOOTSTRAP}"
        in _text((kafka.get("healthcheck") or {}).get("test")),
        f"kafka: healthcheck must use the admin listener {ADMIN_BOOTSTRAP}",
    )


def sasl_addresses(kafka: dict[str, Any]) -> set[str]:
    """The advertised host:port of every SASL listener (where a service may connect)."""
    props = broker_properties(_env(kafka))
    protocols = dict(
        p.split(":", 1) for p in props.get("listener.security.protocol.map", "").split(",")
    )
    advertised = _listeners(props.get("advertised.listeners", ""))
    return {a for n, a in advertised.items() if protocols.get(n, "").startswith("SASL_")}


def check_service(
    name: str, svc: dict[str, Any], addresses: set[str], check: Callable[[bool, str], None]
) -> None:
    env = _env(svc)
    who = kafka_users.service_principal(name)
    check(env.get("VITRINE_KAFKA_SASL_USERNAME") == who, f"{name}: SASL username must be {who}")
    check(env.get("VITRINE_KAFKA_SECURITY_PROTOCOL") == "SASL_PLAINTEXT", f"{name}: SASL_PLAINTEXT")
    check(env.get("VITRINE_KAFKA_SASL_MECHANISM") == SASL_MECHANISM, f"{name}: {SASL_MECHANISM}")
    check(
        env.get("VITRINE_KAFKA_BOOTSTRAP") in addresses,
        f"{name}: bootstrap {env.get('VITRINE_KAFKA_BOOTSTRAP')} is not a SASL listener",
    )
    check("VITRINE_KAFKA_SASL_PASSWORD" not in env, f"{name}: no password in the environment")
    check(
        _secrets(svc) == [(who, "kafka-password")],
        f"{name}: must receive exactly its own secret {who} as kafka-password",
    )
    command = _text(svc.get("command"))
    check(
        PASSWORD_FILE in command and "exec python -m" in command,
        f"{name}: command must read {PASSWORD_FILE} and exec the service",
    )
    check(
        _depends(svc).get("acls") == "service_completed_successfully",
        f"{name}: must wait for acls to complete successfully",
    )
    check("network_mode" not in svc, f"{name}: must not share the kafka container's network")


def check_admin_job(name: str, svc: dict[str, Any], check: Callable[[bool, str], None]) -> None:
    check(svc.get("network_mode") == "service:kafka", f"{name}: network_mode service:kafka")
    env = _env(svc)
    check(
        env.get("VITRINE_KAFKA_BOOTSTRAP") == ADMIN_BOOTSTRAP,
        f"{name}: bootstrap {ADMIN_BOOTSTRAP}",
    )
    check(
        env.get("VITRINE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "PLAINTEXT",
        f"{name}: the admin listener is PLAINTEXT",
    )
    check(svc.get("restart") == "no", f'{name}: restart must be "no" (one-shot job)')


def check_secure(
    base: dict[str, Any], override: dict[str, Any], services: Iterable[str]
) -> list[str]:
    """Every problem of the merged files, as messages (empty: all good)."""
    errors: list[str] = []

    def check(cond: bool, msg: str) -> None:
        if not cond:
            errors.append(f"secure: {msg}")

    doc = merge(base, override)
    svcs: dict[str, Any] = doc.get("services") or {}
    services = list(services)
    missing = sorted(set(kafka_users.services()) - set(services))
    check(not missing, f"services of the ACL plan missing from compose: {missing}")
    check("acls" in svcs, "an `acls` one-shot service")
    kafka = svcs.get("kafka") or {}
    check_broker(kafka, check)
    addresses = sasl_addresses(kafka)
    for name in services:
        if name in svcs:
            check_service(name, svcs[name], addresses, check)
    usernames = [_env(svcs[n]).get("VITRINE_KAFKA_SASL_USERNAME") for n in services if n in svcs]
    check(len(usernames) == len(set(usernames)), f"two services share a principal: {usernames}")
    sources = [src for n in services if n in svcs for src, _ in _secrets(svcs[n])]
    check(len(sources) == len(set(sources)), f"two services share a password: {sources}")

    everyone = set(kafka_users.principals())
    declared = doc.get("secrets") or {}
    check(set(declared) == everyone, f"top-level secrets must be the principals {sorted(everyone)}")
    for who, spec in declared.items():
        check(
            str((spec or {}).get("file", "")).endswith(f"/{who}"), f"secret {who}: file .../{who}"
        )
    if "topics" in svcs:
        check_admin_job("topics", svcs["topics"], check)
    acls = svcs.get("acls") or {}
    if acls:
        check_admin_job("acls", acls, check)
        check(ACLS_COMMAND in _text(acls.get("command")), f"acls: must run `{ACLS_COMMAND}`")
        received = {target for _, target in _secrets(acls)}
        check(received == everyone, "acls: must receive every principal's password")
        check(
            all(src == target for src, target in _secrets(acls)),
            "acls: each secret under its principal's name",
        )
        dep = _depends(acls)
        check(dep.get("kafka") == "service_healthy", "acls: must wait for kafka healthy")
        check(dep.get("topics") == "service_completed_successfully", "acls: after topics")
    return errors
