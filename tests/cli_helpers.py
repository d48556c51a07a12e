"""Running `iarms-node` as a user runs it (a real process); `conftest.data_dir` makes its node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "iarms-node")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`iarms-node ARGS` in a new process; its exit status and output."""
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def wait_served(url: str, proc: subprocess.Popen[str], within_s: float = 120) -> bytes:
    """The body at `url` once `proc` (an `iarms-node run`) serves it; fails the test with
    the node's standard error if it exits or does not serve within `within_s` (a loaded
    CI machine starts a node slowly)."""
    deadline = time.monotonic() + within_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body: bytes = r.read()
                return body
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the node did not serve {url}: {proc.communicate()[1]}")
