"""A service as its own OS process, for tests that kill it (``kill -9``) and restart it.

In-process services (``vitrine.tools.testing.services``) cannot be SIGKILLed without killing the
test, so crash tests run ``python -m vitrine_<name>`` with the stack's URLs in its
environment, exactly as a container would. One implementation for every such test (the
fault suite in ``tests/faults`` and the services' own kill tests), so they all start, wait,
kill and stop the same way and keep logs the same way.

The log is one file per service (``<log_dir>/<name>.log``), appended across restarts with a
``=== start #n ===`` marker; ``logged()`` only looks at the current run, so a line written
before a kill never satisfies a wait after the restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from vitrine.tools.devstack import free_port
from vitrine.tools.testing.stack import StackInfo


@dataclass
class ServiceProcess:
    """One service subprocess; keeps its HTTP port across kill/restart cycles.

    ``env`` overrides the defaults (JSON logs at WARNING), e.g. ``VITRINE_LOG_LEVEL="INFO"``
    for a test that waits on an INFO line. Used as a context manager it is stopped on exit.
    """

    name: str
    kafka_bootstrap: str
    mongo_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    #: Which replica of ``name`` this is, when several run in one consumer group.
    replica: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)
    kills: int = field(default=0, init=False)
    _run_offset: int = field(default=0, init=False, repr=False)  # current run's start in the log

    @classmethod
    def against(cls, stack: StackInfo, name: str, log_dir: Path, **env: str) -> ServiceProcess:
        """Service ``name`` pointed at the test ``stack`` (not started yet)."""
        return cls(
            name,
            stack.kafka_bootstrap,
            stack.mongo_url,
            log_dir,
            {"VITRINE_KAFKA_STANDIN": stack.kafka_standin, **env},
        )

    @property
    def label(self) -> str:
        """``name``, or ``name#r`` for a second or later replica."""
        return f"{self.name}#{self.replica}" if self.replica else self.name

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.label}.log"

    def start(self) -> ServiceProcess:
        """Launch the process (does not wait: ``await svc.start().wait_ready()``)."""
        assert not self.alive, f"{self.name} is running"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n=== start #{self.starts + 1} at {time.strftime('%X')} ===\n".encode())
            out.flush()
            self._run_offset = out.tell()
            env = {
                **os.environ,
                "VITRINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "VITRINE_MONGO_URL": self.mongo_url,
                "VITRINE_HTTP_PORT": str(self.port),
                "VITRINE_INSTANCE": self.label,
                "VITRINE_LOG_FORMAT": "json",
                "VITRINE_LOG_LEVEL": "WARNING",
                **self.env,
            }
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"vitrine_{self.name}"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no graceful shutdown, no outbox flush, in-flight batch lost."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM (graceful); SIGKILL if it does not exit in ``timeout`` s."""
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- HTTP ----------------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """GET ``path`` → (status, JSON body); status 0 when nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body or b"null")
            except ValueError:
                return err.code, body.decode("utf-8", "replace")
        except (OSError, ValueError):
            return 0, None

    async def get_async(self, path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(self.get, path)

    def ready(self) -> bool:
        return self.get("/readyz", timeout=3.0)[0] == 200

    async def wait_ready(self, timeout: float = 90.0) -> None:
        """Until ``/readyz`` answers 200; fails at once (with the log's tail) if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if await asyncio.to_thread(self.ready):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.tail()}")

    async def restart(self) -> None:
        """Start again (after a kill or stop) and wait until it is ready."""
        await self.start().wait_ready()

    # --- log -----------------------------------------------------------------------------------

    def output(self) -> str:
        """What the current run has written so far (stdout and stderr)."""
        try:
            with self.log.open("rb") as f:
                f.seek(self._run_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]

    def logged(self, *needles: str) -> bool:
        """True once one line of the current run contains every one of ``needles``."""
        return any(all(n in line for n in needles) for line in self.output().splitlines())

    async def wait_logged(self, *needles: str, timeout: float = 120.0) -> None:
        """Until ``logged(*needles)``; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while not self.logged(*needles):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} never logged {needles}:\n{self.tail()}")
            self._check_alive()
            await asyncio.sleep(0.02)

    def _check_alive(self) -> None:
        if not self.alive:
            code = self.proc and self.proc.returncode
            raise RuntimeError(f"{self.name} exited ({code}):\n{self.tail()}")
