"""Which Java runs the embedded Apache Kafka, and its AOT cache: trained by the first clean run,
mapped by the next ones, dropped when a run did not end cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vitrine.tools.devstack import apache_kafka


def fake_jdk(root: Path, name: str, version: str | None, reports: str = "") -> Path:
    """A JDK directory with a ``release`` file naming ``version`` (none when None) and a
    ``bin/java`` that prints ``reports`` as ``java -version`` does (to stderr)."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    if version is not None:
        (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{reports}' >&2\n")
    java.chmod(0o755)
    return java


@pytest.fixture
def jdks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """JDK 17 on the PATH, JDK 17 and 25 under the JVM directory (17 twice, via a symlink)."""
    jvm = tmp_path / "jvm"
    found = {
        "17": fake_jdk(jvm, "java-17-openjdk-amd64", "17.0.15"),
        "25": fake_jdk(jvm, "temurin-25-jdk-amd64", "25.0.1"),
    }
    (jvm / "java-1.17.0-openjdk-amd64").symlink_to(jvm / "java-17-openjdk-amd64")
    path_bin = tmp_path / "bin"
    path_bin.mkdir()
    (path_bin / "java").symlink_to(found["17"])
    monkeypatch.setattr(apache_kafka, "JVM_DIR", jvm)
    monkeypatch.setenv("PATH", str(path_bin))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return found


def test_the_newest_installed_jdk_runs_the_broker(jdks: dict[str, Path]) -> None:
    assert apache_kafka.java_executable() == os.path.realpath(jdks["25"])


def test_java_home_is_an_explicit_choice(
    jdks: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(jdks["17"].parent.parent))
    assert apache_kafka.java_executable() == str(jdks["17"])


def test_on_a_tie_the_java_on_the_path_wins(
    jdks: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = fake_jdk(tmp_path / "elsewhere", "jdk", "25.0.1")
    (tmp_path / "bin" / "java").unlink()
    (tmp_path / "bin" / "java").symlink_to(other)
    assert apache_kafka.java_executable() == os.path.realpath(other)


def test_no_java_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apache_kafka, "JVM_DIR", tmp_path / "none")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert apache_kafka.java_executable() is None


def test_the_version_comes_from_release_else_from_java_version(tmp_path: Path) -> None:
    assert apache_kafka.java_major(str(fake_jdk(tmp_path, "a", "25.0.1"))) == 25
    bare = fake_jdk(tmp_path, "b", None, reports='openjdk version "21.0.2" 2024-01-16')
    assert apache_kafka.java_version(str(bare)) == "21.0.2"
    old = fake_jdk(tmp_path, "c", None, reports='java version "1.8.0_412"')
    assert apache_kafka.java_major(str(old)) == 8
    assert apache_kafka.java_major(str(fake_jdk(tmp_path, "d", None, reports="?"))) is None


@pytest.fixture
def node(
    jdks: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> apache_kafka.ApacheKafkaNode:
    monkeypatch.setenv("VITRINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VITRINE_DEV_KAFKA_AOT", raising=False)
    monkeypatch.setattr(apache_kafka, "fetch_classpath", lambda: ["/jars/kafka.jar"])
    (tmp_path / "cache").mkdir()
    return apache_kafka.ApacheKafkaNode(19092, 19093, tmp_path / "kafka")


def aot(node: apache_kafka.ApacheKafkaNode) -> list[str]:
    """The AOT cache options on the broker's command line."""
    return [option for option in node.command() if option.startswith("-XX:AOT")]


def option_path(options: list[str], flag: str) -> Path:
    [option] = options
    assert option.startswith(f"-XX:{flag}=")
    return Path(option.split("=", 1)[1])


def test_the_first_clean_run_trains_the_cache_the_next_maps(
    node: apache_kafka.ApacheKafkaNode,
) -> None:
    training = option_path(aot(node), "AOTCacheOutput")
    assert node.training and "training" in node.runs_on
    training.write_bytes(b"cache")  # what the JVM writes on its way out
    node.exited(clean=True)
    assert not training.exists()
    cache = option_path(aot(node), "AOTCache")
    assert cache.read_bytes() == b"cache"
    assert not node.training and node.runs_on == "Java 25, AOT cache mapped"
    node.exited(clean=True)  # a run that maps the cache leaves it alone
    assert cache.exists()


def test_a_run_killed_or_timed_out_keeps_nothing(node: apache_kafka.ApacheKafkaNode) -> None:
    training = option_path(aot(node), "AOTCacheOutput")
    training.write_bytes(b"half a cache")
    training.with_name(training.name + ".config").write_bytes(b"x")
    node.exited(clean=False)
    assert list(training.parent.iterdir()) == []
    assert option_path(aot(node), "AOTCacheOutput") != training


def test_a_clean_exit_that_wrote_nothing_keeps_nothing(
    node: apache_kafka.ApacheKafkaNode,
) -> None:
    training = option_path(aot(node), "AOTCacheOutput")
    node.exited(clean=True)
    assert list(training.parent.iterdir()) == []


def test_another_java_or_class_path_trains_its_own_cache(
    node: apache_kafka.ApacheKafkaNode, jdks: dict[str, Path]
) -> None:
    java = str(jdks["25"])
    one = apache_kafka.aot_cache_file(java, ["/jars/kafka.jar"])
    assert one != apache_kafka.aot_cache_file(java, ["/jars/kafka-4.2.jar"])
    assert one != apache_kafka.aot_cache_file(str(jdks["17"]), ["/jars/kafka.jar"])
    assert one == apache_kafka.aot_cache_file(java, ["/jars/kafka.jar"])


def test_no_cache_before_java_25_or_when_turned_off(
    node: apache_kafka.ApacheKafkaNode, jdks: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITRINE_DEV_KAFKA_AOT", "off")
    assert aot(node) == []
    monkeypatch.delenv("VITRINE_DEV_KAFKA_AOT")
    monkeypatch.setenv("JAVA_HOME", str(jdks["17"].parent.parent))
    assert aot(node) == []
    assert node.runs_on == "Java 17"
