"""The federation HTTP API (aiohttp): health, the signed descriptor, and messages.

`POST /federation/v1/messages` takes one envelope and answers one signed
envelope (an answer or an error); the HTTP status is only a hint. What is
answered is `node.app.FederationApi`'s, as over the in-memory transport.
"""

from __future__ import annotations

from aiohttp import web

from node import __version__
from node.app import Federation, FederationApi, Node
from node.protocol.descriptor import PROTOCOL_VERSIONS
from node.protocol.keys import fingerprint
from node.protocol.transport import DESCRIPTOR_PATH, MESSAGES_PATH
from node.web.guard import connection_middleware

MSGPACK = "application/msgpack"


def build_federation_app(node: Node, fed: Federation) -> web.Application:
    """The aiohttp application peers talk to."""
    app = web.Application(middlewares=[connection_middleware])
    api = FederationApi(node, fed)
    limit = node.config.max_envelope_bytes

    async def messages(request: web.Request) -> web.Response:
        # Read at most one byte over the limit: the receiver answers "too large", signed.
        data = bytearray()
        while len(data) <= limit:
            chunk = await request.content.read(limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
        status, answer = await api.message(bytes(data))
        return web.Response(status=status, body=answer, content_type=MSGPACK)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "country": node.config.country,
                "fingerprint": fingerprint(node.public_key),
                "protocol_versions": list(PROTOCOL_VERSIONS),
                "software": f"iarms-node {__version__}",
            }
        )

    async def descriptor(_request: web.Request) -> web.Response:
        return web.Response(body=api.descriptor(), content_type=MSGPACK)

    app.router.add_get("/federation/v1/health", health)
    app.router.add_get(DESCRIPTOR_PATH, descriptor)
    app.router.add_post(MESSAGES_PATH, messages)
    return app
