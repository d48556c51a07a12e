"""Real `iarms-node` processes for the benchmarks: start, wait until serving, CPU time, stop.

A node started here runs in a session (and process group) of its own, so
that `stop_node` ends it and anything it started, even when the benchmark
fails half-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from node.config import load_config

CLI = Path(sys.executable).parent / "iarms-node"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def start_node(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """`iarms-node run --data-dir DATA_DIR` in the background, its output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [CLI, "run", "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_serving(proc: subprocess.Popen[bytes], data_dir: Path, log: Path) -> None:
    """Return once the node's federation API answers its health check (or raise)."""
    listen = load_config(data_dir).federation
    url = f"http://{listen.host}:{listen.port}/federation/v1/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"iarms-node run ended ({proc.returncode}): {_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"iarms-node run did not serve {url} within 120 s: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace").strip()[-1000:]


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    """End the node's process group: SIGTERM, then SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.poll()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads, and reaped children) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14-17 of proc(5) (utime, stime, cutime, cstime); [0] here is field 3.
    return sum(int(f) for f in fields[11:15]) * TICK_S


def wait_quiet(pid: int, window_s: float = 0.5, timeout_s: float = 300) -> None:
    """Return once the process used at most one clock tick in each of two windows in a row
    (it has finished starting up: imports, its first index refresh)."""
    deadline = time.monotonic() + timeout_s
    quiet, last = 0, cpu_s(pid)
    while quiet < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} stayed busy for {timeout_s:.0f} s")
        time.sleep(window_s)
        now = cpu_s(pid)
        quiet = quiet + 1 if now - last <= TICK_S * 1.01 else 0
        last = now
