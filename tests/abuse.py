"""Abusive and ordinary clients on raw sockets, and a node run as `iarms-node run`.

Shared by the connection-abuse tests and `scripts/bench/abuse.py`. Linux
routes all of 127.0.0.0/8 to loopback, so a client bound to 127.0.0.2,
127.0.0.3, ... is a different source address to the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from tests.harness import init_args

CLI = str(Path(sys.executable).parent / "iarms-node")
HOST = "127.0.0.1"
MESSAGES = "/federation/v1/messages"
HEALTH = "/federation/v1/health"
#: What the attacker of issue 7 sent, then nothing: a request head without its end.
PARTIAL_HEAD = b"POST /federation/v1/messages HTTP/1.1\r\nHost: x\r\n"

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def sources(n: int, first: int = 2) -> list[str]:
    """`n` loopback source addresses: 127.0.0.2, 127.0.0.3, ..."""
    return [f"127.0.{k // 254}.{k % 254 + 1}" for k in range(first - 1, first - 1 + n)]


async def connect(port: int, source: str = HOST) -> Conn:
    """A TCP connection to the node from `source`."""
    return await asyncio.open_connection(HOST, port, local_addr=(source, 0))


async def partial_head(port: int, source: str = HOST) -> Conn:
    """A connection that sent part of a request head, and will send no more."""
    conn = await connect(port, source)
    conn[1].write(PARTIAL_HEAD)
    await conn[1].drain()
    return conn


async def stalled_body(port: int, path: str, declared: int, sent: int, source: str = HOST) -> Conn:
    """A connection whose request declared `declared` body bytes and sent only `sent`.

    A message to the federation API, a form to any other path (the console's).
    """
    conn = await connect(port, source)
    kind = "application/msgpack" if path == MESSAGES else "application/x-www-form-urlencoded"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
        f"Content-Type: {kind}\r\n\r\n"
    )
    conn[1].write(head.encode() + b"a" * sent)
    await conn[1].drain()
    return conn


async def closed_by_server(conn: Conn, within: float) -> bool:
    """Whether the node closes `conn` within `within` seconds (what it sends is ignored)."""
    reader = conn[0]
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset by the node: closed too
    return True


async def open_many(
    opener: Callable[[str], Awaitable[Conn]], n: int, addresses: list[str], within: float = 5.0
) -> list[Conn]:
    """Up to `n` connections made by `opener(source)`, spread over `addresses`.

    Those the node refuses or does not accept within `within` seconds are left out.
    """
    conns = []
    for i in range(n):
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(within):
                conns.append(await opener(addresses[i % len(addresses)]))
    return conns


def close(conn: Conn) -> None:
    """Close our end without waiting."""
    conn[1].transport.abort()


async def get(port: int, path: str, source: str = HOST, within: float = 30.0) -> tuple[int, bytes]:
    """GET `path` on a fresh connection; the status and body (the node closes after it)."""
    reader, writer = await connect(port, source)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(within):
            answer = await reader.read()
    finally:
        writer.transport.abort()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


@dataclass
class NodeProcess:
    """A node created with `iarms-node init` and served by `iarms-node run` in a subprocess."""

    data_dir: Path
    proc: asyncio.subprocess.Process | None = None

    @classmethod
    def create(cls, base: Path, settings: dict[str, dict[str, Any]]) -> NodeProcess:
        """`init` a FRA node in `base`, then add `settings` (tables of config.toml)."""
        password = base / "admin.txt"
        password.write_text("a long admin password\n", encoding="utf-8")
        data_dir = base / "node"
        subprocess.run([CLI, *init_args(data_dir, password)], check=True, capture_output=True)
        path = data_dir / "config.toml"
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for section, values in settings.items():
            raw.setdefault(section, {}).update(values)
        path.write_text(tomli_w.dumps(raw), encoding="utf-8")
        return cls(data_dir)

    def port(self, section: str) -> int:
        """The port of `console` or `federation`."""
        raw = tomllib.loads((self.data_dir / "config.toml").read_text(encoding="utf-8"))
        return int(raw[section]["listen"].rsplit(":", 1)[1])

    async def start(self, fd_limit: int | None = None, nice: int = 0) -> None:
        """Run the node until its health check answers.

        Args:
            fd_limit: the most files it may open (default: as this process).
            nice: its scheduling niceness, relative to this process (negative needs root).
        """

        def limit_files() -> None:
            if fd_limit is not None:
                import resource  # in the child, before exec

                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))
            if nice:
                os.nice(nice)

        with self.log_file.open("wb") as log:  # a file, not a pipe: a flood of log never blocks
            self.proc = await asyncio.create_subprocess_exec(
                *(CLI, "run", "--data-dir", str(self.data_dir)),
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=limit_files,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        for _ in range(300):
            with contextlib.suppress(OSError, TimeoutError):
                if (await get(self.port("federation"), HEALTH, within=2))[0] == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the node did not start: {await self.stop()}")

    @property
    def log_file(self) -> Path:
        """Where the node's stderr (its log) goes."""
        return self.data_dir.parent / "node.log"

    def rss_mb(self) -> float:
        """The node's resident memory, in MB."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="utf-8")
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def cpu_s(self) -> float:
        """CPU time the node has used so far (user and system), in seconds."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def open_files(self) -> int:
        """How many file descriptors the node holds."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    async def stop(self) -> str:
        """Stop the node (SIGTERM, as an admin would) and return what it logged."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        return self.log_file.read_text(encoding="utf-8", errors="replace")
