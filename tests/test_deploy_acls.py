"""The deployment files give every principal of the ACL plan its credentials (issue 11 item 7).

``deploy/kafka_users.py`` reads the principals from ``vitrine.tools.acls``'s source (the deploy
checks run without the workspace); these tests prove that reading equals ``acls.principals()``,
and that the deploy checks fail when the Kubernetes manifests or the compose override leave a
principal out or let two services share one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from vitrine.tools import acls

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(DEPLOY))
    try:
        spec = importlib.util.spec_from_file_location(name, DEPLOY / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(DEPLOY))


kafka_users = _load("kafka_users")
compose_secure = _load("check_compose_secure")


def yaml_python() -> str:
    """An interpreter with PyYAML for the deploy checks (they run outside the workspace)."""
    tools = Path(os.environ.get("VITRINE_TOOLS_DIR", Path.home() / ".cache/vitrine-deploy-tools"))
    for python in (str(tools / "bin/python"), shutil.which("python3") or ""):
        if python and Path(python).exists():
            probe = subprocess.run([python, "-c", "import yaml"], capture_output=True, check=False)
            if probe.returncode == 0:
                return python
    pytest.skip("no python3 with PyYAML for the deploy checks (make check-deploy installs one)")


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [yaml_python(), *args], capture_output=True, text=True, cwd=ROOT, check=False, timeout=60
    )


def test_the_deploy_scripts_read_the_principals_of_the_plan() -> None:
    assert kafka_users.principals() == acls.principals()
    assert kafka_users.services() == list(acls.SERVICES)
    assert kafka_users.upstream_principals() == sorted(acls.UPSTREAM_WRITERS)
    assert all(kafka_users.service_principal(s) == acls.service_principal(s) for s in acls.SERVICES)


def test_the_image_turns_kafka_variables_into_server_properties() -> None:
    convert = compose_secure.convert_key
    assert convert("ALLOW_EVERYONE_IF_NO_ACL_FOUND") == "allow.everyone.if.no.acl.found"
    assert (
        convert("LISTENER_NAME_CLIENTS_SCRAM___SHA___256_SASL_JAAS_CONFIG")
        == "listener.name.clients.scram-sha-256.sasl.jaas.config"
    )
    assert convert("LOG__CLEANER_X") == "log_cleaner.x"
    props = compose_secure.broker_properties(
        {"KAFKA_SUPER_USERS": "User:ANONYMOUS", "KAFKA_OPTS": "-Dx", "OTHER": "1"}
    )
    assert props == {"super.users": "User:ANONYMOUS"}


def test_password_files_are_created_kept_and_rotated(tmp_path: Path) -> None:
    where = tmp_path / "secrets" / "kafka-users"
    assert kafka_users.ensure_passwords(where, set()) == acls.principals()
    before = {f.name: f.read_text() for f in where.iterdir()}
    assert kafka_users.ensure_passwords(where, set()) == []
    assert kafka_users.ensure_passwords(where, {"vitrine-catalog"}) == ["vitrine-catalog"]
    after = {f.name: f.read_text() for f in where.iterdir()}
    assert after["vitrine-catalog"] != before["vitrine-catalog"]
    assert {k: v for k, v in after.items() if k != "vitrine-catalog"} == {
        k: v for k, v in before.items() if k != "vitrine-catalog"
    }
    assert len(set(after.values())) == len(after)
    assert (where.parent.stat().st_mode & 0o777) == 0o700
    with pytest.raises(SystemExit, match="mallory"):
        kafka_users.ensure_passwords(where, {"mallory"})
    # … in the layout `vitrine acls apply --users DIR` reads.
    assert acls.read_users(where) == {k: v.rstrip("\n") for k, v in after.items()}


def test_read_users_takes_a_secret_volume_or_a_json_file(tmp_path: Path) -> None:
    # A Kubernetes Secret volume: keys are symlinks into a hidden, timestamped directory.
    data = tmp_path / "..2024_01_01"
    data.mkdir()
    (data / "vitrine-catalog").write_text("s3cret\n")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "vitrine-catalog").symlink_to("..data/vitrine-catalog")
    assert acls.read_users(tmp_path) == {"vitrine-catalog": "s3cret"}

    users = tmp_path.parent / "users.json"
    users.write_text(json.dumps({"vitrine-review": "x"}))
    assert acls.read_users(users) == {"vitrine-review": "x"}
    users.write_text(json.dumps(["vitrine-review"]))
    with pytest.raises(ValueError, match="principal"):
        acls.read_users(users)


def test_admin_config_trusts_the_private_ca_on_tls_only() -> None:
    sasl = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"}
    assert acls.admin_config("k:9093", sasl, "/ca.pem")["ssl.ca.location"] == "/ca.pem"
    plain = acls.admin_config("k:9092", {"security_protocol": "PLAINTEXT"}, "/ca.pem")
    assert "ssl.ca.location" not in plain


def test_the_deploy_checks_pass_on_the_committed_files() -> None:
    secure = run_check(
        "deploy/check_compose.py", "docker-compose.yml", "--secure", "docker-compose.secure.yml"
    )
    assert secure.returncode == 0, secure.stderr
    k8s = run_check("deploy/check_k8s.py")
    assert k8s.returncode == 0, k8s.stderr


def test_the_compose_check_fails_without_a_principal_or_with_a_shared_one(
    tmp_path: Path,
) -> None:
    text = (ROOT / "docker-compose.secure.yml").read_text()
    dropped = tmp_path / "dropped.yml"
    dropped.write_text(text.replace("      - upstream-orders\n", ""))
    result = run_check("deploy/check_compose.py", "docker-compose.yml", "--secure", str(dropped))
    assert result.returncode == 1
    assert "acls: must receive every principal's password" in result.stderr

    shared = tmp_path / "shared.yml"
    shared.write_text(text.replace("source: vitrine-review", "source: vitrine-catalog"))
    result = run_check("deploy/check_compose.py", "docker-compose.yml", "--secure", str(shared))
    assert result.returncode == 1
    assert "two services share a password" in result.stderr


def test_the_k8s_check_fails_when_a_principal_has_no_password(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", k8s)
    example = k8s / "secret.example.yaml"
    example.write_text(example.read_text().replace("  upstream-orders: change-me\n", ""))
    result = run_check("deploy/check_k8s.py", "--dir", str(k8s))
    assert result.returncode == 1
    assert "missing ['upstream-orders']" in result.stderr

    shutil.copy(DEPLOY / "k8s/secret.example.yaml", example)
    review = k8s / "review.yaml"
    review.write_text(review.read_text().replace("key: vitrine-review", "key: vitrine-catalog"))
    result = run_check("deploy/check_k8s.py", "--dir", str(k8s))
    assert result.returncode == 1
    assert "secretKeyRef vitrine-kafka-users/vitrine-review" in result.stderr


def test_the_plan_gives_each_service_its_own_outputs_only() -> None:
    plan = acls.plan()
    writes = {(g.principal, g.name) for g in plan if g.operation == "WRITE"}
    assert ("vitrine-review", "review.decisions") in writes
    assert ("vitrine-catalog", "catalog.products") in writes
    assert ("vitrine-catalog", "merchants.products.dlq") in writes
    assert ("vitrine-catalog", "review.decisions") not in writes
    assert ("vitrine-review", "catalog.products") not in writes
    assert not any(p == "operator" for p, _ in writes)
    # every input topic has exactly one upstream writer
    upstream = [t for topics in acls.UPSTREAM_WRITERS.values() for t in topics]
    assert len(upstream) == len(set(upstream))
