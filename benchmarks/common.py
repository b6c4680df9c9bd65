"""What every benchmark shares: the stack, service subprocesses, probes, machine facts.

Each benchmark starts its own :class:`~vitrine.tools.devstack.EmbeddedStack` on free loopback ports
in a temporary directory and stops it at the end, so runs never see each other's data. The
broker is chosen per run (``embedded_stack(broker)``, default :data:`BROKER`, which
``python -m benchmarks --broker`` sets before each benchmark); every client on that stack —
services, probes, raw baselines — then uses the same broker profile
(:mod:`vitrine.runtime.standins`: fetch wait, idempotent producer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vitrine.contract.envelope import CONTENT_TYPE
from vitrine.runtime.standins import BrokerProfile, broker_profile
from vitrine.tools.devstack import Broker, EmbeddedStack, free_port
from vitrine.tools.devstack.apache_kafka import KAFKA_VERSION
from vitrine.tools.testing import process

#: Service and baseline logs of the last run (``.data`` is git-ignored).
LOGS = Path(__file__).resolve().parent.parent / ".data" / "bench-logs"
HEADERS = [("content-type", CONTENT_TYPE.encode())]


def log(msg: str) -> None:
    """Progress on stderr (stdout carries the results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the machine -------------------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, str]:
    """The facts a reader needs to compare numbers across machines."""
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    one, five, fifteen = load_average()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": f"{os.cpu_count()} ({cpu})" if cpu else str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "load_at_start": f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)",
    }


# --- the stack ---------------------------------------------------------------------------------


#: Both brokers the embedded stack can start, in the order ``make bench`` runs them.
BROKERS: tuple[Broker, ...] = ("apache", "tansu")
BROKER_NAMES: dict[str, str] = {"apache": f"Apache Kafka {KAFKA_VERSION}", "tansu": "Tansu"}

#: The broker ``embedded_stack()`` starts when none is named (None: the dev stack's own choice,
#: ``VITRINE_DEV_KAFKA`` or auto). Benchmarks that do not take a broker (selection, dashboard)
#: run on this one.
BROKER: dict[str, Broker | None] = {"name": None}

#: The profile of the stack running now: probes built without one use it.
_CURRENT: dict[str, BrokerProfile] = {}


def profile_of(stack: EmbeddedStack) -> BrokerProfile:
    """How clients talk to ``stack``'s broker (the services get the same via their env)."""
    return broker_profile("tansu" if stack.kafka_standin == "tansu" else "none")


def current_profile() -> BrokerProfile:
    return _CURRENT.get("profile") or broker_profile("none")


@contextlib.asynccontextmanager
async def embedded_stack(broker: Broker | None = None) -> AsyncIterator[EmbeddedStack]:
    """A fresh broker + nx-27017 on free ports, in a temporary directory.

    ``EmbeddedStack.start`` runs its own event loop (topic creation), hence the thread.
    """
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-") as tmp:
        stack = EmbeddedStack(free_port(), free_port(), Path(tmp), broker=broker or BROKER["name"])
        log(f"starting embedded stack (kafka :{stack.kafka_port}, mongo :{stack.mongo_port})")
        try:
            await asyncio.to_thread(stack.start)
            log(f"  broker: {stack.describe()}")
            _CURRENT["profile"] = profile_of(stack)
            yield stack
        finally:
            _CURRENT.pop("profile", None)
            await asyncio.to_thread(stack.stop)


async def create_topics(bootstrap: str, names: dict[str, int], timeout: float = 60.0) -> None:
    """Create benchmark-only topics (name -> partitions) and wait until every partition has a
    leader (no broker here auto-creates them; Apache Kafka elects leaders just after)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, p, 1) for n, p in names.items() if n not in existing]
        if new:
            await admin.create_topics(new)
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(list(names))
            led = {
                t["topic"]: sum(1 for p in t["partitions"] if p["leader"] >= 0)
                for t in described
                if not t["error_code"]
            }
            if all(led.get(n, 0) >= p for n, p in names.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"benchmark topics without leaders after {timeout}s: {led}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


# --- service subprocesses ----------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size of a process (VmHWM), in MiB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class ServiceProcess(process.ServiceProcess):
    """A service subprocess (``vitrine.tools.testing.process``) plus what benchmarks read off it."""

    @classmethod
    def of(
        cls,
        stack: EmbeddedStack,
        name: str,
        log_dir: Path,
        log_level: str = "WARNING",
        extra_env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        env = {
            "VITRINE_LOG_LEVEL": log_level,
            # The stack's broker profile (Tansu's compensations, or none on Apache Kafka).
            "VITRINE_KAFKA_STANDIN": stack.kafka_standin,
            **(extra_env or {}),
        }
        return cls(name, stack.kafka_bootstrap, stack.mongo_url, log_dir, env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.pid)

    def batch_stats(self) -> str:
        """Batches applied, mean records per batch and mean seconds per batch (its /metrics)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.url("/metrics"), timeout=5.0) as resp:  # noqa: S310
            text = resp.read().decode()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (
                    "vitrine_batch_records_count",
                    "vitrine_batch_records_sum",
                    "vitrine_batch_seconds_sum",
                ):
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
        n = values.get("vitrine_batch_records_count", 0.0)
        if not n:
            return f"{self.name}: no batches"
        records = values["vitrine_batch_records_sum"] / n
        seconds = values.get("vitrine_batch_seconds_sum", 0.0)
        return (
            f"{self.name}: {n:,.0f} batches of {records:,.0f} records on average, "
            f"{seconds / n * 1000:,.0f} ms each ({seconds:,.1f} s in all)"
        )


@contextlib.asynccontextmanager
async def services(
    stack: EmbeddedStack, names: list[str], log_dir: Path, **kwargs: Any
) -> AsyncIterator[dict[str, ServiceProcess]]:
    procs = {n: ServiceProcess.of(stack, n, log_dir, **kwargs) for n in names}
    try:
        for p in procs.values():
            p.start()
        for p in procs.values():
            await p.wait_ready()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


# --- producing and watching --------------------------------------------------------------------


def producer(bootstrap: str, profile: BrokerProfile | None = None) -> AIOKafkaProducer:
    """The probe's producer, set up as the services' is for this broker (idempotence)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=(profile or current_profile()).idempotent_producer,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )


async def send_all(prod: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send (key, value) records as fast as the producer takes them; wait for every ack."""
    futures = [await prod.send(topic, v, key=k, headers=HEADERS) for k, v in records]
    await asyncio.gather(*futures)


@dataclass
class Arrival:
    """A watched record: when it was read (perf_counter), its key and ce-type header, and its
    Kafka timestamp (ms since the epoch: when its producer took it, CreateTime)."""

    at: float
    key: str
    type: str
    topic: str
    value: bytes
    timestamp_ms: int = 0


class Watcher:
    """Reads topics from the beginning (no group) and calls ``on_record`` for each record.

    Type filtering uses the ``ce-type`` header the outbox relay sets, so the watcher does not
    parse JSON on the hot path.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        on_record: Callable[[Arrival], None],
        *,
        keep_value: bool = False,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.on_record = on_record
        self.keep_value = keep_value
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def start(self) -> Watcher:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=current_profile().fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self._consumer.start()
        parts: list[TopicPartition] = []
        for t in self.topics:
            found = self._consumer.partitions_for_topic(t)
            if not found:
                await self._consumer._client.force_metadata_update()
                found = self._consumer.partitions_for_topic(t) or {0}
            parts += [TopicPartition(t, p) for p in found]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=50, max_records=10000)
            now = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    ce_type = ""
                    for k, v in r.headers:
                        if k == "ce-type":
                            ce_type = v.decode()
                            break
                    self.on_record(
                        Arrival(
                            now,
                            r.key.decode() if r.key else "",
                            ce_type,
                            r.topic,
                            (r.value or b"") if self.keep_value else b"",
                            r.timestamp,
                        )
                    )
            if batch:
                self.changed.set()

    async def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


@contextlib.asynccontextmanager
async def watching(
    bootstrap: str, topics: list[str], on_record: Callable[[Arrival], None], **kw: Any
) -> AsyncIterator[Watcher]:
    w = await Watcher(bootstrap, topics, on_record, **kw).start()
    try:
        yield w
    finally:
        await w.stop()


def cloud_event(
    type: str, subject: str, data: dict[str, Any], *, source: str = "/bench", id: str = ""
) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": id or f"{subject}:{type}",
            "source": source,
            "type": type,
            "subject": subject,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def submission(pid: str, merchant: str, n: int) -> bytes:
    """A ``product.submitted`` review approves: unique title per merchant, valid everything."""
    return cloud_event(
        "product.submitted",
        pid,
        {
            "product_id": pid,
            "merchant_id": merchant,
            "title": f"Ceramic tea cup {n}",
            "category": "kitchen",
            "images": [f"https://img.example.com/{pid}.jpg"],
            "price_fen": 1990 + n % 1000,
            "stock": 100,
            "source": {"kind": "channels_shop"},
            "attributes": {"colour": "white"},
        },
    )


def fmt_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "n/a"


# --- CPU accounting ----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of ``pid``, summed by thread name (``comm``: the JVM
    names its native threads, so the broker's network, request-handler, GC and JIT threads
    can be told apart without attaching to it)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Numbered pools (data-plane-kafka-request-handler-3) summed as one.
        key = name.rstrip("0123456789").rstrip("-_ #") or name
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


class CpuMeter:
    """CPU seconds each named process spends between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._start = {n: cpu_seconds(p) for n, p in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {n: cpu_seconds(p) - self._start[n] for n, p in self.pids.items()}
        return self.used

    def describe(self) -> str:
        return ", ".join(f"{n} {s:.1f}s" for n, s in self.used.items())


class ThreadMeter:
    """CPU seconds each thread of one process (by name, :func:`thread_cpu_seconds`) spends
    between :meth:`start` and :meth:`stop`: where the broker's time goes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> ThreadMeter:
        self._start = thread_cpu_seconds(self.pid)
        return self

    def stop(self) -> dict[str, float]:
        now = thread_cpu_seconds(self.pid)
        self.used = {k: v - self._start.get(k, 0.0) for k, v in now.items()}
        return self.used

    def busiest(self, n: int = 8) -> list[tuple[str, float]]:
        """The ``n`` threads that used the most, most first (none that used nothing)."""
        ranked = sorted(self.used.items(), key=lambda kv: -kv[1])[:n]
        return [(k, v) for k, v in ranked if v > 0]


def broker_label(stack: EmbeddedStack) -> str:
    """The broker's process as benchmarks name it: ``kafka`` (Apache Kafka) or ``tansu``."""
    return "tansu" if stack.broker == "tansu" else "kafka"


def broker_runtime(stack: EmbeddedStack) -> list[str]:
    """A report line saying which Java ran Apache Kafka and whether its AOT cache was mapped
    (a broker training its cache compiles more: docs/PERFORMANCE.md)."""
    if stack.kafka is None or not stack.kafka.runs_on:  # only Apache Kafka has a node
        return []
    return [f"- the broker ran on {stack.kafka.runs_on}"]


def stack_pids(stack: EmbeddedStack) -> dict[str, int]:
    return {
        broker_label(stack): stack.processes["kafka"].pid,
        "nx-27017": stack.processes["mongo"].pid,
        "bench": os.getpid(),
    }


# --- profiling ---------------------------------------------------------------------------------

#: Set by ``--profile``: py-spy records every service and nx-27017 during the measurement.
PROFILE = {"enabled": False}


class Profiler:
    """``py-spy record`` (collapsed stacks) of each named process while measuring.

    Output: ``.data/bench-logs/profiles/<bench>-<process>.txt``; summarise with
    ``python -m benchmarks.profile FILE``.
    """

    def __init__(self, bench: str, pids: dict[str, int]) -> None:
        self.bench = bench
        self.pids = pids
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dir = LOGS / "profiles"

    def start(self) -> Profiler:
        if not PROFILE["enabled"]:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "py-spy"
        for name, pid in self.pids.items():
            if name in ("kafka", "tansu", "bench"):  # not Python: py-spy cannot read them
                continue
            out = self.dir / f"{self.bench}-{name}.txt"
            self.procs.append(
                subprocess.Popen(
                    [
                        str(exe),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--nonblocking",
                        *(["--idle"] if os.environ.get("BENCH_PROFILE_IDLE") else []),
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(2)  # SIGINT: py-spy writes its output and exits
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.procs:
            log(f"profiles written to {self.dir}")
