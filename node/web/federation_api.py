"""The federation HTTP API (aiohttp): health, the signed descriptor, and messages.

`POST /federation/v1/messages` takes one envelope and answers one signed
envelope (an answer or an error); the HTTP status is only a hint.
"""

from __future__ import annotations

from aiohttp import web

from node import __version__
from node.app import Federation, Node
from node.identity import load_rotation
from node.protocol.descriptor import PROTOCOL_VERSIONS, sign_descriptor
from node.protocol.keys import fingerprint
from node.web.guard import connection_middleware

MSGPACK = "application/msgpack"


def build_federation_app(node: Node, fed: Federation) -> web.Application:
    """The aiohttp application peers talk to."""
    app = web.Application(middlewares=[connection_middleware])

    limit = node.config.max_envelope_bytes

    async def messages(request: web.Request) -> web.Response:
        # Read at most one byte over the limit: the receiver answers "too large", signed.
        data = bytearray()
        while len(data) <= limit:
            chunk = await request.content.read(limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
        status, answer = await fed.dispatcher.handle(bytes(data))
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
        body = sign_descriptor(
            fed.signing_key,
            node.config.country,
            node.config.public_url,
            node.clock.now(),
            node.oprf_public_key,
            load_rotation(node.config.data_dir),
        )
        return web.Response(body=body, content_type=MSGPACK)

    app.router.add_get("/federation/v1/health", health)
    app.router.add_get("/federation/v1/descriptor", descriptor)
    app.router.add_post("/federation/v1/messages", messages)
    return app
