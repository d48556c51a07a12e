"""`PeerTransport` with no sockets: nodes of one process reach each other's federation API.

A `MemoryNetwork` maps each node's public URL to its federation API (an
`Endpoint`: the same envelope bytes in, the same signed answer bytes and
status out as over HTTP, through the same dispatcher). Its transports behave
as `node.web.http_transport.HttpTransport` does: `get` answers the
descriptor, `post` a message's answer whatever its status, an answer over
`max_bytes` or a URL nobody serves raises `PeerUnreachableError`.

It lives beside the Protocol it implements, in the kernel, so that the
import contracts and mypy hold it to the kernel's rules; the multi-node test
harness and in-process simulations use it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from node.protocol.transport import (
    DESCRIPTOR_PATH,
    MESSAGES_PATH,
    PeerUnreachableError,
)


class Endpoint(Protocol):
    """What a node's federation API answers, whatever carries it (`node.app.FederationApi`)."""

    async def message(self, data: bytes) -> tuple[int, bytes]:
        """One inbound envelope's (HTTP status, signed answer)."""
        ...

    def descriptor(self) -> bytes:
        """The node's signed descriptor."""
        ...


class MemoryNetwork:
    """The federation APIs of nodes in this process, by public URL."""

    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}

    def attach(self, url: str, endpoint: Endpoint) -> None:
        """Serve `endpoint` at `url` (a node that starts)."""
        self._endpoints[url] = endpoint

    def detach(self, url: str) -> None:
        """Serve nothing at `url` any more (a node that stops)."""
        self._endpoints.pop(url, None)

    def transport(self) -> MemoryTransport:
        """A transport that reaches the nodes attached to this network."""
        return MemoryTransport(self)

    def route(self, url: str, path: str) -> Endpoint:
        """The endpoint serving `url`, which must end in `path`."""
        base = url.removesuffix(path)
        if base == url:
            raise PeerUnreachableError(f"{url}: HTTP 404")
        endpoint = self._endpoints.get(base)
        if endpoint is None:
            raise PeerUnreachableError(f"{url}: connection refused (nothing serves {base})")
        return endpoint


def _checked(url: str, body: bytes, max_bytes: int) -> bytes:
    if len(body) > max_bytes:
        raise PeerUnreachableError(f"{url}: answer larger than {max_bytes} bytes")
    return body


class MemoryTransport:
    """`PeerTransport` over a `MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork) -> None:
        self._network = network

    async def get(self, url: str, max_bytes: int) -> bytes:
        """The descriptor at `url`; PeerUnreachableError for anything else."""
        endpoint = self._network.route(url, DESCRIPTOR_PATH)
        return _checked(url, endpoint.descriptor(), max_bytes)

    async def post(self, url: str, data: bytes, max_bytes: int) -> bytes:
        """The answer to the envelope `data`, whatever its status."""
        endpoint = self._network.route(url, MESSAGES_PATH)
        # Handled in a task of its own, as a server would: the caller giving up
        # does not cancel the receiver half-way through its unit of work.
        _status, answer = await asyncio.shield(asyncio.ensure_future(endpoint.message(data)))
        return _checked(url, answer, max_bytes)

    async def close(self) -> None:
        """Nothing to release."""
