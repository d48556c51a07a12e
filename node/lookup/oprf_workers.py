"""Worker processes that evaluate the OPRF of this node's serials, for `LookupIndex`.

`OprfWorkers.start` runs N `python -m node.lookup.evaluate_worker`
processes (see that module for the protocol) and hands each the key;
`evaluate` splits a list of serials across them and joins their answers in
order; `close` kills and reaps them. Each worker answers one request at a
time, so two overlapping `evaluate` calls queue behind each other per
worker: the next batch is sent as soon as a worker is free. A worker that
dies raises `IndexWorkerError` with the last line of its standard error.
After an error or a cancellation the workers are out of step with their
pipes: only `close` is valid then.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import suppress
from dataclasses import dataclass, field

from node.errors import IndexWorkerError
from node.lookup.evaluate_worker import decode_answer, encode_request, frame

_MODULE = "node.lookup.evaluate_worker"


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def evaluate(self, serials: list[str]) -> list[bytes]:
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        async with self.lock:
            try:
                process.stdin.write(frame(encode_request(serials)))
                await process.stdin.drain()
                size = int.from_bytes(await process.stdout.readexactly(4), "big")
                return decode_answer(await process.stdout.readexactly(size))
            except (asyncio.IncompleteReadError, ConnectionError):
                last = await self._last_words()
                raise IndexWorkerError(f"an OPRF index worker failed: {last}") from None

    async def _last_words(self) -> str:
        assert self.process.stderr is not None
        stderr = (await self.process.stderr.read()).decode(errors="replace").strip()
        return stderr.splitlines()[-1] if stderr else f"exit code {await self.process.wait()}"

    async def close(self) -> None:
        if self.process.returncode is None:
            with suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


class OprfWorkers:
    """Running worker processes that hold one OPRF key (see the module docstring)."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    @classmethod
    async def start(cls, key: bytes, count: int) -> OprfWorkers:
        """Start `count` workers evaluating under `key`."""
        workers = cls([])
        try:
            for _ in range(count):
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    _MODULE,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                workers._workers.append(_Worker(process))
                assert process.stdin is not None
                process.stdin.write(key)  # the secret travels by pipe, never argv
        except BaseException:
            await workers.close()
            raise
        return workers

    async def evaluate(self, serials: list[str]) -> list[bytes]:
        """The outputs of `serials`, in order, computed in parallel by the workers."""
        if not serials:
            return []
        step = -(-len(serials) // len(self._workers))
        tasks = [
            asyncio.create_task(worker.evaluate(serials[i : i + step]))
            for worker, i in zip(self._workers, range(0, len(serials), step), strict=False)
        ]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [output for part in parts for output in part]

    async def close(self) -> None:
        """Kill and reap every worker (whatever it is doing)."""
        for worker in self._workers:
            await worker.close()
