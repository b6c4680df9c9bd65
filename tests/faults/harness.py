"""Fault-suite helpers: services as real subprocesses that can be killed, stopped, restarted.

Each service runs as ``python -m vitrine_<name>`` with the stack's URLs in its environment,
exactly as a container would; ``kill()`` is SIGKILL (no graceful shutdown, no outbox flush),
``stop()`` is SIGTERM (graceful). Logs go to ``.data/fault-logs/<test>/<service>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitrine.devstack import free_port

LOGS = Path(__file__).resolve().parents[2] / ".data" / "fault-logs"


@dataclass
class Service:
    """One service subprocess; survives kill/restart cycles on the same HTTP port."""

    name: str
    kafka_bootstrap: str
    mongo_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    def start(self) -> Service:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"{self.name}.log").open("ab")
        out.write(f"\n=== start #{self.starts + 1} at {time.strftime('%X')} ===\n".encode())
        out.flush()
        env = {
            **os.environ,
            "VITRINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "VITRINE_MONGO_URL": self.mongo_url,
            "VITRINE_HTTP_PORT": str(self.port),
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

    def ready(self) -> bool:
        return self.get("/readyz", timeout=3.0)[0] == 200

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.returncode})")
            if await asyncio.to_thread(self.ready):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout} s")

    async def restart(self) -> None:
        self.start()
        await self.wait_ready()

    async def get_async(self, path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(self.get, path)


@dataclass
class Fleet:
    """The services of one test, by name."""

    services: dict[str, Service]

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    async def start(self) -> Fleet:
        for s in self.services.values():
            s.start()
        await asyncio.gather(*(s.wait_ready() for s in self.services.values()))
        return self

    def stop(self) -> None:
        for s in self.services.values():
            s.stop()


@contextlib.contextmanager
def fleet(stack: Any, names: list[str], test: str, **env: str) -> Iterator[Fleet]:
    """Services ``names`` as subprocesses against ``stack``; always stopped at the end."""
    log_dir = LOGS / test
    f = Fleet(
        {n: Service(n, stack.kafka_bootstrap, stack.mongo_url, log_dir, dict(env)) for n in names}
    )
    try:
        yield f
    finally:
        f.stop()


async def killer(
    f: Fleet, names: list[str], rng: random.Random, stop: asyncio.Event, log: list[str]
) -> None:
    """Kill and restart the services in rotation at random moments until ``stop``."""
    turn = 0
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        victim = f[names[turn % len(names)]]
        turn += 1
        victim.kill()
        down = rng.uniform(0.0, 1.5)
        log.append(f"{time.strftime('%X')} kill -9 {victim.name}, restart after {down:.1f} s")
        await asyncio.sleep(down)
        await victim.restart()


# --- reading what the services published -------------------------------------------------------


def effect_key(record: Any) -> tuple[str, ...]:
    """What makes an output event one effect: its type, subject and the ids in its data."""
    data = record.data
    ids = tuple(
        f"{k}={data[k]}"
        for k in (
            "product_id",
            "version",
            "creator_id",
            "offer_id",
            "order_id",
            "policy_id",
            "phase",
            "service",
        )
        if k in data
    )
    return (record.type, record.subject, *ids)


def effects(records: list[Any]) -> dict[tuple[str, ...], set[str]]:
    """Output records grouped by effect → the distinct event ids that announced it.

    The same id seen twice is a harmless resend (consumers dedupe on it); two ids for one
    effect is a duplicated effect.
    """
    out: dict[tuple[str, ...], set[str]] = {}
    for r in records:
        out.setdefault(effect_key(r), set()).add(r.event["id"])
    return out


def duplicated(records: list[Any]) -> dict[tuple[str, ...], set[str]]:
    return {k: ids for k, ids in effects(records).items() if len(ids) > 1}
