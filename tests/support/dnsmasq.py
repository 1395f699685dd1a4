"""A real DNS server for tests: Debian's dnsmasq on a free loopback port, answering a fixed zone.

Under CI=true a missing dnsmasq fails the test (scripts/install-system-deps.sh installs it);
elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.components import missing

ZONE = [
    "--address=/shop.test/127.0.0.1",
    "--address=/v6.shop.test/::1",
    "--address=/gone.test/",  # no address: NXDOMAIN for the name and everything under it
    "--txt-record=shop.test,v=spf1 -all",
    "--txt-record=_verify.shop.test,token=abc123",
    "--mx-host=shop.test,mail.shop.test,10",
    "--cname=www.shop.test,shop.test",
    "--srv-host=_api._tcp.shop.test,shop.test,8443,0,5",
]


def dnsmasq_binary() -> str:
    found = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
    if found is None:
        missing("dnsmasq (Debian dnsmasq-base)")
    return found


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port: int = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


@contextmanager
def dnsmasq() -> Iterator[int]:
    """dnsmasq in the foreground on 127.0.0.1:PORT with the test zone; yields PORT."""
    binary = dnsmasq_binary()
    port = free_port()
    run = Path(tempfile.mkdtemp(prefix="qos-dnsmasq-"))
    cmd = [binary, f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
           "--no-hosts", "--keep-in-foreground", f"--pid-file={run / 'pid'}", "--user=root", "--log-facility=-",
           *ZONE]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("dnsmasq did not start within 5s")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()
