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
from dataclasses import dataclass, field
from pathlib import Path

#: Keep in step with pom.xml and docker-compose.yml's ``apache/kafka`` image.
KAFKA_VERSION = "4.4.0"
MIN_JAVA = 17
#: Where Debian (and Temurin's packages) install JDKs, beside the one on the PATH.
JVM_DIR = Path("/usr/lib/jvm")
#: From this Java on, one ``-XX:AOTCacheOutput`` run writes an AOT cache (JEP 514).
AOT_JAVA = 25
POM = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")

#: The broker JVM's options (the class path and the AOT cache come on top).
JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx768m",
    # Two cores: one GC thread, no JIT compile storms competing with the services.
    "-XX:+UseSerialGC",
    # No hsperfdata: its sampler wakes the JVM every 50 ms (the "VM Periodic Task"
    # thread, 0.15 % of a core idle; docs/PERFORMANCE.md). Only jps/jstat use it.
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
    f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
)


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here (no JDK ≥ 17, no Maven, or the jars cannot be fetched)."""


def java_executable() -> str | None:
    """The Java that runs the broker: ``$JAVA_HOME/bin/java`` if set (an explicit choice), else
    the newest of ``java`` on the PATH and the JDKs installed under :data:`JVM_DIR` (the PATH's
    on a tie). Newer is faster to warm up: from Java 25 the broker keeps an AOT cache
    (:meth:`ApacheKafkaNode.aot_options`)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    candidates = [on_path] if on_path else []
    candidates += sorted(str(java) for java in JVM_DIR.glob("*/bin/java"))
    majors: dict[str, int] = {}
    for java in candidates:
        real = os.path.realpath(java)
        if real not in majors and os.access(real, os.X_OK):
            majors[real] = java_major(real) or 0
    return max(majors, key=lambda java: majors[java]) if majors else None


def _major(version: str) -> int | None:
    match = re.match(r"(\d+)(?:\.(\d+))?", version)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_version(java: str) -> str | None:
    """The version a JDK's ``release`` file names beside its ``bin/``, else what ``java
    -version`` reports ("25.0.1", "17.0.15", "1.8.0_412"), or None."""
    release = Path(os.path.realpath(java)).parent.parent / "release"
    try:
        match = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return match.group(1)
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    return match.group(1) if match else None


def java_major(java: str) -> int | None:
    """The major version of a ``java`` binary (8 for ``1.8.0_…``), or None."""
    version = java_version(java)
    return _major(version) if version else None


def cache_dir() -> Path:
    """Where the resolved class path and the broker's AOT cache are kept between runs."""
    return Path(os.environ.get("VITRINE_CACHE_DIR", Path.home() / ".cache" / "vitrine"))


def _cache_file() -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"apache-kafka-{KAFKA_VERSION}-{digest}.classpath"


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
        return False, f"no Java found (JAVA_HOME, java on the PATH, {JVM_DIR})"
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
    #: (file the running broker trains its AOT cache into, the cache it becomes), if training.
    _training: tuple[Path, Path] | None = field(default=None, init=False, repr=False)
    #: The Java and AOT cache the last :meth:`command` chose ("Java 25, AOT cache mapped").
    runs_on: str = field(default="", init=False)

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

    def _java(self, aot: bool = False) -> list[str]:
        """``java`` with the broker's options and class path (and its AOT cache, for the
        broker itself: not for the format tool)."""
        java = java_executable()
        if java is None:
            raise KafkaUnavailable("no Java found")
        classpath = fetch_classpath()
        cache = self.aot_options(java, classpath) if aot else []
        return [java, *JVM_OPTIONS, *cache, "-cp", os.pathsep.join(classpath)]

    def command(self) -> list[str]:
        """The broker's command line (after :meth:`prepare`)."""
        return [*self._java(aot=True), "kafka.Kafka", str(self.data_dir / "server.properties")]

    def aot_options(self, java: str, classpath: list[str]) -> list[str]:
        """Use the broker's AOT cache, or train one in this run (Java ≥ 25).

        A young broker spends most of its idle CPU compiling itself: its JIT compiler threads
        were a third of the broker's CPU 40 s after start (docs/PERFORMANCE.md). An AOT cache
        (JEP 483/515) holds the classes loaded and linked and the method profiles of an earlier
        run, so the broker starts ~2 s sooner and compiles its hot code at once. The first
        start writes the cache when it exits cleanly (JEP 514: one ``-XX:AOTCacheOutput`` run);
        later starts map it. The cache is keyed by the Java, the class path and the options, so
        a JDK or Kafka upgrade trains a new one; a JVM that cannot use a cache ignores it.
        ``VITRINE_DEV_KAFKA_AOT=off`` turns this off.
        """
        self._training = None
        major = java_major(java)
        self.runs_on = f"Java {major}"
        off = os.environ.get("VITRINE_DEV_KAFKA_AOT", "on").lower() in {"off", "0", "false"}
        if off or (major or 0) < AOT_JAVA:
            return []
        cache = aot_cache_file(java, classpath)
        if cache.exists():
            self.runs_on += ", AOT cache mapped"
            return [f"-XX:AOTCache={cache}"]
        # Each start trains into its own file; the first clean exit wins (see exited()).
        training = cache.with_name(f"{cache.name}.{uuid.uuid4().hex[:8]}.training")
        self._training = (training, cache)
        self.runs_on += ", training its AOT cache (kept when it stops cleanly)"
        return [f"-XX:AOTCacheOutput={training}"]

    @property
    def training(self) -> bool:
        """This run writes the AOT cache as it exits (the JVM assembles it then: ~5 s here)."""
        return self._training is not None

    def exited(self, clean: bool) -> None:
        """The broker process ended: keep the AOT cache it trained if it exited by itself
        (the JVM writes the cache on its way out), else drop what it left."""
        if self._training is None:
            return
        (training, cache), self._training = self._training, None
        if clean and training.exists() and training.stat().st_size > 0 and not cache.exists():
            training.replace(cache)
        for leftover in training.parent.glob(training.name + "*"):
            leftover.unlink(missing_ok=True)


def aot_cache_file(java: str, classpath: list[str]) -> Path:
    """The broker's AOT cache for this Java, class path and set of JVM options."""
    key = "\n".join([os.path.realpath(java), java_version(java) or "", *classpath, *JVM_OPTIONS])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / f"apache-kafka-{KAFKA_VERSION}-{digest}.aot"
