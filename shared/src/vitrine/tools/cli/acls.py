"""``vitrine acls plan|apply``: the broker's ACLs for every service and upstream principal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitrine.runtime.settings import Settings
from vitrine.tools import acls
from vitrine.tools.cli._app import acls_app, options
from vitrine.tools.cli._output import console, err


@acls_app.command("plan")
def plan_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per ACL.")] = False,
) -> None:
    """Print every ACL Vitrine needs (derived from the services' definitions)."""
    for grant in acls.plan():
        if as_json:
            console.print_json(
                json.dumps(
                    {
                        "principal": f"User:{grant.principal}",
                        "resource": grant.resource,
                        "name": grant.name,
                        "operation": grant.operation,
                    }
                )
            )
        else:
            console.print(str(grant), markup=False, highlight=False)


@acls_app.command("apply")
def apply_command(
    ctx: typer.Context,
    users: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Create/update these SCRAM-SHA-256 users first: a JSON file {principal:"
                " password}, or a directory with one file per principal (a mounted Secret)."
            )
        ),
    ] = None,
) -> None:
    """Create the ACLs of the plan (as an admin: VITRINE_KAFKA_* security settings)."""
    kafka = options(ctx).kafka
    cafile = Settings(service="cli").kafka_ssl_cafile
    config = acls.admin_config(kafka.bootstrap, kafka.client_args, cafile)
    try:
        if users is not None:
            passwords = acls.read_users(users)
            if missing := sorted(set(acls.principals()) - set(passwords)):
                err.print(f"no password for {', '.join(missing)}: left as is", markup=False)
            created = acls.create_users(passwords, config)
            console.print(f"{created} SCRAM users created or updated.", markup=False)
        count = acls.apply(acls.plan(), config)
    except Exception as exc:
        err.print(f"cannot apply ACLs on {kafka.bootstrap}: {exc}", markup=False)
        raise typer.Exit(1) from None
    console.print(f"{count} ACLs in place.", markup=False)
