"""How this node reaches its peers: the `PeerTransport` protocol.

Domain code depends on this protocol only; the node uses its HTTP
implementation (`node.web.http_transport`); nodes in one process can reach
each other in memory (`node.protocol.memory`). Every peer answer is a signed
envelope even when the HTTP status says "error", so `post` returns the body
whatever the status; the caller verifies it. A peer that does not answer
raises `PeerUnreachableError`.
"""

from __future__ import annotations

from typing import Protocol

from node.errors import PeerUnreachableError

__all__ = ["DESCRIPTOR_PATH", "MESSAGES_PATH", "PeerTransport", "PeerUnreachableError"]

#: Where a node serves its signed descriptor (GET) and takes messages (POST), under its URL.
DESCRIPTOR_PATH = "/federation/v1/descriptor"
MESSAGES_PATH = "/federation/v1/messages"


class PeerTransport(Protocol):
    """Reaching a peer's federation API."""

    async def get(self, url: str, max_bytes: int) -> bytes:
        """GET `url`; the body of a 2xx answer."""
        ...

    async def post(self, url: str, data: bytes, max_bytes: int) -> bytes:
        """POST msgpack `data` to `url`; the body of the answer, whatever its status."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
