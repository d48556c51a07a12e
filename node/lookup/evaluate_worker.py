"""Evaluating the OPRF of this node's own serials, in this process or in a worker.

Indexing a million records costs about a minute of one core's elliptic-curve
multiplications, so `LookupIndex` spreads large jobs over worker processes
(`node.lookup.oprf_workers`). A worker is `python -m
node.lookup.evaluate_worker`: a fresh interpreter that imports only this
module, `node.lookup.oprf` and the standard library, so it starts quickly
and never re-imports whatever script drives the node.

Its standard input carries first the 32-byte OPRF private key (never argv or
the environment: the key is a secret), then requests; its standard output
carries one answer per request, in order. Both are frames: a 4-byte
big-endian length, then the payload. A request is canonical serials in UTF-8
joined by "\\n" (a canonical serial is letters and digits only); its answer
is their 64-byte outputs, concatenated in the same order. A zero-length
request, or the end of standard input, ends the worker. A failure (a bad key,
a bad serial) ends it with a traceback on standard error, whose last line
the parent reports.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from node.lookup import oprf

KEY_SIZE = 32
_SEPARATOR = "\n"


def evaluate_serials(key: bytes, serials: list[str]) -> list[bytes]:
    """The OPRF outputs (VOPRF mode) of canonical serials, in order."""
    return oprf.evaluate_direct_many(key, [oprf.serial_input(s) for s in serials], oprf.MODE_VOPRF)


def frame(payload: bytes) -> bytes:
    """`payload` with its 4-byte big-endian length in front."""
    return len(payload).to_bytes(4, "big") + payload


def encode_request(serials: list[str]) -> bytes:
    """The payload of a request for the outputs of `serials` (at least one)."""
    return _SEPARATOR.join(serials).encode()


def decode_answer(payload: bytes) -> list[bytes]:
    """The outputs carried by an answer's payload."""
    size = oprf.OUTPUT_SIZE
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def _read_frame(stream: BinaryIO) -> bytes:
    """The next frame's payload; empty at the end of the stream."""
    header = stream.read(4)
    if len(header) < 4:
        return b""
    size = int.from_bytes(header, "big")
    payload = stream.read(size)
    if len(payload) != size:
        raise EOFError(f"a request frame ended after {len(payload)} of {size} bytes")
    return payload


def main() -> int:
    """The worker process (see the module docstring)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    key = stdin.read(KEY_SIZE)
    if len(key) != KEY_SIZE:
        raise EOFError(f"expected a {KEY_SIZE}-byte key on standard input, got {len(key)} bytes")
    while request := _read_frame(stdin):
        outputs = evaluate_serials(key, request.decode().split(_SEPARATOR))
        stdout.write(frame(b"".join(outputs)))
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
