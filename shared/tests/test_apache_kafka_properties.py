"""The embedded one-node broker's settings for an idle stack (docs/PERFORMANCE.md "Idle CPU")."""

from __future__ import annotations

from pathlib import Path

from vitrine.tools.devstack.apache_kafka import ApacheKafkaNode


def props(node: ApacheKafkaNode) -> dict[str, str]:
    return dict(line.split("=", 1) for line in node.properties().splitlines())


def test_the_one_node_quorum_writes_its_liveness_record_every_5_s_not_every_half_second(
    tmp_path: Path,
) -> None:
    node = ApacheKafkaNode(19092, 19093, tmp_path)
    assert props(node)["metadata.max.idle.interval.ms"] == "5000"  # Kafka's default: 500
    # ... and a caller's own server properties still win.
    node.extra = {"metadata.max.idle.interval.ms": "500"}
    assert props(node)["metadata.max.idle.interval.ms"] == "500"
