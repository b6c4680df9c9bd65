"""The helpers the services share: handler wiring, JSON answers, the policy projection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from vitrine.contract.envelope import Event
from vitrine.contract.events import DisallowSource, Exemptions, SourceMatch
from vitrine.contract.policy_kernel import PolicyState
from vitrine.runtime.handlers import bind_table, stage_emitted
from vitrine.runtime.http import jsonable, not_found
from vitrine.runtime.messaging.unit_of_work import InMemoryUnitOfWork, UnitOfWork
from vitrine.runtime.policy_documents import policy_fields, policy_from_document


async def test_bind_table_hands_each_apply_its_batch_and_state() -> None:
    seen: list[tuple[str, int, str]] = []

    async def apply_a(events: list[Event[Any]], uow: UnitOfWork, state: str) -> None:
        seen.append(("a", len(events), state))

    async def apply_b(events: list[Event[Any]], uow: UnitOfWork, state: str) -> None:
        seen.append(("b", len(events), state))

    handlers = bind_table(lambda uow: f"store of {uow.service}", {"t.a": apply_a, "t.b": apply_b})
    uow = InMemoryUnitOfWork(service="svc")
    await handlers["t.b"]([], uow)
    await handlers["t.a"]([], uow)
    assert sorted(handlers) == ["t.a", "t.b"]
    assert seen == [("b", 0, "store of svc"), ("a", 0, "store of svc")]


async def test_stage_emitted_keeps_events_without_a_session() -> None:
    uow = InMemoryUnitOfWork()
    uow.emitted.append(("t", object()))  # type: ignore[arg-type]
    await stage_emitted(uow)
    assert len(uow.emitted) == 1


def test_jsonable_and_not_found() -> None:
    at = datetime(2022, 7, 1, tzinfo=UTC)
    assert jsonable({"a": [at, (at,)], "b": 1}) == {"a": [at.isoformat(), [at.isoformat()]], "b": 1}
    response = not_found(what="offer")
    assert response.status_code == 404
    assert json.loads(bytes(response.body)) == {"error": "not_found", "what": "offer"}


def test_policy_state_phases_and_documents() -> None:
    policy = PolicyState(
        "p1",
        rules=(DisallowSource(surfaces=["live"], sources=[SourceMatch(kind="mini_program")]),),
        exemptions=Exemptions(merchant_ids=["m1"]),
    )
    assert not policy.in_force and not policy.enforcing
    blocking = PolicyState("p1", phases=frozenset({"block_new"}))
    assert blocking.in_force and not blocking.enforcing
    enforcing = PolicyState("p1", phases=frozenset({"block_new", "enforce_existing"}))
    assert enforcing.in_force and enforcing.enforcing
    assert not PolicyState("p1", phases=enforcing.phases, lifted=True).in_force
    doc = {"_id": "p1", **policy_fields(policy)}
    assert policy_from_document(doc, PolicyState) == policy
