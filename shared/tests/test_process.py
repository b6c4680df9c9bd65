"""``ServiceProcess`` without the stack: a stand-in ``vitrine_fake`` module, killed and restarted.

The kill tests that use it are slow and only run in the fault suite; this keeps the harness
itself (readiness, per-run log matching, kill -9, graceful stop) checked by the normal gate.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from vitrine.tools.testing.process import ServiceProcess

FAKE = """
import http.server, json, os, sys

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
        self.wfile.write(json.dumps({"path": self.path}).encode())
    def log_message(self, *args):
        pass

print(json.dumps({"event": "fake.started", "level": os.environ["VITRINE_LOG_LEVEL"]}), flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["VITRINE_HTTP_PORT"])), H).serve_forever()
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceProcess:
    pkg = tmp_path / "src" / "vitrine_fake"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(textwrap.dedent(FAKE))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(pkg.parent), path])))
    return ServiceProcess("fake", "kafka:9092", "mongodb://x", tmp_path / "logs", {"X": "1"})


async def test_start_kill_restart_stop(fake: ServiceProcess) -> None:
    with fake:
        await fake.start().wait_ready(timeout=30)
        assert fake.get("/x") == (404, {"path": "/x"})
        await fake.wait_logged("fake.started", '"WARNING"', timeout=10)
        port, pid = fake.port, fake.proc and fake.proc.pid
        fake.kill()
        assert not fake.alive and fake.kills == 1
        assert fake.proc is not None and fake.proc.returncode == -signal.SIGKILL
        assert fake.get("/readyz") == (0, None)

        await fake.restart()
        assert fake.port == port and fake.proc.pid != pid and fake.starts == 2
        await fake.wait_logged("fake.started", timeout=10)
        assert fake.output().count("fake.started") == 1  # the current run only
    assert not fake.alive  # stopped on exit (SIGTERM)
    assert fake.proc.returncode == -signal.SIGTERM
    log = fake.log.read_text()
    assert log.count("fake.started") == 2 and "=== start #2" in log


async def test_a_process_that_exits_fails_the_wait_with_its_output(
    fake: ServiceProcess,
) -> None:
    fake.name = "missing"  # python -m vitrine_missing: exits at once
    fake.start()
    with pytest.raises(RuntimeError, match="No module named vitrine_missing"):
        await fake.wait_ready(timeout=30)
    with pytest.raises(RuntimeError, match="exited"):
        await fake.wait_logged("never", timeout=30)
