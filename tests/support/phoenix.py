"""A real OTLP/HTTP receiver for tests: Arize Phoenix, from its own virtualenv (`make setup`'s
.venv-phoenix, pinned in the Makefile), on free loopback ports, its data in a temporary directory.

    with phoenix() as px:            # px.url: http://127.0.0.1:PORT (OTLP at px.url + "/v1/traces")
        spans = px.spans()           # what it holds, read back from its REST API

Under CI a missing Phoenix fails the test (the one rule of tests/support/components.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.components import missing
from tests.support.influx import free_port

ROOT = Path(__file__).resolve().parents[2]
PHOENIX = ROOT / ".venv-phoenix" / "bin" / "phoenix"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Phoenix:
    url: str
    log: Path
    pid: int = 0  # the server's process (a bench pins it to the target's cores)

    def get(self, path: str) -> Any:
        with _NO_PROXY.open(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def spans(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Every span of the default project (context.trace_id, context.span_id, parent_id, name...)."""
        return list(self.get(f"/v1/projects/default/spans?limit={limit}")["data"])


@contextmanager
def phoenix(start_timeout: float = 120.0) -> Iterator[Phoenix]:
    if not PHOENIX.exists():
        missing("Arize Phoenix (.venv-phoenix)", "run make setup: it installs arize-phoenix in its own virtualenv")
    work = Path(tempfile.mkdtemp(prefix="qos-phoenix-"))
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc_port),
           "PHOENIX_WORKING_DIR": str(work), "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = work / "phoenix.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=work)
    server = Phoenix(f"http://127.0.0.1:{port}", log, proc.pid)
    try:
        deadline = time.monotonic() + start_timeout  # a loaded machine takes tens of seconds to import it
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"phoenix exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                server.get("/v1/projects")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"phoenix did not answer within {start_timeout:.0f}s") from None
                time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
