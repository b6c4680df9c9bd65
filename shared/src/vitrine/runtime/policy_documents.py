"""How a service keeps its :class:`~vitrine.contract.policy_kernel.PolicyState` projection in
MongoDB: one document per policy, the rules and exemptions as the contract dumps them."""

from __future__ import annotations

from typing import TypeVar

from pydantic import TypeAdapter

from vitrine.contract.events import Exemptions, Rule, dump
from vitrine.contract.policy_kernel import PolicyState
from vitrine.runtime.mongo import Document

__all__ = ["policy_fields", "policy_from_document"]

P = TypeVar("P", bound=PolicyState)
_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


def policy_fields(policy: PolicyState) -> Document:
    """The policy's stored fields (without ``_id``: the policy id is the document's key)."""
    return {
        "rules": [r.model_dump(mode="json", exclude_none=True) for r in policy.rules],
        "exemptions": dump(policy.exemptions),
        "phases": sorted(policy.phases),
        "lifted": policy.lifted,
    }


def policy_from_document(doc: Document, cls: type[P]) -> P:
    """The ``cls`` projection of a document :func:`policy_fields` wrote, keyed by policy id."""
    return cls(
        policy_id=doc["_id"],
        rules=tuple(_RULE.validate_python(r, strict=False) for r in doc.get("rules", [])),
        exemptions=Exemptions.model_validate(doc.get("exemptions") or {}, strict=False),
        phases=frozenset(doc.get("phases", [])),
        lifted=bool(doc.get("lifted")),
    )
