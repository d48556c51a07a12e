"""`PeerTransport` over aiohttp: how the node reaches its peers' federation APIs.

aiohttp is imported when the first request is made: every command opens the
node (and so makes its transport), few of them speak to a peer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.errors import PeerUnreachableError

if TYPE_CHECKING:
    import aiohttp

MSGPACK = "application/msgpack"
#: Connections open at once to one peer.
PER_PEER_CONNECTIONS = 16


class HttpTransport:
    """`PeerTransport` over aiohttp, one connection pool for all peers."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            timeout_s = self._timeout_s
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0)),
                headers={"User-Agent": "iarms-node"},
                # Well under a peer's default per-address cap (64), so that our own
                # fan-out is never taken for an abuse of its connection guard.
                connector=aiohttp.TCPConnector(limit_per_host=PER_PEER_CONNECTIONS),
            )
        return self._session

    async def _read(self, response: aiohttp.ClientResponse, url: str, max_bytes: int) -> bytes:
        body = bytearray()
        while len(body) <= max_bytes:  # read() may return less than asked: loop to the end
            chunk = await response.content.read(max_bytes + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > max_bytes:
            raise PeerUnreachableError(f"{url}: answer larger than {max_bytes} bytes")
        return bytes(body)

    async def get(self, url: str, max_bytes: int) -> bytes:
        """GET `url`; PeerUnreachableError unless it answers 2xx."""
        import aiohttp

        try:
            async with self._client().get(url) as response:
                if response.status // 100 != 2:
                    raise PeerUnreachableError(f"{url}: HTTP {response.status}")
                return await self._read(response, url, max_bytes)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PeerUnreachableError(f"{url}: {e.__class__.__name__} {e}".strip()) from e

    async def post(self, url: str, data: bytes, max_bytes: int) -> bytes:
        """POST `data`; the answer's body whatever its status."""
        import aiohttp

        try:
            async with self._client().post(
                url, data=data, headers={"Content-Type": MSGPACK}
            ) as response:
                return await self._read(response, url, max_bytes)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PeerUnreachableError(f"{url}: {e.__class__.__name__} {e}".strip()) from e

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
