"""Start-up: transient faults are waited out, permanent ones end the start at once, clearly."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from typing import Any

import pytest
import stamina
from aiokafka.errors import KafkaConnectionError
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from vitrine.runtime import service
from vitrine.runtime.retries import is_transient
from vitrine.runtime.service import StartupError
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION as CATALOG


@pytest.fixture
def no_backoff() -> Any:
    with stamina.set_testing(True, attempts=5):
        yield


def test_what_is_transient() -> None:
    assert is_transient(ServerSelectionTimeoutError("no server"))
    assert is_transient(KafkaConnectionError("Unable to bootstrap"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(OperationFailure("Authentication failed.", code=18))
    assert not is_transient(TypeError("setup() takes 0 positional arguments"))
    # nx-27017's write conflict between two processes' transactions (mongod's: code 112)
    nx = "no such savepoint: session_tx_09dab17e5f39"
    assert is_transient(OperationFailure(nx, details={"ok": 0, "errmsg": nx}))
    assert is_transient(OperationFailure("WriteConflict", code=112))
    assert not is_transient(OperationFailure("E11000 duplicate key error", code=11000))


async def test_a_dependency_not_yet_reachable_is_waited_for(no_backoff: None) -> None:
    calls = 0

    async def start() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    await service._wait_for("mongo", start)
    assert calls == 3


@pytest.mark.parametrize(
    "error",
    [OperationFailure("Authentication failed.", code=18), TypeError("bad call")],
    ids=["bad-credentials", "bug"],
)
async def test_a_permanent_error_fails_fast(no_backoff: None, error: Exception) -> None:
    calls = 0

    async def start() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(StartupError) as failed:
        await service._wait_for("mongo", start)
    assert calls == 1
    assert str(failed.value).startswith(f"mongo: {type(error).__name__}: ")


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_a_bug_in_setup_stops_the_start_at_once(stack: Any) -> None:
    async def setup(db: Any) -> None:
        await db.create_collection("x", "unexpected")  # TypeError inside PyMongo

    broken = dataclasses.replace(CATALOG, setup=setup)
    started = time.monotonic()
    with pytest.raises(StartupError, match="TypeError"):
        async with running(broken, stack):
            pass
    assert time.monotonic() - started < 20


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_kafka_refusing_the_credentials_stops_the_start_at_once(stack: Any) -> None:
    started = time.monotonic()
    with pytest.raises(StartupError, match="kafka: "):
        async with running(
            CATALOG,
            stack,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="nobody",
            kafka_sasl_password="wrong",
        ):
            pass
    assert time.monotonic() - started < 30


async def test_an_invalid_setting_ends_the_process_with_one_line() -> None:
    env = {**os.environ, "VITRINE_HTTP_PORT": "eighty", "VITRINE_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitrine_catalog",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [line for line in (out + err).decode().splitlines() if line.strip()]
    assert proc.returncode == 2, lines
    assert len(lines) == 1, lines
    assert "invalid setting VITRINE_HTTP_PORT" in lines[0]
