#!/usr/bin/env python3
"""Kafka principals of Vitrine, and a password file for each (SCRAM users of the broker).

The principals are those of ``vitrine acls plan`` (``vitrine.tools.acls``): ``vitrine-<service>``
for every service, ``upstream-*`` for the systems that publish the input topics, ``operator``.
They are read from that module's source, so this script needs nothing but Python 3
(tests/test_deploy_acls.py proves the reading equals ``acls.principals()``).

  python3 deploy/kafka_users.py                 create a password for every principal that has
                                                none in deploy/compose/secrets/kafka-users/
  python3 deploy/kafka_users.py --dir D         the same in D (e.g. outside the repository, then
                                                `kubectl create secret generic
                                                vitrine-kafka-users --from-file=D`)
  python3 deploy/kafka_users.py --rotate vitrine-catalog   a new password for that principal
  python3 deploy/kafka_users.py --list          print the principals, one a line

One file per principal, named after it, holding the password: the layout
``vitrine acls apply --users DIR`` reads, Compose mounts as secrets and a Kubernetes Secret
volume produces. Existing passwords are kept; nothing is ever printed.
"""

from __future__ import annotations

import argparse
import ast
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACLS_PY = ROOT / "shared/src/vitrine/tools/acls.py"
DEFAULT_DIR = ROOT / "deploy/compose/secrets/kafka-users"


def _constants(source: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            name = getattr(target, "id", "")
            if name in ("SERVICES", "UPSTREAM_WRITERS", "OPERATOR"):
                values[name] = ast.literal_eval(node.value)
    return values


def services(source: Path = ACLS_PY) -> list[str]:
    """The services the ACL plan covers (``acls.SERVICES``)."""
    return list(_constants(source)["SERVICES"])  # type: ignore[call-overload]


def service_principal(service: str) -> str:
    """The Kafka user a service authenticates as (``acls.service_principal``)."""
    return f"vitrine-{service}"


def upstream_principals(source: Path = ACLS_PY) -> list[str]:
    """The upstream publishers (``acls.UPSTREAM_WRITERS``)."""
    return sorted(_constants(source)["UPSTREAM_WRITERS"])  # type: ignore[call-overload]


def principals(source: Path = ACLS_PY) -> list[str]:
    """Every principal of the plan, sorted (``acls.principals()``)."""
    operator = str(_constants(source)["OPERATOR"])
    return sorted(
        {*(service_principal(s) for s in services(source)), *upstream_principals(source), operator}
    )


def ensure_passwords(directory: Path, rotate: set[str]) -> list[str]:
    """Write a password file for each principal that lacks one (or is to be rotated)."""
    known = principals()
    unknown = sorted(rotate - set(known))
    if unknown:
        raise SystemExit(f"not principals of the plan: {', '.join(unknown)}")
    # The parent stays private to its owner; the files are readable by the containers'
    # user (uid 10001), which sees them through a bind mount, not through this path.
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o755, exist_ok=True)
    written = []
    for who in known:
        path = directory / who
        if path.exists() and who not in rotate:
            continue
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o644)
        written.append(who)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="one file per principal")
    ap.add_argument("--rotate", action="append", default=[], metavar="PRINCIPAL")
    ap.add_argument("--list", action="store_true", help="print the principals and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(principals()))
        return 0
    written = ensure_passwords(args.dir, set(args.rotate))
    stale = sorted(f.name for f in args.dir.iterdir() if f.is_file() and f.name not in principals())
    print(f"{args.dir}: new passwords for {', '.join(written) or 'nobody'}")
    if stale:
        print(f"not in the plan any more (delete them): {', '.join(stale)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
