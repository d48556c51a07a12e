"""The floors the benchmarks judge their figures against, measured in the same run.

Machines differ by a third or more, so every benchmark also measures, on the
machine and at the moment it runs, what its figure cannot beat, and prints the
ratio (README, Performance):

- `index_crypto_floor_s`: the OPRF evaluations of an index build alone, on two
  worker processes that already hold their inputs (no database, no pipes
  while they work);
- `lookup_crypto`: the cryptography of one single-serial lookup, both sides,
  in-process: the OPRF (blind, evaluate with its proof, verify the proof,
  finalise) and the envelopes (the querier signs the request, the owner
  verifies it, signs its answer, and the querier verifies that);
- `owner_crypto_ms`: the owner's share of that: verify the request, evaluate
  and prove one element, sign the answer;
- `run_s`: the wall-clock (and CPU) median of a command as a whole process;
  with `python -c pass` it is the floor of every command-line figure;
- `bare_insert`: a CSV import's rows stored by bare `executemany`s, without
  the import (its floor: `import_vs_bare` in records.py and custody.py).

Run as a script, this module is the index floor's worker (see `_worker`).
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from subprocess import PIPE
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import aiosqlite

from node.lookup import oprf
from node.lookup.messages import LookupEvaluate, LookupEvaluated
from node.protocol.envelope import Envelope, PeerKey, open_envelope, seal
from node.protocol.messages import decode, encode
from node.records.import_parse import RowKind, parse_batches
from node.records.importer import BATCH_ROWS
from node.records.reference import load_reference
from node.store.database import SQLITE_PRAGMAS

#: Cores the index floor uses: the reference machines have two.
FLOOR_WORKERS = 2
_READY = b"R"
_GO = b"G"
QUERIER, OWNER = "FRA", "DEU"


def _worker(share: Path) -> None:
    """Read the key (stdin) and a share of serials, say ready, on "go" evaluate them all."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    key = stdin.read(32)
    inputs = [oprf.serial_input(s) for s in share.read_text().splitlines()]
    stdout.write(_READY)
    stdout.flush()
    if stdin.read(1) != _GO:
        raise SystemExit("the index floor worker was not told to go")
    outputs = oprf.evaluate_direct_many(key, inputs, oprf.MODE_VOPRF)
    stdout.write(len(outputs).to_bytes(8, "big"))
    stdout.flush()


async def index_crypto_floor_s(key: bytes, shares: Sequence[Path]) -> tuple[int, float]:
    """Serials evaluated, and seconds taken, by one worker process per share file under `key`.

    Each share holds canonical serials, one a line. Each worker reads its share
    and turns it into OPRF inputs before the clock starts; the clock runs from
    "go" until the last worker has finished.
    """
    procs = []
    try:
        for share in shares:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, str(share), stdin=PIPE, stdout=PIPE
            )
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(key)  # the secret travels by pipe, as to the node's workers
        for proc in procs:
            assert proc.stdout is not None
            if await proc.stdout.readexactly(1) != _READY:
                raise RuntimeError("an index floor worker did not get ready")
        start = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(_GO)
            await proc.stdin.drain()
        counts = [await p.stdout.readexactly(8) for p in procs if p.stdout is not None]
        seconds = time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    return sum(int.from_bytes(c, "big") for c in counts), seconds


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class _Laps:
    """A stopwatch that adds each lap to the OPRF's or the envelopes' account."""

    def __init__(self) -> None:
        self.oprf = self.envelopes = 0.0
        self._last = time.perf_counter()

    def lap(self, account: str) -> None:
        now = time.perf_counter()
        setattr(self, account, getattr(self, account) + now - self._last)
        self._last = now


class LookupCrypto:
    """The cryptography of one single-serial lookup between two in-process parties."""

    def __init__(
        self, querier: Ed25519PrivateKey, owner: Ed25519PrivateKey, oprf_key: bytes
    ) -> None:
        self._querier, self._owner, self._sk = querier, owner, oprf_key
        self._pk = oprf.public_key(oprf_key)  # the querier has it from the descriptor
        self._keys = {
            OWNER: PeerKey(querier.public_key().public_bytes_raw(), False),
            QUERIER: PeerKey(owner.public_key().public_bytes_raw(), False),
        }

    def _open(self, data: bytes, me: str, now_ms: int) -> Envelope:
        key = self._keys[me]
        return open_envelope(data, me=me, now_ms=now_ms, keys=lambda _s, _k: key)

    def _request(self, blinded: bytes, now_ms: int) -> bytes:
        body = encode(LookupEvaluate(elements=[blinded]))
        return seal(self._querier, QUERIER, OWNER, "lookup.evaluate", body, timestamp_ms=now_ms)

    def _evaluate(self, blinded: list[bytes]) -> tuple[list[bytes], bytes]:
        evaluated, proof = oprf.evaluate(self._sk, blinded, oprf.MODE_VOPRF)
        assert proof is not None
        return evaluated, proof

    def _answer(self, evaluated: list[bytes], proof: bytes, now_ms: int) -> bytes:
        answer = LookupEvaluated(elements=evaluated, proof=proof, index_version=1, allowance=1)
        body = encode(answer)
        return seal(self._owner, OWNER, QUERIER, "lookup.evaluated", body, timestamp_ms=now_ms)

    def one_lookup(self, serial: str, now_ms: int) -> _Laps:
        """The seconds of one serial's OPRF and of its envelopes, both sides."""
        x = oprf.serial_input(serial)
        laps = _Laps()
        r, blinded = oprf.blind(x, oprf.MODE_VOPRF)
        laps.lap("oprf")
        self._open(self._request(blinded, now_ms), OWNER, now_ms)
        laps.lap("envelopes")
        evaluated, proof = self._evaluate([blinded])
        laps.lap("oprf")
        self._open(self._answer(evaluated, proof, now_ms), QUERIER, now_ms)
        laps.lap("envelopes")
        oprf.verify_proof(self._pk, [blinded], evaluated, proof)
        oprf.finalize(x, r, evaluated[0])
        laps.lap("oprf")
        return laps

    def lookup_ms(self, serials: Sequence[str], now_ms: int) -> dict[str, float]:
        """Medians over `serials` (canonical), in ms: OPRF, envelopes, and both together."""
        laps = [self.one_lookup(s, now_ms) for s in serials]
        return {
            "lookup_crypto_oprf_ms": round(_median_ms([t.oprf for t in laps]), 3),
            "lookup_crypto_envelopes_ms": round(_median_ms([t.envelopes for t in laps]), 3),
            "lookup_crypto_ms": round(_median_ms([t.oprf + t.envelopes for t in laps]), 3),
        }

    def owner_ms(self, serials: Sequence[str], now_ms: int) -> float:
        """Median ms of the owner's cryptography for one single-serial evaluation request:
        verify the request, evaluate and prove its element, sign the answer."""
        requests = [
            self._request(oprf.blind(oprf.serial_input(s), oprf.MODE_VOPRF)[1], now_ms)
            for s in serials
        ]
        samples = []
        for request in requests:
            start = time.perf_counter()
            envelope = self._open(request, OWNER, now_ms)
            evaluated, proof = self._evaluate(decode(LookupEvaluate, envelope.body).elements)
            self._answer(evaluated, proof, now_ms)
            samples.append(time.perf_counter() - start)
        return _median_ms(samples)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_s(
    argv: Sequence[str | Path], runs: int, check: Callable[[str], bool]
) -> tuple[float, float]:
    """Medians of `argv` as a whole process, after one untimed run: wall-clock seconds,
    and CPU seconds (user + system, with any processes it waited for).

    `check` is given each run's standard output; a failed run or check raises.
    """
    walls, cpus = [], []
    for i in range(runs + 1):
        cpu, start = _children_cpu_s(), time.perf_counter()
        done = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=120
        )
        wall, cpu = time.perf_counter() - start, _children_cpu_s() - cpu
        if done.returncode != 0 or not check(done.stdout):
            raise RuntimeError(
                f"{' '.join(map(str, argv))} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        if i:
            walls.append(wall)
            cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def bare_insert(
    csv_path: Path,
    db_path: Path,
    kind: RowKind,
    table: Table,
    columns: Sequence[str],
    key: str,
    complete: Callable[[tuple[Any, ...]], tuple[Any, ...]],
    today: date,
) -> tuple[int, float]:
    """Rows stored, and seconds spent, by bare `executemany`s of the rows an import stores.

    The file is parsed as `kind` and each row made what the store inserts
    (`complete`: the parsed row with what the store adds, in `columns` order),
    converted by the columns' bind processors, all untimed, batch by batch;
    only BEGIN, the `executemany` of the batch (the store's statement: `INSERT
    ... ON CONFLICT (key) DO NOTHING`) and COMMIT are timed, with the node's pragmas.
    """
    dialect = aiosqlite.dialect()
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in columns]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))}) ON CONFLICT ({key}) DO NOTHING"
    )
    conn = sqlite3.connect(db_path, isolation_level=None)
    reader = kind.reader(csv_path)
    stored, seconds = 0, 0.0
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        for batch in parse_batches(reader, kind, load_reference(), today, BATCH_ROWS):
            rows = [
                tuple(
                    convert(value) if convert else value
                    for convert, value in zip(processors, complete(row), strict=True)
                )
                for row in batch.records
            ]
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            stored += conn.executemany(sql, rows).rowcount
            conn.execute("COMMIT")
            seconds += time.perf_counter() - start
    finally:
        reader.close()
        conn.close()
    return stored, seconds


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))


def against_bare(
    noun: str, created: int, import_s: float, stored: int, bare_s: float
) -> dict[str, float]:
    """The bare insert's figures and the import's ratio to it (`import_vs_bare`); raises if
    the bare insert stored another number of rows than the import created."""
    if stored != created:
        raise RuntimeError(f"the bare insert stored {stored} rows, the import {created}")
    return {
        "bare_insert_s": round(bare_s, 3),
        f"bare_insert_{noun}_per_s": round(stored / bare_s),
        "import_vs_bare": round(created / import_s / (stored / bare_s), 3),
    }
