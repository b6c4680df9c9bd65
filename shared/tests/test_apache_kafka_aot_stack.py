"""The embedded Apache Kafka on Java ≥ 25 trains its AOT cache in its first run, keeps it when it
stops cleanly, and maps it when it starts again (the cache file is in the JVM's memory map)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.tools.devstack import EmbeddedStack, apache_kafka, free_port

java = apache_kafka.java_executable()
major = (apache_kafka.java_major(java) if java else None) or 0
pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        not apache_kafka.availability()[0] or major < apache_kafka.AOT_JAVA,
        reason=f"needs Apache Kafka on Java ≥ {apache_kafka.AOT_JAVA}",
    ),
]


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_broker_trains_its_aot_cache_then_maps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classpath = apache_kafka.fetch_classpath()  # from the usual cache, before moving it
    monkeypatch.setattr(apache_kafka, "fetch_classpath", lambda: classpath)
    monkeypatch.setenv("VITRINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VITRINE_DEV_KAFKA_AOT", raising=False)
    (tmp_path / "cache").mkdir()
    stack = EmbeddedStack(free_port(), free_port(), tmp_path / "data", broker="apache")
    with stack:
        assert stack.kafka is not None
        assert "training" in stack.kafka.runs_on
        stack.stop_kafka()
        [cache] = (tmp_path / "cache").glob("*.aot")
        assert not list((tmp_path / "cache").glob("*.training*"))

        stack.start_kafka()
        assert stack.kafka.runs_on.endswith("AOT cache mapped")
        assert str(cache) in mapped(stack.processes["kafka"].pid)
        assert "AOT cache mapped" in stack.describe()
