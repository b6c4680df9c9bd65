"""The ``vitrine`` command against the real stack, in-process (CliRunner) and as another process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from vitrine.contract.topics import TOPICS
from vitrine.tools.cli import app
from vitrine.tools.cli import stack as cli_stack
from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION as CATALOG

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

runner = CliRunner()


async def cli(stack: Any, *args: str, input: str | None = None) -> Any:
    """Run ``vitrine --bootstrap <stack> ARGS`` in-process (in a thread: it runs its own loop)."""
    return await asyncio.to_thread(
        runner.invoke,
        app,
        ["--bootstrap", stack.kafka_bootstrap, *args],
        input=input,
        env={"VITRINE_KAFKA_STANDIN": stack.kafka_standin},
        catch_exceptions=False,
    )


async def cli_process(stack: Any, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``python -m vitrine.tools.cli --bootstrap <stack> ARGS`` as another process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitrine.tools.cli",
        "--bootstrap",
        stack.kafka_bootstrap,
        *args,
        env={**os.environ, **stack.env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _product(pid: str, merchant: str = "m-cli", **over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "product_id": pid,
        "merchant_id": merchant,
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
    }
    data.update(over)
    return data


def _jsonl(*events: object) -> str:
    return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n"


# ------------------------------------------------------------------------------------ topics


async def test_topics_ensure_is_idempotent_and_list_shows_every_topic(stack) -> None:
    result = await cli(stack, "topics", "ensure")
    assert result.exit_code == 0, result.output
    assert "0 created" in result.stdout

    result = await cli(stack, "topics", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["topic"]: r for r in map(json.loads, result.stdout.splitlines())}
    for name, topic in TOPICS.items():
        assert rows[name]["exists"] and rows[name]["partitions"] == topic.partitions
        assert rows[topic.dlq]["exists"] and rows[topic.dlq]["partitions"] == 1


async def test_topics_list_end_offsets_are_exact_after_batched_produce(stack, publisher) -> None:
    # Tansu's ListOffsets "latest" answers the base offset of the last batch + 1; 37 records
    # sent in one batch would show as 1. The CLI reads the high watermark instead.
    topic = "compliance.reports.dlq"  # nobody consumes it; one partition
    before = await cli(stack, "topics", "list", "--json")
    start = next(
        json.loads(line)["end_offsets"]["0"]
        for line in before.stdout.splitlines()
        if json.loads(line)["topic"] == topic
    )
    key = f"k-{uuid.uuid4().hex[:8]}"
    await publisher.send_many(
        topic, [cloud_event("enforcement.reported", key, {"n": i}) for i in range(37)]
    )
    after = await cli(stack, "topics", "list", "--json")
    row = next(json.loads(x) for x in after.stdout.splitlines() if json.loads(x)["topic"] == topic)
    assert row["end_offsets"]["0"] == start + 37


# ------------------------------------------------------------------------------------ tail


async def test_tail_shows_events_published_by_another_process(stack, tmp_path: Path) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    submitted = cloud_event("product.submitted", pid, _product(pid))
    withdrawn = cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": "m-cli"})
    withdrawn["correlationid"] = "corr-" + pid
    other = f"p-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "events.jsonl"
    path.write_text(
        _jsonl(submitted, withdrawn, cloud_event("product.submitted", other, _product(other)))
    )

    code, out, err = await cli_process(stack, "publish", "merchants.products", str(path))
    assert code == 0, err
    assert "published 3 event(s)" in out

    result = await cli(
        stack, "tail", "merchants.products", "--no-follow", "--from-beginning", "--subject", pid
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    assert "product.submitted" in lines[0] and pid in lines[0]
    assert "merchant_id=m-cli" in lines[0] and "price_fen=1990" in lines[0]
    assert "product.withdrawn" in lines[1] and f"corr=corr-{pid}" in lines[1]
    assert other not in result.stdout

    # --json (as another process, for piping): the raw CloudEvents, one per line.
    code, out, err = await cli_process(
        stack,
        "tail",
        "merchants.products",
        "--no-follow",
        "--from-beginning",
        "--json",
        "--subject",
        pid,
        "--type",
        "product.withdrawn",
    )
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["id"] for e in events] == [withdrawn["id"]]

    # Without --from-beginning, --no-follow starts and stops at the end: nothing old.
    result = await cli(stack, "tail", "merchants.products", "--no-follow", "--subject", pid)
    assert result.exit_code == 0 and result.stdout == ""


async def test_tail_follows_new_events_and_stops_at_max(stack, publisher) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitrine.tools.cli",
        "--bootstrap",
        stack.kafka_bootstrap,
        "tail",
        "merchants.products",
        "--subject",
        pid,
        "--max",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        said = await asyncio.wait_for(proc.stderr.readline(), 30)  # at the end, waiting
        assert b"following merchants.products from the end" in said
        event = cloud_event("product.submitted", pid, _product(pid))
        await publisher.send("merchants.products", event)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert pid in out.decode() and "product.submitted" in out.decode()


async def test_tail_unknown_topic_fails_clearly(stack) -> None:
    result = await cli(stack, "tail", "no.such.topic", "--no-follow")
    assert result.exit_code == 2
    assert "no such topic" in result.stderr


async def test_tail_starts_at_a_partition_offset_and_shows_keys_and_headers(
    stack, publisher, probe
) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    events = [cloud_event("product.submitted", pid, _product(pid, stock=n)) for n in (1, 2, 3)]
    await publisher.send_many("merchants.products", events)
    sent = await probe.wait_for("merchants.products", subject=pid, count=3)
    partition, second = sent[1].partition, sent[1].offset

    # --bootstrap after the subcommand, like every other option.
    start = ["--offset", f"{partition}:{second}", "--no-follow", "--subject", pid]
    bootstrap = stack.kafka_bootstrap
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        ["tail", "merchants.products", *start, "--keys", "--headers", "--bootstrap", bootstrap],
        env={"VITRINE_KAFKA_STANDIN": stack.kafka_standin},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [("stock=2" in x, "stock=3" in x) for x in lines] == [(True, False), (False, True)]
    assert f"merchants.products[{partition}]@{second}" in lines[0]
    assert f"key={pid}" in lines[0]
    assert "headers{content-type=application/cloudevents+json}" in lines[0]

    # --json with --keys/--headers: the event wrapped with its key and headers.
    result = await cli(
        stack, "tail", "merchants.products", "--offset", f"{partition}:{second}",
        "--no-follow", "-s", pid, "--json", "--keys", "--headers",
    )  # fmt: skip
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["event"]["data"]["stock"] for r in rows] == [2, 3]
    assert rows[0]["key"] == pid
    assert rows[0]["headers"] == {"content-type": "application/cloudevents+json"}


async def test_tail_since_a_time_skips_older_records(stack, publisher, probe) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, _product(pid)))
    await probe.wait_for("merchants.products", subject=pid)
    await asyncio.sleep(1.0)
    since = datetime.now(timezone(timedelta(hours=8))).isoformat(timespec="milliseconds")
    await asyncio.sleep(1.0)
    later = cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": "m-cli"})
    await publisher.send("merchants.products", later)
    await probe.wait_for("merchants.products", subject=pid, count=2)

    result = await cli(
        stack, "tail", "merchants.products", "--since", since, "--no-follow", "-s", pid
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "product.withdrawn" in lines[0], lines


@pytest.mark.parametrize(
    "args",
    [
        ["tail", "merchants.products", "--offset", "0"],
        ["tail", "merchants.products", "--since", "yesterday"],
        ["tail", "merchants.products", "--since", "2022-11-30T00:00:00"],
        ["tail", "merchants.products", "catalog.products", "--offset", "0:1"],
        ["tail", "merchants.products", "--offset", "0:1", "--from-beginning"],
    ],
    ids=["offset-without-partition", "since-not-a-time", "since-no-zone", "two-topics", "two"],
)
async def test_tail_rejects_a_bad_start_in_one_line(args: list[str]) -> None:
    result = await asyncio.to_thread(runner.invoke, app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["tail", "merchants.products", "--no-follow"],
        ["topics", "list"],
        ["topics", "ensure", "--wait", "1"],
        ["dlq", "list", "merchants.products"],
        ["publish", "merchants.products", "-"],
    ],
    ids=["tail", "topics-list", "topics-ensure", "dlq-list", "publish"],
)
async def test_an_unreachable_broker_is_one_line_and_exit_code_2(args: list[str]) -> None:
    event = cloud_event("product.submitted", "p-x", _product("p-x"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitrine.tools.cli",
        *args,
        "--bootstrap",
        "127.0.0.1:1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(_jsonl(event).encode()), 60)
    assert proc.returncode == 2, (out, err)
    assert out == b""
    assert err.decode().splitlines() == [
        "error: cannot reach Kafka at 127.0.0.1:1 (Unable to bootstrap from [('127.0.0.1', 1)])"
    ]


async def test_global_options_may_follow_the_subcommand() -> None:
    from vitrine.tools.cli._app import hoist_global_options

    assert hoist_global_options(["tail", "t", "--bootstrap", "h:1", "-n", "2"]) == [
        "--bootstrap", "h:1", "tail", "t", "-n", "2",
    ]  # fmt: skip
    assert hoist_global_options(["dlq", "list", "--bootstrap=h:1"]) == [
        "--bootstrap=h:1", "dlq", "list",
    ]  # fmt: skip
    assert hoist_global_options(["publish", "t", "--", "--bootstrap"]) == [
        "publish", "t", "--", "--bootstrap",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------ publish


async def test_publish_rejects_invalid_lines_with_their_numbers(stack, probe) -> None:
    ok, bad_data, unknown = (f"p-{uuid.uuid4().hex[:8]}" for _ in range(3))
    wrong_key = f"p-{uuid.uuid4().hex[:8]}"
    lines = _jsonl(
        cloud_event("product.submitted", ok, _product(ok)),  # 1
        cloud_event("product.submitted", bad_data, _product(bad_data, price_fen="12")),  # 2
        "",  # 3: blank, ignored
        "{not json",  # 4
        cloud_event("product.frobbed", unknown, {"product_id": unknown}),  # 5
        {"id": "x", "type": "product.withdrawn"},  # 6: not a CloudEvent
        cloud_event("product.withdrawn", wrong_key, {"product_id": wrong_key}),  # 7: no merchant
    )
    result = await cli(stack, "publish", "merchants.products", "-", input=lines)
    assert result.exit_code == 1
    errors = result.stderr
    assert "line 2: invalid_data" in errors and "price_fen" in errors
    assert "line 4: not_json" in errors
    assert "line 5: unknown_type" in errors
    assert "line 6: not_cloudevent" in errors
    assert "line 7: invalid_data" in errors and "merchant_id" in errors
    assert "line 1:" not in errors and "line 3:" not in errors
    assert "nothing published" in errors

    await probe.settle(1.0)
    for subject in (ok, bad_data, unknown, wrong_key):
        assert probe.events("merchants.products", subject=subject) == []

    # --skip-invalid publishes the valid line only; still exit 1 (the input had errors).
    result = await cli(stack, "publish", "merchants.products", "-", "--skip-invalid", input=lines)
    assert result.exit_code == 1
    assert "published 1 event(s)" in result.stdout and "5 invalid line(s) skipped" in result.stdout
    sent = await probe.wait_for("merchants.products", subject=ok)
    assert sent[0].key == ok
    assert sent[0].headers["content-type"] == "application/cloudevents+json"
    assert sent[0].headers["ce-type"] == "product.submitted"
    await probe.settle(1.0)
    assert len(probe.events("merchants.products", subject=ok)) == 1
    for subject in (bad_data, unknown, wrong_key):
        assert probe.events("merchants.products", subject=subject) == []


async def test_publish_refuses_a_topic_outside_the_contract(stack, tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("{}\n")
    result = await cli(stack, "publish", "no.such.topic", str(path))
    assert result.exit_code == 2
    assert "not a topic of the contract" in result.stderr


# ------------------------------------------------------------------------------------ dlq


async def test_dlq_replay_of_a_fixed_message_is_processed_exactly_once(
    stack, probe, publisher
) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    event = cloud_event("product.submitted", pid, _product(pid))
    assert len(json.dumps(event)) > 200

    # 1. A catalog with a too-strict size limit dead-letters a perfectly valid event.
    async with running(CATALOG, stack, max_message_bytes=200):
        await publisher.send("merchants.products", event)
        dead = await probe.wait_for("merchants.products.dlq", subject=pid)
    assert dead[0].headers["dlq-reason"] == "too_large"
    assert probe.events("catalog.products", subject=pid) == []

    # 2. The operator sees it, and why.
    result = await cli(stack, "dlq", "list", "merchants.products", "--json")
    assert result.exit_code == 0, result.output
    letters = [json.loads(x) for x in result.stdout.splitlines()]
    mine = [x for x in letters if x["key"] == pid]
    assert len(mine) == 1 and mine[0]["reason"] == "too_large" and mine[0]["service"] == "catalog"
    offset = mine[0]["offset"]
    assert mine[0]["topic"] == "merchants.products.dlq" and mine[0]["offset"] == dead[0].offset
    assert mine[0]["original"]["topic"] == "merchants.products"
    assert str(mine[0]["original"]["offset"]) == dead[0].headers["dlq-offset"]

    result = await cli(stack, "dlq", "list", "merchants.products")
    assert result.exit_code == 0 and "too_large" in result.stdout and pid in result.stdout

    result = await cli(
        stack, "tail", "merchants.products", "--dlq", "--from-beginning", "--no-follow", "-s", pid
    )
    assert result.exit_code == 0
    assert "too_large" in result.stdout and "from merchants.products[" in result.stdout
    assert f"@{dead[0].headers['dlq-offset']}" in result.stdout

    # 3. The fix: catalog back with its normal limit. Replay (as another process).
    async with running(CATALOG, stack):
        code, out, err = await cli_process(
            stack, "dlq", "replay", "merchants.products", "--offset", str(offset)
        )
        assert code == 0, err
        assert f"replayed merchants.products.dlq/0/{offset}" in out
        await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)

        # 4. Replaying again is skipped: the CLI finds the earlier replay on the topic.
        result = await cli(stack, "dlq", "replay", "merchants.products", "--offset", str(offset))
        assert result.exit_code == 0, result.output
        assert "already replayed" in result.stdout and "replayed 0 dead letter(s)" in result.stdout

        # 5. Even a duplicate that bypasses the CLI is deduped by the consumer's inbox.
        await publisher.send("merchants.products", event)
        await probe.settle()

    copies = probe.events("merchants.products", subject=pid)
    assert len(copies) == 3  # the original, one replay, the forced duplicate
    replays = [c for c in copies if "vitrine-replay-of" in c.headers]
    assert [r.headers["vitrine-replay-of"] for r in replays] == [
        f"merchants.products.dlq/0/{offset}"
    ]
    assert not any(k.startswith("dlq-") for k in replays[0].headers)
    assert replays[0].partition == copies[0].partition  # back where the key lives
    requested = probe.events("catalog.products", type="product.review_requested", subject=pid)
    assert len(requested) == 1


async def test_dlq_replay_needs_a_selection_and_reports_missing_offsets(stack) -> None:
    result = await cli(stack, "dlq", "replay", "merchants.products")
    assert result.exit_code == 2 and "--offset" in result.stderr
    result = await cli(stack, "dlq", "replay", "merchants.products", "--offset", "987654321")
    assert result.exit_code == 1
    assert "no dead letter at offset 987654321" in result.stderr


# ------------------------------------------------------------------------------------ demo


async def test_demo_narrates_in_plain_words(monkeypatch) -> None:
    said: list[str] = []

    async def play(bootstrap: str, *, narrate: Any) -> None:
        said.append(bootstrap)
        narrate("2022-07-15: the platform announces the Mini Shop policy")

    monkeypatch.setattr(cli_stack, "load_play", lambda: play)
    result = await asyncio.to_thread(runner.invoke, app, ["--bootstrap", "kafka:1", "demo"])
    assert result.exit_code == 0, result.output
    assert said == ["kafka:1"]
    assert "announces the Mini Shop policy" in result.stdout


async def test_demo_absent_is_reported(monkeypatch) -> None:
    monkeypatch.setattr(cli_stack, "load_play", lambda: None)
    result = await asyncio.to_thread(runner.invoke, app, ["demo"])
    assert result.exit_code == 1 and "no demo" in result.stderr


# ------------------------------------------------------------------------------------ run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_run_starts_stack_and_services_then_stops_them_on_sigterm(tmp_path: Path) -> None:
    kafka_port, mongo_port, base = _free_port(), _free_port(), _free_port()
    while any(_open(base + i) for i in range(1, 6)):
        base = _free_port()
    env = {
        **os.environ,
        "VITRINE_DEV_KAFKA_PORT": str(kafka_port),
        "VITRINE_DEV_MONGO_PORT": str(mongo_port),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitrine.tools.cli",
        "run",
        "--no-demo",
        "--services",
        "catalog",
        "--http-port-base",
        str(base),
        "--data-dir",
        str(tmp_path / "data"),
        "--stop-timeout",
        "30",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output: list[str] = []

    async def read_until(text: str, timeout: float) -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while not any(text in line for line in output):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} in:\n" + "\n".join(output[-40:])
            line = await asyncio.wait_for(proc.stdout.readline(), remaining)
            assert line, "vitrine run exited early:\n" + "\n".join(output[-40:])
            output.append(line.decode().rstrip())

    try:
        await read_until("all services ready", 120)
        # Quiet by default: the service's info lines go to its log file, not the terminal.
        assert not any(line.startswith("catalog ") and "[info" in line for line in output)
        assert any(f"service logs: in {tmp_path / 'data' / 'logs'}" in x for x in output)
        assert "service.started" in (tmp_path / "data" / "logs" / "catalog.log").read_text()
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{base + 1}/readyz")
            assert ready.status_code == 200, ready.text
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), 90)
        output += rest.decode().splitlines()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "\n".join(output)
    assert proc.returncode == 0, text
    assert "catalog stopped" in text and "stopped." in text
    for port in (kafka_port, mongo_port, base + 1):
        assert not _open(port), f"port {port} still open after vitrine run stopped"


async def test_run_rejects_unknown_services() -> None:
    result = await asyncio.to_thread(
        runner.invoke, app, ["run", "--services", "catalog,nope", "--no-demo"]
    )
    assert result.exit_code == 2 and "unknown service(s): nope" in result.stderr


async def test_supervisor_kills_a_service_that_ignores_sigterm(tmp_path: Path, capsys) -> None:
    package = tmp_path / "vitrine_stubborn"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up and ignoring SIGTERM', flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    supervisor = cli_stack.Supervisor(["stubborn"], env, {"stubborn": _free_port()})
    await supervisor.start()
    proc = supervisor.procs["stubborn"]
    deadline = time.monotonic() + 20
    while "up and ignoring SIGTERM" not in capsys.readouterr().out:
        assert time.monotonic() < deadline and proc.returncode is None
        await asyncio.sleep(0.1)
    started = time.monotonic()
    await supervisor.stop(timeout=1.0)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert "did not stop in 1s: killing it" in capsys.readouterr().out


async def test_supervisor_shows_only_warnings_and_errors_unless_asked(
    tmp_path: Path, capsys
) -> None:
    package = tmp_path / "vitrine_chatty"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "print('2022-11-30T00:00:00.000000Z [info     ] event.handled type=a', flush=True)\n"
        "print('2022-11-30T00:00:01.000000Z [warning  ] pipeline.waiting error=x', flush=True)\n"
        "print('2022-11-30T00:00:02.000000Z [error    ] handler.failed id=1', flush=True)\n"
        "print('Traceback (most recent call last):', flush=True)\n"
        "print('  File \"x.py\", line 1', flush=True)\n"
        "print('2022-11-30T00:00:03.000000Z [info     ] event.handled type=b', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for terminal_logs in (False, True):
        logs = tmp_path / f"logs-{terminal_logs}"
        supervisor = cli_stack.Supervisor(
            ["chatty"], env, {"chatty": _free_port()}, log_dir=logs, terminal_logs=terminal_logs
        )
        await supervisor.start()
        await asyncio.wait_for(asyncio.gather(*supervisor.pumps), 30)
        shown = [x for x in capsys.readouterr().out.splitlines() if x.startswith("chatty ")]
        in_file = (logs / "chatty.log").read_text().splitlines()
        assert len(in_file) == 6 and "event.handled type=b" in in_file[-1]
        if terminal_logs:
            assert len(shown) == 6
        else:
            assert len(shown) == 4, shown  # the warning, the error and its traceback
            assert "pipeline.waiting" in shown[0] and "handler.failed" in shown[1]
            assert "Traceback" in shown[2] and 'File "x.py"' in shown[3]
