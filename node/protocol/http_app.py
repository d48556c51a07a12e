"""The federation HTTP API (aiohttp): health and the signed descriptor for now."""

from __future__ import annotations

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node import __version__
from node.app import Node
from node.identity import fingerprint
from node.protocol import oprf
from node.protocol.descriptor import PROTOCOL_VERSIONS, sign_descriptor

MSGPACK = "application/msgpack"


def build_federation_app(node: Node, signing_key: Ed25519PrivateKey) -> web.Application:
    """The aiohttp application peers talk to."""
    app = web.Application(client_max_size=1 << 20)

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
            signing_key,
            node.config.country,
            node.config.public_url,
            node.clock.now(),
            oprf.public_key(node.oprf_key),
        )
        return web.Response(body=body, content_type=MSGPACK)

    app.router.add_get("/federation/v1/health", health)
    app.router.add_get("/federation/v1/descriptor", descriptor)
    return app
