"""The stand-in profiles: production paths unless a stand-in is named or detected."""

from __future__ import annotations

import pytest

from vitrine.runtime.settings import Settings
from vitrine.runtime.standins import MONGOD, NX_27017, database_profile


def test_apache_kafka_is_the_default_with_idempotence_and_kafkas_fetch_wait() -> None:
    s = Settings(service="x")
    assert s.broker.name == "kafka"
    assert s.idempotent_producer is True
    assert s.fetch_wait_ms == 500


def test_tansu_turns_idempotence_off_and_polls_fast() -> None:
    s = Settings(service="x", kafka_standin="tansu")
    assert s.idempotent_producer is False
    assert s.fetch_wait_ms == 20
    assert s.broker.list_offsets_exact is False


def test_explicit_settings_win_over_the_profile() -> None:
    s = Settings(service="x", kafka_standin="tansu", kafka_idempotent=True, fetch_max_wait_ms=7)
    assert s.idempotent_producer is True
    assert s.fetch_wait_ms == 7


def test_nx_27017_is_recognised_by_its_build_info_and_mongod_is_the_rest() -> None:
    assert database_profile({"process": "nx_27017", "version": "7.0.0"}) is NX_27017
    assert database_profile({"version": "7.0.14", "gitVersion": "abc"}) is MONGOD
    assert NX_27017.journal_open_sessions and not MONGOD.journal_open_sessions


def test_the_services_producer_waits_for_every_replica_and_does_not_linger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """acks=all always; no linger: ``send_all`` hands a whole drain over at once, so a
    linger would only delay each hop (docs/PERFORMANCE.md)."""
    from vitrine.runtime.messaging import producer as producer_module
    from vitrine.runtime.settings import Settings

    made: dict[str, object] = {}
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", lambda **kw: made.update(kw))
    producer_module.make_producer(Settings(service="catalog"))
    assert (made["acks"], made["linger_ms"]) == ("all", 0)
