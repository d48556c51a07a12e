"""The evidence of our lookups' hits (officers, auditors): the owners' signed confirmations.

Each hit of a lookup keeps the owner's signed `lookup.confirmed` answer with
our signed request as one bundle (`node.lookup.evidence`). The list shows
what was kept; a bundle's page verifies it on every view and shows what it
proves, or, if it no longer verifies (altered in the database), says so with
status 422 and offers no download. The download is the bundle byte for byte,
which anyone holding the owner's key fingerprint can check offline with
`iarms-node evidence verify FILE`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.auth import get_node, requires
from admin_ui.federation_forms import DISCLOSED_LABELS, MAKE_AGREEMENT
from admin_ui.forms import DEFAULT_LIMIT, parse_int, parse_offset
from admin_ui.render import page
from node.accounts.model import Role
from node.errors import EvidenceError
from node.lookup.evidence import VerifiedEvidence
from node.lookup.model import EvidenceEntry

reader = requires(Role.OFFICER, Role.AUDITOR)
MAX_EVIDENCE_LIMIT = 500
#: The status of a kept bundle that no longer verifies: it is there, but unusable.
UNVERIFIED_STATUS = 422


def bundle_url(evidence_id: int) -> str:
    """Where a bundle is downloaded."""
    return f"/evidence/{evidence_id}/bundle"


def proved_json(entry: EvidenceEntry, proved: VerifiedEvidence) -> dict[str, Any]:
    """A verified bundle as `/evidence/{id}.json` shows it: the signed facts win over notes."""
    noted = {"id": entry.id, "verified": True, "kept_at": entry.at, "serial": entry.serial}
    return noted | {"actor": entry.actor} | proved.to_json() | {"bundle": bundle_url(entry.id)}


def _evidence_id(request: web.Request) -> int:
    return parse_int(request.match_info["id"], "id", minimum=1)


def _list_url(offset: int, limit: int) -> str:
    return "/evidence?" + urlencode({"offset": offset, "limit": limit})


def _unverified(request: web.Request, evidence_id: int, error: EvidenceError) -> web.Response:
    """The page of a kept bundle that no longer verifies (never its content)."""
    context = {"evidence_id": evidence_id, "fault": str(error), "entry": None, "proved": None}
    data = {
        "id": evidence_id,
        "verified": False,
        "error": {"code": error.code, "message": str(error), "field": None},
    }
    return page(request, "evidence_item.html", context, data=data, status=UNVERIFIED_STATUS)


@reader
async def evidence_list(request: web.Request) -> web.Response:
    """GET /evidence(.json): the kept evidence of our lookups' hits, newest first."""
    offset = parse_offset(request.query.get("offset"))
    limit = parse_int(request.query.get("limit"), "limit", DEFAULT_LIMIT, minimum=1)
    limit = min(limit, MAX_EVIDENCE_LIMIT)
    entries, total = await get_node(request).evidence.list(limit, offset)
    has_more = offset + len(entries) < total
    context = {
        "entries": entries,
        "offset": offset,
        "total": total,
        "prev_url": _list_url(max(0, offset - limit), limit) if offset > 0 else None,
        "next_url": _list_url(offset + limit, limit) if has_more else None,
    }
    data = {
        "evidence": [e.to_json() for e in entries],
        "offset": offset,
        "limit": limit,
        "total": total,
        "has_more": has_more,
    }
    return page(request, "evidence.html", context, data=data)


@reader
async def evidence_view(request: web.Request) -> web.Response:
    """GET /evidence/{id}(.json): verify one bundle and show what it proves."""
    evidence_id = _evidence_id(request)
    try:
        entry, proved = await get_node(request).evidence.open(evidence_id)
    except EvidenceError as e:
        return _unverified(request, evidence_id, e)
    context = {
        "evidence_id": evidence_id,
        "fault": None,
        "entry": entry,
        "proved": proved,
        "labels": DISCLOSED_LABELS,
        "agreement": MAKE_AGREEMENT,
        "bundle_url": bundle_url(evidence_id),
    }
    return page(request, "evidence_item.html", context, data=proved_json(entry, proved))


@reader
async def evidence_bundle(request: web.Request) -> web.Response:
    """GET /evidence/{id}/bundle: the bundle's bytes as a file, only if it still verifies."""
    evidence_id = _evidence_id(request)
    try:
        entry, _ = await get_node(request).evidence.open(evidence_id)
    except EvidenceError as e:
        return _unverified(request, evidence_id, e)
    filename = f"iarms-evidence-{entry.id}.msgpack"
    return web.Response(
        body=entry.bundle,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
