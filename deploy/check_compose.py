#!/usr/bin/env python3
"""Check docker-compose.yml (and the docker-compose.secure.yml override) without a Docker engine.

`docker compose config -q` (run by deploy/check.sh when a compose binary is available) proves
the files are valid Compose; this script proves they are *Vitrine's* stack: the services, the
Kafka/MongoDB settings the services rely on, start-up ordering, ports and health checks; and,
with the override, that the broker enforces ACLs and every service has its own principal.

Usage: python3 deploy/check_compose.py [docker-compose.yml] [--secure docker-compose.secure.yml]
Needs PyYAML (system python3 has it; deploy/check.sh provides it in its tools venv).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "catalog": 8001,
    "review": 8002,
    "showcase": 8003,
    "distribution": 8004,
    "selection": 8007,
    "compliance": 8005,
    "live": 8006,
    "dashboard": 8008,
}
SERVICE_ENV = {
    "VITRINE_KAFKA_BOOTSTRAP": "kafka:9092",
    "VITRINE_MONGO_URL": "mongodb://mongo:27017/?replicaSet=rs0&journal=true",
    "VITRINE_LOG_FORMAT": "json",
}
KAFKA_ENV = {
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:9093",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
}

errors: list[str] = []


def embedded_kafka_version() -> str:
    """The Apache Kafka version the embedded dev stack runs (compose must run the same)."""
    import re

    source = ROOT / "shared/src/vitrine/tools/devstack/apache_kafka.py"
    found = re.search(r'^KAFKA_VERSION = "([^"]+)"', source.read_text(), re.M)
    assert found, f"KAFKA_VERSION not found in {source}"
    return found.group(1)


def check_image_tags(services: dict[str, Any]) -> None:
    """Two services that build must not tag the same image (compose would race the builds)."""
    built: dict[str, str] = {}
    for name, svc in services.items():
        if isinstance(svc, dict) and svc.get("build") and svc.get("image"):
            other = built.setdefault(svc["image"], name)
            check(other == name, f"{name} and {other} both build image {svc['image']}")


sys.path.insert(0, str(Path(__file__).resolve().parent))


def shutdown_seconds() -> float:
    """The services' own worst-case shutdown time, read from vitrine.runtime.service."""
    from check_k8s import shutdown_seconds as bound

    return bound()


def check(cond: bool, msg: str) -> None:
    if not cond:
        errors.append(msg)


def scalar(v: Any) -> str:
    """Compose accepts numbers and booleans in env maps; compare them as the string they become."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: scalar(v) for k, v in env.items()}


def command_text(v: Any) -> str:
    return " ".join(v) if isinstance(v, list) else str(v or "")


def healthcheck_text(svc: dict[str, Any]) -> str:
    return command_text((svc.get("healthcheck") or {}).get("test"))


def depends(svc: dict[str, Any]) -> dict[str, str]:
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):  # short form has no conditions
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}


def check_kafka(k: dict[str, Any]) -> None:
    wanted = f"apache/kafka:{embedded_kafka_version()}"
    check(k.get("image") == wanted, f"kafka: image must be {wanted} (the embedded broker's)")
    env = env_of(k)
    for key, want in KAFKA_ENV.items():
        check(env.get(key, "").lower() == want.lower(), f"kafka: {key} must be {want!r}")
    listeners = env.get("KAFKA_LISTENERS", "")
    for part in ("PLAINTEXT://:9092", "CONTROLLER://:9093", ":29092"):
        check(part in listeners, f"kafka: KAFKA_LISTENERS lacks {part}")
    advertised = env.get("KAFKA_ADVERTISED_LISTENERS", "")
    check("PLAINTEXT://kafka:9092" in advertised, "kafka: must advertise PLAINTEXT://kafka:9092")
    check("localhost:29092" in advertised, "kafka: must advertise localhost:29092 for the host")
    check("CONTROLLER" not in advertised, "kafka: the controller listener is not advertised")
    protocol_map = env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "")
    for name in {p.split("://")[0] for p in listeners.split(",") if "://" in p}:
        check(f"{name}:" in protocol_map, f"kafka: listener {name} missing from the protocol map")
    check(
        any("29092:29092" in str(p) for p in k.get("ports", [])),
        "kafka: port 29092 must be published to the host",
    )
    check(
        "kafka-topics.sh" in healthcheck_text(k) and "--list" in healthcheck_text(k),
        "kafka: healthcheck must list topics with kafka-topics.sh",
    )


def check_mongo(m: dict[str, Any], top_volumes: dict[str, Any]) -> None:
    check(m.get("image") == "mongo:7.0", "mongo: image must be mongo:7.0")
    cmd = command_text(m.get("command"))
    check(
        "--replSet rs0" in cmd and "--bind_ip_all" in cmd,
        "mongo: command must be --replSet rs0 --bind_ip_all",
    )
    hc = healthcheck_text(m)
    check(
        "mongosh" in hc and "rs.initiate" in hc and "isWritablePrimary" in hc,
        "mongo: healthcheck must initiate rs0 and wait for a writable primary",
    )
    check(
        "mongo:27017" in hc,
        "mongo: replica set member must be mongo:27017 (resolvable by the services)",
    )
    check("start_period" in (m.get("healthcheck") or {}), "mongo: healthcheck needs start_period")
    named = [str(v).split(":")[0] for v in m.get("volumes", []) if str(v).endswith(":/data/db")]
    check(
        bool(named) and named[0] in top_volumes,
        "mongo: /data/db must be a named volume declared under top-level volumes",
    )


def check_build(name: str, svc: dict[str, Any], service_arg: str) -> None:
    build = svc.get("build") or {}
    check(isinstance(build, dict), f"{name}: build must be a mapping")
    if not isinstance(build, dict):
        return
    check(build.get("context") == ".", f"{name}: build context must be the repository root")
    dockerfile = build.get("dockerfile")
    check(dockerfile == "deploy/Dockerfile", f"{name}: build dockerfile must be deploy/Dockerfile")
    check((ROOT / str(dockerfile)).is_file(), f"{name}: {dockerfile} does not exist")
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(a.split("=", 1) for a in args)
    check(args.get("SERVICE") == service_arg, f"{name}: build arg SERVICE must be {service_arg}")


def check_topics(t: dict[str, Any]) -> None:
    check_build("topics", t, "catalog")
    full = f"{command_text(t.get('entrypoint'))} {command_text(t.get('command'))}"
    check("vitrine topics ensure" in full, "topics: must run `vitrine topics ensure`")
    check(depends(t).get("kafka") == "service_healthy", "topics: must wait for kafka healthy")
    check(t.get("restart") == "no", 'topics: restart must be "no" (one-shot job)')
    check(
        env_of(t).get("VITRINE_KAFKA_BOOTSTRAP") == "kafka:9092",
        "topics: VITRINE_KAFKA_BOOTSTRAP must be kafka:9092",
    )


def check_service(name: str, port: int, svc: dict[str, Any]) -> None:
    check_build(name, svc, name)
    env = env_of(svc)
    for key, want in SERVICE_ENV.items():
        check(env.get(key) == want, f"{name}: {key} must be {want!r} (got {env.get(key)!r})")
    dep = depends(svc)
    check(dep.get("kafka") == "service_healthy", f"{name}: must wait for kafka healthy")
    check(dep.get("mongo") == "service_healthy", f"{name}: must wait for mongo healthy")
    check(
        dep.get("topics") == "service_completed_successfully",
        f"{name}: must wait for topics to complete successfully",
    )
    ports = [str(p) for p in svc.get("ports", [])]
    check(ports == [f"{port}:8000"], f"{name}: ports must be ['{port}:8000'] (got {ports})")
    check("/readyz" in healthcheck_text(svc), f"{name}: healthcheck must probe /readyz")
    check(svc.get("restart") == "unless-stopped", f"{name}: restart must be unless-stopped")
    grace = str(svc.get("stop_grace_period", "10s"))
    seconds = float(grace.rstrip("s")) if grace.rstrip("s").replace(".", "").isdigit() else 0.0
    bound = shutdown_seconds()
    check(
        seconds >= bound + 5,
        f"{name}: stop_grace_period {grace} is below the shutdown bound {bound:.0f} s + 5 s",
    )


def check_base(doc: dict[str, Any], raw: str) -> None:
    check("x-service" in doc and "&service" in raw, "services must share an x-service anchor")
    services = doc.get("services") or {}
    expected = {"kafka", "mongo", "topics", *SERVICES}
    check(
        set(services) == expected,
        f"services must be exactly {sorted(expected)} (got {sorted(services)})",
    )
    top_volumes = doc.get("volumes") or {}
    if "kafka" in services:
        check_kafka(services["kafka"])
    if "mongo" in services:
        check_mongo(services["mongo"], top_volumes)
    if "topics" in services:
        check_topics(services["topics"])
    for name, port in SERVICES.items():
        if name in services:
            check_service(name, port, services[name])
    check_image_tags(services)
    published = [str(p).rsplit(":", 1)[0] for s in services.values() for p in s.get("ports", [])]
    check(len(published) == len(set(published)), f"host ports collide: {published}")


def load(path: Path) -> tuple[dict[str, Any], str]:
    raw = path.read_text()
    doc = yaml.safe_load(raw)  # resolves anchors and `<<` merge keys
    check(isinstance(doc, dict), f"{path.name} must be a mapping")
    return (doc if isinstance(doc, dict) else {}), raw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("compose", nargs="?", type=Path, default=ROOT / "docker-compose.yml")
    ap.add_argument("--secure", type=Path, help="the SASL/ACL override to check on top")
    args = ap.parse_args()
    doc, raw = load(args.compose)
    if not errors:
        check_base(doc, raw)
    if args.secure and not errors:
        from check_compose_secure import check_secure

        override, _ = load(args.secure)
        errors.extend(check_secure(doc, override, SERVICES))
    return report(args.compose, secure=bool(args.secure))


def report(path: Path, secure: bool = False) -> int:
    for e in errors:
        print(f"check_compose: FAIL {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check_compose: ok ({path.name}: services, Kafka/Mongo settings, ordering, ports)")
    if secure:
        print(
            "check_compose: ok (secure override: authorizer, one principal per service, acls job)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
