"""The embedded Apache Kafka node formats its KRaft log whatever cluster id it draws."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.tools.devstack import apache_kafka


@pytest.mark.skipif(not apache_kafka.availability()[0], reason="no JDK/Kafka jars here")
def test_a_cluster_id_beginning_with_a_dash_still_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # url-safe base64 draws "-" first once in 64 ids; the format tool once read it as an option.
    monkeypatch.setattr(apache_kafka, "cluster_id", lambda: "-" + "A" * 21)
    node = apache_kafka.ApacheKafkaNode(19092, 19093, tmp_path / "kafka")
    node.prepare()
    meta = (node.log_dir / "meta.properties").read_text()
    assert f"cluster.id=-{'A' * 21}" in meta
