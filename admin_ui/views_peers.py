"""The peer registry (admins): add a peer by URL and fingerprint, set its policy, revoke it.

The page also lists the outbox's dead letters: messages a peer refused for
good, which nothing will retry and an admin has to follow up by hand; and the
latest deliveries, each with its receipt (the peer's signed answer) checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

from admin_ui.auth import actor, get_node, requires
from admin_ui.federation_forms import (
    PEER_FIELDS,
    SERVICE_LABELS,
    dead_letter_json,
    delivery_json,
    parse_policy,
)
from admin_ui.forms import refuse_nul, text_values
from admin_ui.render import field_errors, page
from node.accounts.model import Role
from node.errors import ConflictError, ValidationError
from node.protocol.model import OutboxStatus
from node.protocol.transport import PeerUnreachableError

admin = requires(Role.ADMIN)
COUNTRY = r"{country:[A-Z]{3}}"
ADDED = re.compile(r"[A-Z]{3}")


async def _peers_page(
    request: web.Request,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    added: str = "",
    status: int = 200,
) -> web.Response:
    node = get_node(request)
    peers = await node.peers.list_peers()
    dead = await node.delivery.messages(OutboxStatus.DEAD)
    delivered = await node.delivery.receipts(limit=10)
    context = {
        "peers": peers,
        "dead_letters": dead,
        "deliveries": delivered,
        "services": SERVICE_LABELS,
        "values": values or {},
        "errors": errors or {},
        "added": added,
    }
    data = {
        "peers": [p.to_json() for p in peers],
        "dead_letters": [dead_letter_json(m) for m in dead],
        "deliveries": [delivery_json(m, r) for m, r in delivered],
    }
    return page(request, "peers.html", context, data=data, status=status)


@admin
async def peers_list(request: web.Request) -> web.Response:
    """GET /peers(.json): every peer with its key, policy and contact; the dead letters."""
    added = request.query.get("added", "")
    return await _peers_page(request, added=added if ADDED.fullmatch(added) else "")


@admin
async def peer_add(request: web.Request) -> web.Response:
    """POST /peers: fetch the descriptor at the URL; add the peer if its key has the fingerprint."""
    values = text_values(await request.post(), PEER_FIELDS)
    url, country, given = (values[name] for name in PEER_FIELDS)
    try:
        refuse_nul(values)
        peer = await get_node(request).peers.add(url.strip(), country, given, actor(request))
    except ValidationError as e:
        return await _peers_page(request, values=values, errors=field_errors(e), status=400)
    except ConflictError as e:
        return await _peers_page(request, values=values, errors={"country": str(e)}, status=409)
    except PeerUnreachableError as e:
        errors = {"url": f"cannot fetch the node's descriptor: {e}"}
        return await _peers_page(request, values=values, errors=errors, status=e.status)
    raise web.HTTPSeeOther(f"/peers?added={peer.country}")


@admin
async def peer_policy(request: web.Request) -> web.Response:
    """POST /peers/{country}/policy: replace what this node answers for the peer."""
    services = parse_policy((await request.post()).getall("services", []))
    await get_node(request).peers.set_policy(
        request.match_info["country"], services, actor(request)
    )
    raise web.HTTPSeeOther("/peers")


@admin
async def peer_revoke(request: web.Request) -> web.Response:
    """POST /peers/{country}/revoke: stop trusting the peer at once (the form must confirm)."""
    country = request.match_info["country"]
    if (await request.post()).get("confirm") != "yes":
        raise ValidationError(f"confirm: tick the box to confirm revoking {country}", "confirm")
    await get_node(request).peers.revoke(country, actor(request))
    raise web.HTTPSeeOther("/peers")
