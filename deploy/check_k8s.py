#!/usr/bin/env python3
"""Check the Kubernetes manifests in deploy/k8s without a cluster.

Two modes, both run by deploy/check.sh:
  python3 deploy/check_k8s.py                       resolve kustomization.yaml's resources
                                                    itself (files only, plus the namespace,
                                                    labels and configMapGenerator)
  python3 deploy/check_k8s.py --rendered FILE|-     check what `kubectl kustomize deploy/k8s`
                                                    produced (hash-suffixed ConfigMap names,
                                                    namespaces and labels as applied)

Checks: every Deployment has /healthz liveness+startup and /readyz readiness probes on the
`http` port, resources, a non-root read-only security context with a /tmp emptyDir, a preStop
drain, scrape annotations, the shared config and secret, and its own Kafka principal
(vitrine-<service>, password from its own key of Secret vitrine-kafka-users); each has a Service
and a PDB whose selectors pick exactly its pods; the topics and ACL Jobs run as the admin
principal; every principal of `vitrine acls plan` has a key in the example Secret; and the
service files stay in step. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import Any

import kafka_users
import yaml

K8S = Path(__file__).resolve().parent / "k8s"
SERVICE_PY = K8S.parents[1] / "shared/src/vitrine/runtime/service.py"
PRESTOP_SECONDS = 5
NAMESPACE = "vitrine"
PART_OF = ("app.kubernetes.io/part-of", "vitrine")
SERVICES = [
    "catalog",
    "review",
    "showcase",
    "distribution",
    "compliance",
    "live",
    "selection",
    "dashboard",
]
CONFIG = "vitrine-config"
SECRET = "vitrine-secrets"  # noqa: S105 - the Secret object's name, not a credential
USERS_SECRET = "vitrine-kafka-users"  # noqa: S105 - one key per Kafka principal
ADMIN_SECRET = "vitrine-kafka-admin"  # noqa: S105 - the super user of the two Jobs
USERS_MOUNT = "/secrets/kafka-users"
CONFIG_KEYS = {
    "VITRINE_KAFKA_BOOTSTRAP": None,  # any value: it is per cluster
    "VITRINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    # What `vitrine acls apply --users` creates credentials for.
    "VITRINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "VITRINE_KAFKA_IDEMPOTENT": "true",
    "VITRINE_LOG_FORMAT": "json",
}
SECRET_KEYS = {"VITRINE_MONGO_URL"}
ADMIN_KEYS = {"VITRINE_KAFKA_SASL_USERNAME", "VITRINE_KAFKA_SASL_PASSWORD"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "CustomResourceDefinition",
}

errors: list[str] = []


def shutdown_seconds() -> float:
    """The service's own shutdown bound, read from the runtime (HTTP drain + every step)."""
    values: dict[str, Any] = {}
    for node in ast.parse(SERVICE_PY.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            name = getattr(target, "id", "")
            if name in ("HTTP_GRACEFUL_SECONDS", "SHUTDOWN_STEP_SECONDS") and node.value:
                values[name] = ast.literal_eval(node.value)
    return float(values["HTTP_GRACEFUL_SECONDS"] + sum(values["SHUTDOWN_STEP_SECONDS"].values()))


def check(cond: bool, msg: str) -> None:
    if not cond:
        errors.append(msg)


def load_docs(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        errors.append(f"{path.name}: invalid YAML: {e}")
        return []
    for d in docs:
        check(
            isinstance(d, dict)
            and {"apiVersion", "kind", "metadata"} <= d.keys()
            and bool(d["metadata"].get("name")),
            f"{path.name}: every document needs apiVersion, kind and metadata.name",
        )
    return docs


# --------------------------------------------------------------------------------------------
# resolving the kustomization (the subset this directory uses)
# --------------------------------------------------------------------------------------------


def resolve(kdir: Path) -> list[dict[str, Any]]:
    kust = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    check_kustomization(kdir, kust)
    objs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        target = kdir / res
        if "://" in res:
            errors.append(f"kustomization: remote resource {res} cannot be checked offline")
        elif target.is_dir():
            objs += resolve(target)
        elif target.is_file():
            objs += load_docs(target)
        else:
            errors.append(f"kustomization: resource {res} does not exist")
    for gen in kust.get("configMapGenerator", []):
        data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": gen["name"]},
                "data": data,
            }
        )
    ns = kust.get("namespace")
    pairs = {}
    for block in kust.get("labels", []):
        pairs.update(block.get("pairs", {}))
    pairs.update(kust.get("commonLabels", {}))
    for o in objs:
        md = o.setdefault("metadata", {})
        if ns and o.get("kind") not in CLUSTER_SCOPED:
            md["namespace"] = ns
        md.setdefault("labels", {}).update(pairs)
        tmpl = (o.get("spec") or {}).get("template")
        if tmpl:
            tmpl.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    return objs


def check_kustomization(kdir: Path, kust: dict[str, Any]) -> None:
    check(kust.get("namespace") == NAMESPACE, f"kustomization: namespace must be {NAMESPACE}")
    labels = dict(kust.get("commonLabels", {}))
    for block in kust.get("labels", []):
        labels.update(block.get("pairs", {}))
    check(labels.get(PART_OF[0]) == PART_OF[1], f"kustomization: label {PART_OF[0]}={PART_OF[1]}")
    gens = {g["name"]: g for g in kust.get("configMapGenerator", [])}
    check(CONFIG in gens, f"kustomization: configMapGenerator {CONFIG} missing")
    lits = dict(lit.split("=", 1) for lit in gens.get(CONFIG, {}).get("literals", []))
    for key, want in CONFIG_KEYS.items():
        check(
            key in lits and (want is None or lits[key] == want),
            f"kustomization: {CONFIG} needs {key}" + (f"={want}" if want else ""),
        )
    resources = set(kust.get("resources", []))
    check(
        "secret.example.yaml" not in resources,
        "kustomization: secret.example.yaml must not be a resource (example values)",
    )
    # A manifest that exists but is not listed is silently never deployed.
    for f in sorted(kdir.glob("*.yaml")):
        if f.name not in ("kustomization.yaml", "secret.example.yaml"):
            check(f.name in resources, f"kustomization: {f.name} is not listed in resources")


def check_secret_example(kdir: Path) -> None:
    docs = load_docs(kdir / "secret.example.yaml")
    secrets = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret"}
    names = {SECRET, USERS_SECRET, ADMIN_SECRET}
    check(set(secrets) == names, f"secret.example.yaml: must define the Secrets {sorted(names)}")

    def keys(name: str) -> set[str]:
        s = secrets.get(name) or {}
        return set(s.get("stringData") or {}) | set(s.get("data") or {})

    check(keys(SECRET) >= SECRET_KEYS, f"secret.example.yaml: {SECRET} needs {sorted(SECRET_KEYS)}")
    check(
        not keys(SECRET) & ADMIN_KEYS,
        f"secret.example.yaml: {SECRET} must hold no Kafka user (each service has its own)",
    )
    check(keys(ADMIN_SECRET) == ADMIN_KEYS, f"secret.example.yaml: {ADMIN_SECRET} keys")
    # Every principal of `vitrine acls plan`, nothing else: a new service or upstream in
    # vitrine.tools.acls that is missing here fails the check.
    everyone = set(kafka_users.principals())
    check(
        keys(USERS_SECRET) == everyone,
        f"secret.example.yaml: {USERS_SECRET} keys must be the principals {sorted(everyone)}"
        f" (missing {sorted(everyone - keys(USERS_SECRET))},"
        f" extra {sorted(keys(USERS_SECRET) - everyone)})",
    )


def check_in_step(kdir: Path) -> None:
    """The five service files are one template; a fix in one must reach all."""
    texts = {
        # whole words: "live" is also in "livenessProbe"
        s: re.sub(rf"\b{s}\b", "NAME", (kdir / f"{s}.yaml").read_text())
        for s in SERVICES
        if (kdir / f"{s}.yaml").is_file()
    }
    base = texts.get(SERVICES[0])
    for s, t in texts.items():
        check(t == base, f"{s}.yaml: differs from {SERVICES[0]}.yaml beyond the service name")


# --------------------------------------------------------------------------------------------
# checks on the objects
# --------------------------------------------------------------------------------------------


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def probe(c: dict[str, Any], kind: str, path: str, where: str) -> None:
    p = c.get(kind) or {}
    get = p.get("httpGet") or {}
    check(
        get.get("path") == path and get.get("port") in ("http", 8000),
        f"{where}: {kind} must be httpGet {path} on port http",
    )


def check_pod_security(spec: dict[str, Any], c: dict[str, Any], where: str) -> None:
    psc, csc = spec.get("securityContext") or {}, c.get("securityContext") or {}
    check(csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot")
    check(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    check(
        "ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
        f"{where}: drop ALL capabilities",
    )
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    tmp = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == "/tmp"]  # noqa: S108
    check(
        bool(tmp) and "emptyDir" in vols.get(tmp[0]["name"], {}),
        f"{where}: /tmp must be an emptyDir (read-only root filesystem)",
    )


def check_env_sources(
    c: dict[str, Any], configmaps: set[str], where: str, secret: str = SECRET
) -> None:
    refs = c.get("envFrom", [])
    cms = [r["configMapRef"]["name"] for r in refs if "configMapRef" in r]
    secs = [r["secretRef"]["name"] for r in refs if "secretRef" in r]
    check(
        any(n == CONFIG or n.startswith(CONFIG + "-") for n in cms),
        f"{where}: envFrom configMapRef {CONFIG}",
    )
    for n in cms:
        check(n in configmaps, f"{where}: configMapRef {n} matches no ConfigMap in the output")
    check(secret in secs, f"{where}: envFrom secretRef {secret}")
    others = {SECRET, ADMIN_SECRET} - {secret}
    check(not others & set(secs), f"{where}: envFrom must not read {sorted(others & set(secs))}")


def check_deployment(d: dict[str, Any], name: str, configmaps: set[str]) -> dict[str, str]:
    where = f"Deployment/{name}"
    spec = d.get("spec") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    check(
        selects((spec.get("selector") or {}).get("matchLabels") or {}, labels),
        f"{where}: selector must match the pod template labels",
    )
    check(spec.get("replicas", 1) >= 2, f"{where}: replicas >= 2 (a PDB of minAvailable 1)")
    pod = tmpl.get("spec") or {}
    ann = (tmpl.get("metadata") or {}).get("annotations") or {}
    check(
        ann.get("prometheus.io/scrape") == "true"
        and ann.get("prometheus.io/port") == "8000"
        and ann.get("prometheus.io/path") == "/metrics",
        f"{where}: prometheus annotations",
    )
    grace, bound = (
        pod.get("terminationGracePeriodSeconds") or 30,
        PRESTOP_SECONDS + shutdown_seconds(),
    )
    check(
        grace >= bound + 10,
        f"{where}: terminationGracePeriodSeconds {grace} < preStop + shutdown bound {bound} + 10",
    )
    containers = pod.get("containers") or []
    check(len(containers) == 1, f"{where}: exactly one container")
    if not containers:
        return labels
    c = containers[0]
    image = str(c.get("image", ""))
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image
    check(repo.rsplit("/", 1)[-1] == name, f"{where}: image must be .../{name}[:tag] ({image})")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    check(ports.get("http") == 8000, f"{where}: containerPort 8000 named http")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    check(env.get("VITRINE_SERVICE") == name, f"{where}: env VITRINE_SERVICE={name}")
    check_env_sources(c, configmaps, where)
    check_principal(c, name, where)
    probe(c, "livenessProbe", "/healthz", where)
    probe(c, "startupProbe", "/healthz", where)
    probe(c, "readinessProbe", "/readyz", where)
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    check(
        req.get("cpu") == "100m" and req.get("memory") == "128Mi",
        f"{where}: requests cpu 100m memory 128Mi",
    )
    check(lim.get("memory") == "256Mi", f"{where}: limits memory 256Mi")
    pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
    check(pre == ["sleep", "5"], f"{where}: preStop sleep 5 for a graceful drain")
    check_pod_security(pod, c, where)
    return labels


def check_principal(c: dict[str, Any], name: str, where: str) -> None:
    """The Deployment authenticates as its own principal, with its own password only."""
    env = {e["name"]: e for e in c.get("env", [])}
    who = kafka_users.service_principal(name)
    check(
        (env.get("VITRINE_KAFKA_SASL_USERNAME") or {}).get("value") == who,
        f"{where}: env VITRINE_KAFKA_SASL_USERNAME={who}",
    )
    ref = ((env.get("VITRINE_KAFKA_SASL_PASSWORD") or {}).get("valueFrom") or {}).get(
        "secretKeyRef"
    ) or {}
    check(
        ref.get("name") == USERS_SECRET and ref.get("key") == who,
        f"{where}: VITRINE_KAFKA_SASL_PASSWORD from secretKeyRef {USERS_SECRET}/{who}",
    )


def check_jobs(jobs: dict[str, dict[str, Any]], configmaps: set[str]) -> None:
    """vitrine-topics and vitrine-acls, both as the admin principal."""
    check(
        set(jobs) == {"vitrine-topics", "vitrine-acls"}, "Jobs must be vitrine-topics, vitrine-acls"
    )
    for jname, job in jobs.items():
        where = f"Job/{jname}"
        pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        c = (pod.get("containers") or [{}])[0]
        cmd = " ".join([*c.get("command", []), *c.get("args", [])])
        want = "vitrine topics ensure" if jname == "vitrine-topics" else "vitrine acls apply"
        check(want in cmd, f"{where}: must run `{want}`")
        check(pod.get("restartPolicy") in ("Never", "OnFailure"), f"{where}: restartPolicy")
        check_env_sources(c, configmaps, where, secret=ADMIN_SECRET)
        check_pod_security(pod, c, where)
        if jname != "vitrine-acls":
            continue
        check(f"--users {USERS_MOUNT}" in cmd, f"{where}: must pass --users {USERS_MOUNT}")
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        secret = (vols.get(mounts.get(USERS_MOUNT, "")) or {}).get("secret") or {}
        check(
            secret.get("secretName") == USERS_SECRET and not secret.get("items"),
            f"{where}: {USERS_MOUNT} must be the whole Secret {USERS_SECRET}",
        )


def check_objects(objs: list[dict[str, Any]], rendered: bool) -> int:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o.get("kind", "?"), {})[o["metadata"]["name"]] = o
        md = o["metadata"]
        if o.get("kind") not in CLUSTER_SCOPED:
            check(
                md.get("namespace") == NAMESPACE,
                f"{o['kind']}/{md['name']}: namespace must be {NAMESPACE}",
            )
        check(
            (md.get("labels") or {}).get(PART_OF[0]) == PART_OF[1],
            f"{o['kind']}/{md['name']}: label {PART_OF[0]}={PART_OF[1]}",
        )
    check(NAMESPACE in by_kind.get("Namespace", {}), f"Namespace {NAMESPACE} missing")
    configmaps = set(by_kind.get("ConfigMap", {}))
    cm = [v for k, v in by_kind.get("ConfigMap", {}).items() if k.startswith(CONFIG)]
    check(len(cm) == 1, f"exactly one ConfigMap {CONFIG}[-hash]")
    if rendered:
        check(
            not any(k == CONFIG for k in configmaps),
            f"rendered {CONFIG} should carry a content hash (rolls pods on change)",
        )
    deployments = by_kind.get("Deployment", {})
    check(set(deployments) == set(SERVICES), f"Deployments must be {SERVICES}")
    pod_labels = {n: check_deployment(d, n, configmaps) for n, d in deployments.items()}
    for name, labels in pod_labels.items():
        svc = by_kind.get("Service", {}).get(name)
        check(svc is not None, f"Service/{name} missing")
        if svc:
            sel = (svc.get("spec") or {}).get("selector") or {}
            check(selects(sel, labels), f"Service/{name}: selector must match its pods")
            others = [o for o, lb in pod_labels.items() if o != name and selects(sel, lb)]
            check(not others, f"Service/{name}: selector also picks {others}")
            ports = (svc.get("spec") or {}).get("ports") or []
            check(
                any(p.get("port") == 8000 and p.get("targetPort") in ("http", 8000) for p in ports),
                f"Service/{name}: port 8000 -> http",
            )
        pdb = by_kind.get("PodDisruptionBudget", {}).get(name)
        check(pdb is not None, f"PodDisruptionBudget/{name} missing")
        if pdb:
            spec = pdb.get("spec") or {}
            sel = (spec.get("selector") or {}).get("matchLabels") or {}
            check(selects(sel, labels), f"PodDisruptionBudget/{name}: selector must match")
            others = [o for o, lb in pod_labels.items() if o != name and selects(sel, lb)]
            check(not others, f"PodDisruptionBudget/{name}: selector also picks {others}")
            check(spec.get("minAvailable") == 1, f"PodDisruptionBudget/{name}: minAvailable 1")
    missing = sorted(set(kafka_users.services()) - set(deployments))
    check(not missing, f"services of the ACL plan without a Deployment: {missing}")
    check_jobs(by_kind.get("Job", {}), configmaps)
    check("Secret" not in by_kind, "no Secret in the output (secrets come from outside)")
    return len(objs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=K8S, help="kustomization directory")
    ap.add_argument("--rendered", help="output of `kubectl kustomize` (file, or - for stdin)")
    args = ap.parse_args()
    if args.rendered:
        text = sys.stdin.read() if args.rendered == "-" else Path(args.rendered).read_text()
        objs = [d for d in yaml.safe_load_all(text) if d]
        check(bool(objs), "rendered output is empty")
        mode = "rendered"
    else:
        objs = resolve(args.dir)
        check_secret_example(args.dir)
        check_in_step(args.dir)
        mode = "resolved"
    count = check_objects(objs, rendered=bool(args.rendered)) if objs else 0
    for e in errors:
        print(f"check_k8s: FAIL {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check_k8s: ok ({mode}: {count} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
