"""Fixtures for compliance's stack tests: a movable clock, policy builders, fake reports.

(Tests import nothing from here: with ``--import-mode=importlib`` helpers travel as fixtures.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from vitrine.tools.testing.probe import Publisher, cloud_event


@dataclass
class Platform:
    """Publishes what the platform team and the enforcing services would, for one test."""

    publisher: Publisher

    @staticmethod
    def uid() -> str:
        return uuid.uuid4().hex[:8]

    @staticmethod
    def third_party_rule(platform: str, surfaces: list[str] | None = None) -> dict[str, Any]:
        """A rule touching only goods of a platform invented for the test (isolation)."""
        return {
            "kind": "disallow_source",
            "surfaces": surfaces or ["showcase", "distribution"],
            "sources": [{"kind": "third_party_platform", "platform": platform}],
        }

    def policy(
        self,
        pid: str,
        effective_at: datetime,
        enforce_existing_at: datetime | None,
        rules: list[dict[str, Any]] | None = None,
        **over: Any,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "policy_id": pid,
            "title": f"Test policy {pid}",
            "effective_at": effective_at.isoformat(),
            "enforce_existing_at": enforce_existing_at.isoformat() if enforce_existing_at else None,
            "rules": rules if rules is not None else [self.third_party_rule(f"t{self.uid()}")],
        }
        data.update(over)
        return data

    async def announce(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self.publisher.send(
            "platform.policies",
            cloud_event("policy.announced", data["policy_id"], data, source="/tests/platform"),
        )

    async def retract(self, pid: str, reason: str = "withdrawn") -> dict[str, Any]:
        return await self.publisher.send(
            "platform.policies",
            cloud_event(
                "policy.retracted",
                pid,
                {"policy_id": pid, "reason": reason},
                source="/tests/platform",
            ),
        )

    async def report(self, pid: str, service: str, phase: str, affected: int) -> dict[str, Any]:
        data = {"policy_id": pid, "service": service, "phase": phase, "affected": affected}
        return await self.publisher.send(
            "compliance.reports",
            cloud_event("enforcement.reported", pid, data, source=f"/vitrine/{service}"),
        )

    async def fact(self, topic: str, type: str, subject: str, data: dict[str, Any]) -> None:
        """An output event of another service, as compliance's projections consume it."""
        service = topic.split(".")[0]
        await self.publisher.send(
            topic, cloud_event(type, subject, data, source=f"/vitrine/{service}")
        )


@pytest.fixture
def platform(publisher: Publisher) -> Platform:
    return Platform(publisher)
