"""Apache Kafka itself as the embedded broker: one KRaft node (broker + controller), its log
on disk, started from the jars Maven puts in its local cache.

No Docker and no download script: ``pom.xml`` beside this file names the broker's artifacts;
Maven resolves them once (``dependency:build-classpath``) from Maven Central into ``~/.m2`` and
the resulting class path is cached under ``~/.cache/vitrine`` (keyed by the pom's hash), so every
later start is offline and takes no Maven at all. Needs a JDK ≥ 17 (Kafka 4's broker minimum).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

#: Keep in step with pom.xml and docker-compose.yml's ``apache/kafka`` image.
KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17
POM = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here (no JDK ≥ 17, no Maven, or the jars cannot be fetched)."""


def java_executable() -> str | None:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major(java: str) -> int | None:
    """The major version a ``java`` binary reports (8 for ``1.8.0_…``), or None."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _cache_file() -> Path:
    root = Path(os.environ.get("VITRINE_CACHE_DIR", Path.home() / ".cache" / "vitrine"))
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return root / f"apache-kafka-{KAFKA_VERSION}-{digest}.classpath"


def cached_classpath() -> list[str] | None:
    """The class path resolved earlier, if every jar on it is still in the Maven cache."""
    path = _cache_file()
    if not path.exists():
        return None
    jars = [j for j in path.read_text().strip().split(os.pathsep) if j]
    return jars if jars and all(Path(j).exists() for j in jars) else None


def fetch_classpath() -> list[str]:
    """Resolve the broker's jars with Maven (offline first, then from Maven Central) and cache
    the class path. Raises :class:`KafkaUnavailable` with Maven's last lines on failure."""
    cached = cached_classpath()
    if cached:
        return cached
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable("Maven (mvn) is not installed, and the jars are not cached")
    target = _cache_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    base = [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath"]
    out = f"-Dmdep.outputFile={tmp}"
    last = ""
    for offline in (["-o"], []):
        proc = subprocess.run(
            [*base[:1], *offline, *base[1:], out],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode == 0 and tmp.exists():
            tmp.replace(target)
            jars = cached_classpath()
            if jars:
                return jars
        last = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    raise KafkaUnavailable(f"Maven could not resolve org.apache.kafka:kafka_2.13: {last}")


def availability() -> tuple[bool, str]:
    """Whether Apache Kafka can run here, and why (for the dev command to say)."""
    java = java_executable()
    if java is None:
        return False, "no Java found (JAVA_HOME or java on PATH)"
    major = java_major(java)
    if major is None or major < MIN_JAVA:
        return False, f"{java} is Java {major}, Apache Kafka 4 needs ≥ {MIN_JAVA}"
    if cached_classpath():
        return True, f"Java {major} and the Kafka {KAFKA_VERSION} jars (cached) are here"
    if shutil.which("mvn"):
        return True, f"Java {major} and Maven are here (jars fetched once into ~/.m2)"
    return False, f"Java {major} is here but neither Maven nor cached Kafka jars"


def cluster_id() -> str:
    """A KRaft cluster id (22 characters of url-safe base64 of a UUID)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class ApacheKafkaNode:
    """One KRaft node: broker + controller on 127.0.0.1, log under ``data_dir``.

    ``sasl_port`` adds a SASL_PLAINTEXT listener beside the plaintext one; ``extra`` adds
    server properties (ACL authorizer, super users …).
    """

    port: int
    controller_port: int
    data_dir: Path
    extra: dict[str, str] | None = None
    sasl_port: int | None = None
    #: SCRAM-SHA-256 users (name → password) created when the log is formatted.
    scram_users: dict[str, str] | None = None

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    def properties(self) -> str:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{self.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.log_dir.resolve()),
            # One node: every internal topic has one replica. Fewer offsets/transaction
            # partitions than production's 50 make the first group join fast on 2 cores.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The controller appends a no-op record to the metadata log every 500 ms by
            # default, so that brokers and observers see a live quorum; a one-node stack has
            # nobody to tell, and an idle broker spent ~0.3 % of a core on it (measured).
            "metadata.max.idle.interval.ms": "5000",
            # Topics come from the registry (`vitrine topics ensure`), as in production.
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
        }
        props.update(self.extra or {})
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self) -> Path:
        """Write ``server.properties`` and format the log directory on first start."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(self.properties())
        if not (self.log_dir / "meta.properties").exists():
            tool = [*self._java(), "kafka.tools.StorageTool", "format"]
            proc = subprocess.run(
                # "=": an id may begin with "-" (url-safe base64), which a separate
                # argument would read as an option (format failed 1 start in 64).
                [*tool, f"--cluster-id={cluster_id()}", "-c", str(config), *self._format_extra()],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                raise KafkaUnavailable(
                    f"formatting the KRaft log failed: {proc.stdout}{proc.stderr}"
                )
        return config

    def _format_extra(self) -> list[str]:
        """SCRAM credentials are bootstrapped at format time (KRaft has no ZooKeeper to hold
        them before the broker is up)."""
        return [
            arg
            for name, password in (self.scram_users or {}).items()
            for arg in ("--add-scram", f"SCRAM-SHA-256=[name={name},password={password}]")
        ]

    def _java(self) -> list[str]:
        java = java_executable()
        if java is None:
            raise KafkaUnavailable("no Java found")
        return [
            java,
            "-Xms128m",
            "-Xmx768m",
            # Two cores: one GC thread, no JIT compile storms competing with the services.
            "-XX:+UseSerialGC",
            # No hsperfdata: its sampler wakes the JVM every 50 ms (the "VM Periodic Task"
            # thread, 0.15 % of a core idle; docs/PERFORMANCE.md). Only jps/jstat use it.
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            os.pathsep.join(fetch_classpath()),
        ]

    def command(self) -> list[str]:
        """The broker's command line (after :meth:`prepare`)."""
        return [*self._java(), "kafka.Kafka", str(self.data_dir / "server.properties")]
