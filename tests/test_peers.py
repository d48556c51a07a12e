"""Peers and trust: added by URL and fingerprint, policy, revocation (CLI over loopback HTTP)."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.errors import ConflictError, NotFoundError, ValidationError
from node.lookup import oprf
from node.protocol.model import DEFAULT_POLICY, PeerStatus, Service
from node.protocol.transport import PeerUnreachableError
from tests.conftest import wants_http
from tests.harness import Federation, free_port, run_cli


@pytest.fixture
async def fed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_path, http=wants_http(request))
    for country in ("FRA", "DEU", "ITA"):
        await federation.add(country)
    yield federation
    await federation.close()


async def test_add_with_the_right_fingerprint(fed: Federation) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    spaced = " ".join(deu.fingerprint[i : i + 4] for i in range(0, 64, 4)).upper()
    peer = await fra.n.peers.add(deu.url, "deu", spaced, "admin")
    assert (peer.country, peer.status, peer.policy) == ("DEU", PeerStatus.ACTIVE, DEFAULT_POLICY)
    assert peer.signing_key == deu.n.public_key
    assert peer.oprf_key == oprf.public_key(deu.k.oprf) == deu.n.oprf_public_key
    assert stat.S_IMODE(deu.n.config.oprf_key_file.stat().st_mode) == 0o600
    assert [p.country for p in await fra.n.peers.list_peers()] == ["DEU"]
    entry = (await fra.n.audit.recent(limit=1))[0]
    assert (entry.action, entry.target, entry.details["fingerprint"]) == (
        "peer.add",
        "peer/DEU",
        deu.fingerprint,
    )


async def test_wrong_fingerprint_or_country_is_refused(fed: Federation) -> None:
    fra, deu, ita = fed["FRA"], fed["DEU"], fed["ITA"]
    with pytest.raises(ValidationError, match="fingerprint mismatch"):
        await fra.n.peers.add(deu.url, "DEU", ita.fingerprint, "admin")
    with pytest.raises(ValidationError, match="says it is DEU, not ITA"):
        await fra.n.peers.add(deu.url, "ITA", deu.fingerprint, "admin")
    with pytest.raises(ValidationError, match="64 hexadecimal digits"):
        await fra.n.peers.add(deu.url, "DEU", "abc", "admin")
    with pytest.raises(ValidationError, match="this node's own country"):
        await fra.n.peers.add(deu.url, "FRA", deu.fingerprint, "admin")
    with pytest.raises(PeerUnreachableError):
        await fra.n.peers.add(f"http://127.0.0.1:{free_port()}", "DEU", deu.fingerprint, "admin")
    assert await fra.n.peers.list_peers() == []


async def test_policy_revoke_and_add_again(fed: Federation) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    with pytest.raises(ConflictError, match="already a peer"):
        await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    peer = await fra.n.peers.set_policy("DEU", [Service.LOOKUPS, Service.HIT_DETAILS], "admin")
    assert peer.allows(Service.HIT_DETAILS) and not peer.allows(Service.TRACES)
    revoked = await fra.n.peers.revoke("DEU", "admin")
    assert revoked.status is PeerStatus.REVOKED and not revoked.allows(Service.LOOKUPS)
    again = await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    assert again.status is PeerStatus.ACTIVE and again.policy == DEFAULT_POLICY
    with pytest.raises(NotFoundError):
        await fra.n.peers.revoke("ESP", "admin")


@pytest.mark.http
async def test_peers_from_the_command_line(fed: Federation) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    data = str(fra.data_dir)

    async def cli(*args: str) -> tuple[int, str, str]:
        return await run_cli(*args, "--data-dir", data)

    ident = json.loads((await cli("identity", "--json"))[1])
    assert ident == {"country": "FRA", "fingerprint": fra.fingerprint, "public_url": fra.url}
    code, _out, err = await cli(
        "peers", "add", deu.url, "--country", "DEU", "--fingerprint", "0" * 64
    )
    assert code == 1 and "fingerprint mismatch" in err
    code, out, err = await cli(
        "peers", "add", deu.url, "--country", "DEU", "--fingerprint", deu.fingerprint
    )
    assert code == 0, err
    assert "added DEU" in out
    code, _out, err = await cli("peers", "policy", "DEU", "--allow", "lookups,hit-details")
    assert code == 0, err
    shown = json.loads((await cli("peers", "show", "DEU", "--json"))[1])
    assert shown["policy"] == ["hit-details", "lookups"] and shown["status"] == "active"
    code, _out, err = await cli("peers", "policy", "DEU", "--allow", "everything")
    assert code == 1 and "each service must be one of" in err
    assert (await cli("peers", "revoke", "DEU"))[0] == 0
    listed = [json.loads(x) for x in (await cli("peers", "list", "--json"))[1].splitlines()]
    assert [(p["country"], p["status"]) for p in listed] == [("DEU", "revoked")]
    # the running node sees the revocation at once: it reads the registry, not a cache
    assert (await fra.n.peers.get("DEU")).status is PeerStatus.REVOKED
