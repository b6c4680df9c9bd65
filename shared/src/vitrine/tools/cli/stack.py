"""``vitrine dev up``, ``vitrine run`` and ``vitrine demo``: Vitrine on one machine.

``vitrine run`` (what ``make run`` calls) starts the embedded stack, then each service as its
own process (``python -m vitrine_<name>``), waits until every ``/readyz`` answers, plays the
demo, and stays in the foreground. The terminal shows the demo's narration and the services'
warnings and errors; each service's full log goes to ``<data dir>/logs/<service>.log``
(``--logs`` shows them all on the terminal, prefixed by the service names). Ctrl-C or
SIGTERM stops the services gracefully (SIGTERM, then SIGKILL after a timeout), then the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

from vitrine.runtime.settings import DEFAULT_PORTS
from vitrine.tools.cli._app import app, dev_app, options, run_async
from vitrine.tools.cli._output import console, err

_COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan"]
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d\.\d{3})\d*Z ")


def compact_log_line(service: str, text: str) -> Text:
    """A service's console log line, shorter: time of day only, no ``service=`` (the prefix
    says it); warnings yellow, errors red."""
    text = _ISO_TIME.sub(r"\1 ", text).replace(f" service={service}", "").rstrip()
    lowered = text[:40].lower()
    if "[error" in lowered or "[critical" in lowered or text.startswith("Traceback"):
        return Text(text, style="red")
    if "[warning" in lowered:
        return Text(text, style="yellow")
    return Text.from_ansi(text)


_STARTS_WITH_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def is_alarm(text: str) -> bool:
    """A service log line worth the terminal in the quiet mode: a warning, error or traceback."""
    lowered = text[:60].lower()
    return any(
        f"[{level}" in lowered for level in ("warning", "error", "critical")
    ) or text.startswith("Traceback")


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C, so child servers are always stopped.

    SIGINT too, explicitly: a process started in the background inherits SIGINT ignored.
    """
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_stack(kafka_port: int, mongo_port: int, data_dir: Path) -> Any:
    try:
        from vitrine.tools.devstack import EmbeddedStack
    except ImportError as exc:  # pragma: no cover - the extra is part of the workspace
        err.print(f"the embedded stack is not installed (vitrine[embedded]): {exc}", markup=False)
        raise typer.Exit(1) from None
    stack = EmbeddedStack(kafka_port, mongo_port, data_dir)
    try:
        stack.start()
    except BaseException as exc:
        stack.stop()  # whatever started, even on Ctrl-C
        if not isinstance(exc, Exception):
            raise
        err.print(f"cannot start the embedded stack: {exc}", markup=False)
        if "already in use" in str(exc):
            err.print(
                "Another stack may be running: stop it, choose other ports with "
                "VITRINE_DEV_KAFKA_PORT / VITRINE_DEV_MONGO_PORT, or use --no-stack.",
                markup=False,
            )
        raise typer.Exit(1) from None
    return stack


# --------------------------------------------------------------------------------- dev up


@dev_app.command("up")
def dev_up(
    data_dir: Annotated[Path, typer.Option(help="Where nx-27017 keeps its files.")] = Path(".data"),
) -> None:
    """Run the embedded stack (a broker + nx-27017) in the foreground; Ctrl-C stops it.

    The broker: VITRINE_DEV_KAFKA=apache|tansu (unset: Apache Kafka where a JDK ≥ 17 is, else
    Tansu). Ports: VITRINE_DEV_KAFKA_PORT (9092) and VITRINE_DEV_MONGO_PORT (27017). Topics
    are created. The data directory is wiped at start (Tansu forgets its topics anyway).
    """
    kafka_port = _env_port("VITRINE_DEV_KAFKA_PORT", 9092)
    mongo_port = _env_port("VITRINE_DEV_MONGO_PORT", 27017)
    with _sigterm_as_interrupt():
        stack = None
        try:
            console.print("starting the embedded stack…", markup=False)
            stack = _start_stack(kafka_port, mongo_port, data_dir)
            console.print(f"Kafka   {stack.kafka_bootstrap}: {stack.describe()}", markup=False)
            console.print(f"MongoDB {stack.mongo_url}", markup=False)
            console.print(
                "export " + " ".join(f"{k}='{v}'" for k, v in stack.service_env().items()),
                markup=False,
            )
            console.print("topics created; Ctrl-C to stop.", markup=False)
            while True:
                for name, proc in stack.processes.items():
                    if proc.poll() is not None:
                        err.print(f"{name} exited with code {proc.returncode}", markup=False)
                        raise typer.Exit(1)
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping the stack…", markup=False)
        finally:
            if stack is not None:
                stack.stop()
                console.print("stack stopped.", markup=False)


# --------------------------------------------------------------------------------- run


def service_available(name: str) -> bool:
    """Can ``python -m vitrine_<name>`` run here?"""
    try:
        return importlib.util.find_spec(f"vitrine_{name}.__main__") is not None
    except ModuleNotFoundError:
        return False


def load_play() -> Callable[..., Any] | None:
    """``vitrine.tools.demo.play`` if this build has it."""
    try:
        module = importlib.import_module("vitrine.tools.demo")
    except ImportError:
        return None
    play = getattr(module, "play", None)
    return play if callable(play) else None


#: The demo creator whose day the dashboard opens on (her orders are paid "now" in the replay).
DEMO_CREATOR = "c-lin"


async def play_demo(
    bootstrap: str,
    narrate: Callable[[str], None],
    client_args: dict[str, Any] | None = None,
    dashboard_url: str | None = None,
) -> bool:
    """Play the seed's timeline as a demo; False if this build has no demo.

    With ``dashboard_url``, ends by naming the dashboard page on the demo's numbers.
    """
    play = load_play()
    if play is None:
        return False
    extra: dict[str, Any] = {}
    if client_args and "client_args" in inspect.signature(play).parameters:
        extra["client_args"] = client_args  # SASL/TLS from VITRINE_KAFKA_*
    result = play(bootstrap, narrate=narrate, **extra)
    if inspect.isawaitable(result):
        result = await result
    if dashboard_url:
        run_id = getattr(result, "run_id", "")
        creator = f"{DEMO_CREATOR}.{run_id}" if run_id else DEMO_CREATOR
        narrate(f"── the dashboard (数据大屏): {dashboard_url}/?creator={creator}")
        narrate(f"   policies and their enforcement: {dashboard_url}/?view=policies")
    return True


class Supervisor:
    """The services as child processes, their logs interleaved with a name prefix."""

    def __init__(
        self,
        names: list[str],
        env: dict[str, str],
        ports: dict[str, int],
        *,
        log_dir: Path | None = None,
        terminal_logs: bool = True,
    ) -> None:
        self.names = names
        self.env = env
        self.ports = ports
        #: Each service's full log goes to ``<log_dir>/<service>.log`` when given.
        self.log_dir = log_dir
        #: Every log line on the terminal too; otherwise only warnings, errors, tracebacks.
        self.terminal_logs = terminal_logs
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.pumps: list[asyncio.Task[None]] = []
        self.stopping = False
        self.width = max((len(n) for n in [*names, "vitrine"]), default=7)
        self.colours = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(names)}

    def say(self, who: str, message: str, style: str = "bold") -> None:
        line = Text(f"{who:<{self.width}} │ ", style=self.colours.get(who, style))
        line.append(message)
        console.print(line)

    async def start(self) -> None:
        for name in self.names:
            env = {**self.env, "VITRINE_HTTP_PORT": str(self.ports[name])}
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"vitrine_{name}",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
                limit=1024 * 1024,
            )
            self.procs[name] = proc
            self.pumps.append(asyncio.create_task(self._pump(name, proc)))
            self.say("vitrine", f"started {name} (pid {proc.pid}, port {self.ports[name]})")

    def log_path(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        path = self.log_path(name)
        file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = path.open("a", encoding="utf-8")
        showing = self.terminal_logs  # is the current entry (a line and its traceback) shown?
        try:
            while True:
                try:
                    raw = await proc.stdout.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    continue
                if not raw:
                    break
                text = raw.decode("utf-8", "replace").rstrip()
                if file is not None:
                    file.write(text + "\n")
                    file.flush()
                if _STARTS_WITH_TIME.match(text) or text.startswith("Traceback"):
                    showing = self.terminal_logs or is_alarm(text)
                if showing:
                    line = Text(f"{name:<{self.width}} │ ", style=self.colours[name])
                    line.append(compact_log_line(name, text))
                    console.print(line)
        finally:
            if file is not None:
                file.close()
        code = await proc.wait()
        if not self.stopping:
            self.say("vitrine", f"{name} exited unexpectedly with code {code}", "bold red")
            if path is not None and not self.terminal_logs:
                self.say("vitrine", f"its log: {path}", "bold red")

    async def wait_ready(self, timeout: float, stop: asyncio.Event) -> bool:
        """Until every service's /readyz answers 200; False on timeout, exit or stop."""
        pending = set(self.names)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                if stop.is_set():
                    return False
                for name in sorted(pending):
                    proc = self.procs[name]
                    if proc.returncode is not None:
                        self.say("vitrine", f"{name} exited before it was ready", "bold red")
                        return False
                    url = f"http://127.0.0.1:{self.ports[name]}/readyz"
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(url)).status_code == 200:
                            pending.discard(name)
                            self.say(
                                "vitrine", f"{name} ready: http://127.0.0.1:{self.ports[name]}"
                            )
                if time.monotonic() > deadline:
                    self.say(
                        "vitrine",
                        f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}",
                        "bold red",
                    )
                    return False
                if pending:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
        return True

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    async def stop(self, timeout: float) -> None:
        """SIGTERM every service, wait up to ``timeout`` s, then SIGKILL what is left."""
        self.stopping = True

        async def one(name: str, proc: asyncio.subprocess.Process) -> None:
            if proc.returncode is not None:
                return
            self.say("vitrine", f"stopping {name}…")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
                # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully
                how = "gracefully" if code in (0, -signal.SIGTERM) else f"exit {code}"
                self.say("vitrine", f"{name} stopped ({how})")
            except TimeoutError:
                self.say(
                    "vitrine", f"{name} did not stop in {timeout:.0f}s: killing it", "bold red"
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

        await asyncio.gather(*(one(n, p) for n, p in self.procs.items()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.pumps, return_exceptions=True), 5.0)


async def supervise(
    supervisor: Supervisor,
    *,
    bootstrap: str,
    demo: bool,
    ready_timeout: float,
    stop_timeout: float,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    first_signal_at: list[float] = []

    def on_signal() -> None:
        # One Ctrl-C can arrive twice (the terminal signals the whole process group, and
        # `uv run` / make forward it too): only a second press a moment later means "now".
        now = loop.time()
        if stop.is_set() and first_signal_at and now - first_signal_at[0] > 1.0:
            supervisor.say("vitrine", "killing the services now", "bold red")
            supervisor.kill()
        if not first_signal_at:
            first_signal_at.append(now)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    demo_task: asyncio.Task[bool] | None = None
    code = 0
    try:
        await supervisor.start()
        if not await supervisor.wait_ready(ready_timeout, stop):
            code = 0 if stop.is_set() else 1
            return code
        supervisor.say("vitrine", "all services ready; Ctrl-C stops them.")
        if demo:
            demo_task = asyncio.create_task(
                play_demo(
                    bootstrap,
                    lambda text: supervisor.say("demo", text, "bold white"),
                    dashboard_url=(
                        f"http://127.0.0.1:{supervisor.ports['dashboard']}"
                        if "dashboard" in supervisor.names
                        else None
                    ),
                )
            )
            demo_task.add_done_callback(lambda t: _demo_done(supervisor, t))
        await stop.wait()
        return code
    finally:
        stop.set()
        if demo_task is not None and not demo_task.done():
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)
        await supervisor.stop(stop_timeout)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            signal.signal(sig, _raise_interrupt)  # until the stack is stopped too


def _demo_done(supervisor: Supervisor, task: asyncio.Task[bool]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        supervisor.say("demo", f"the demo failed: {exc!r}", "bold red")
    elif task.result():
        supervisor.say(
            "demo", "the demo is over; the services keep running (Ctrl-C stops).", "bold white"
        )
    else:
        supervisor.say(
            "demo",
            "no demo in this build (vitrine.tools.demo.play is missing); skipped.",
            "bold white",
        )


@app.command("run")
def run_command(
    ctx: typer.Context,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Do not play the demo.")] = False,
    services: Annotated[
        str | None,
        typer.Option(help="Comma-separated services to start (default: all five)."),
    ] = None,
    no_stack: Annotated[
        bool,
        typer.Option(
            "--no-stack",
            help="Use a running stack (--bootstrap, VITRINE_MONGO_URL) instead of starting one.",
        ),
    ] = False,
    data_dir: Annotated[Path, typer.Option(help="Where nx-27017 keeps its files.")] = Path(".data"),
    http_port_base: Annotated[
        int | None,
        typer.Option(help="Serve the services on BASE+1… instead of 8001–8005 (order as listed)."),
    ] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for /readyz.")] = 120.0,
    stop_timeout: Annotated[
        float, typer.Option(help="Seconds a service gets to stop after SIGTERM before SIGKILL.")
    ] = 40.0,
    log_level: Annotated[
        str,
        typer.Option(envvar="VITRINE_LOG_LEVEL", help="The services' log level."),
    ] = "INFO",
    logs: Annotated[
        bool,
        typer.Option(
            "--logs",
            help="Show every service log line here, prefixed by the service "
            "(also VITRINE_RUN_LOGS=terminal); by default they go to DATA_DIR/logs/.",
        ),
    ] = False,
) -> None:
    """Start the embedded stack and every service, play the demo, and keep running.

    The terminal tells the story: the demo's narration, the services' warnings and errors.
    Each service's full log goes to DATA_DIR/logs/<service>.log; --logs interleaves them
    here, prefixed by the service name. Ctrl-C (or SIGTERM) stops the services gracefully,
    then the stack.
    """
    logs = logs or os.environ.get("VITRINE_RUN_LOGS", "").lower() == "terminal"
    names = [n.strip() for n in (services or ",".join(DEFAULT_PORTS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in DEFAULT_PORTS]
    if unknown:
        err.print(
            f"unknown service(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_PORTS)}",
            markup=False,
        )
        raise typer.Exit(2)
    runnable = [n for n in names if service_available(n)]
    skipped = [n for n in names if n not in runnable]
    if skipped:
        console.print(
            f"skipped (no vitrine_<name>.__main__ yet): {', '.join(skipped)}", markup=False
        )
    if not runnable:
        err.print("no service to run.", markup=False)
        raise typer.Exit(1)
    ports = {
        n: (http_port_base + i + 1 if http_port_base else DEFAULT_PORTS[n])
        for i, n in enumerate(DEFAULT_PORTS)
    }
    with _sigterm_as_interrupt():
        stack = None
        try:
            if no_stack:
                bootstrap = options(ctx).bootstrap
                mongo_url = os.environ.get(
                    "VITRINE_MONGO_URL", "mongodb://127.0.0.1:27017/?journal=true"
                )
            else:
                console.print("starting the embedded stack…", markup=False)
                stack = _start_stack(
                    _env_port("VITRINE_DEV_KAFKA_PORT", 9092),
                    _env_port("VITRINE_DEV_MONGO_PORT", 27017),
                    data_dir,
                )
                bootstrap, mongo_url = stack.kafka_bootstrap, stack.mongo_url
                console.print(f"Kafka {bootstrap}: {stack.describe()}", markup=False)
                console.print(f"MongoDB {mongo_url} (nx-27017)", markup=False)
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("VITRINE_HTTP_PORT", "VITRINE_MONGO_DB", "VITRINE_SERVICE")
            }
            if stack is not None:
                env.update(stack.service_env())
            env.update(
                VITRINE_KAFKA_BOOTSTRAP=bootstrap,
                VITRINE_MONGO_URL=mongo_url,
                VITRINE_LOG_FORMAT="console",
                VITRINE_LOG_LEVEL=log_level.upper(),
                PYTHONUNBUFFERED="1",
            )
            log_dir = data_dir / "logs"
            supervisor = Supervisor(runnable, env, ports, log_dir=log_dir, terminal_logs=logs)
            where = "here and in" if logs else "in"
            console.print(
                f"service logs: {where} {log_dir}/<service>.log"
                + ("" if logs else " (--logs or VITRINE_RUN_LOGS=terminal shows them here)"),
                markup=False,
            )
            code = run_async(
                supervise(
                    supervisor,
                    bootstrap=bootstrap,
                    demo=not no_demo,
                    ready_timeout=ready_timeout,
                    stop_timeout=stop_timeout,
                )
            )
        except KeyboardInterrupt:
            code = 0
        finally:
            if stack is not None:
                console.print("stopping the stack…", markup=False)
                stack.stop()
                console.print("stopped.", markup=False)
    raise typer.Exit(code)


# --------------------------------------------------------------------------------- demo


@app.command("demo")
def demo_command(ctx: typer.Context) -> None:
    """Play the seed's timeline (2022 policies) against a running stack and services."""
    bootstrap = options(ctx).bootstrap
    if load_play() is None:
        err.print("this build has no demo (vitrine.tools.demo.play is missing).", markup=False)
        raise typer.Exit(1)

    def narrate(text: str) -> None:
        console.print(Text(text))

    try:
        run_async(play_demo(bootstrap, narrate, options(ctx).kafka.client_args))
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        err.print(f"the demo failed: {exc!r}", markup=False)
        raise typer.Exit(1) from None
