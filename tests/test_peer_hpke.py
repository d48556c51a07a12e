"""Each node's HPKE key in its descriptor, and peers keeping it: when added, when following a
rotation, and fetched again for a peer added before it had one (PROTOCOL.md §5.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.app import FederationApi, Node
from node.auditing import AuditEvent
from node.errors import ValidationError
from node.identity import rotate_signing_key
from node.protocol.descriptor import sign_descriptor, verify_descriptor
from node.stats.seal import aggregator_key
from node.store.peers import PeersStore
from tests.harness import Federation

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def _resigned(data: bytes, key: Ed25519PrivateKey, **changes: object) -> bytes:
    """`data`'s descriptor with fields changed (None: removed), signed again by `key`."""
    body = msgpack.unpackb(msgpack.unpackb(data)["signed"])
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    signed = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb({"signed": signed, "signature": key.sign(signed)}, use_bin_type=True)


def test_a_descriptor_carries_the_hpke_key() -> None:
    data = sign_descriptor(KEY, "DEU", "https://deu.example", NOW, hpke_key=b"h" * 32)
    assert verify_descriptor(data).hpke_key == b"h" * 32
    without = sign_descriptor(KEY, "DEU", "https://deu.example", NOW)
    assert verify_descriptor(without).hpke_key is None


def test_a_descriptor_of_an_older_node_without_the_field_is_read() -> None:
    data = sign_descriptor(KEY, "DEU", "https://deu.example", NOW, hpke_key=b"h" * 32)
    old = _resigned(data, KEY, hpke_key=None)
    assert "hpke_key" not in msgpack.unpackb(msgpack.unpackb(old)["signed"])
    descriptor = verify_descriptor(old)
    assert (descriptor.country, descriptor.hpke_key) == ("DEU", None)


@pytest.mark.parametrize("value", [b"h" * 31, b"h" * 33, "h" * 32, 32, [1] * 32])
def test_a_malformed_hpke_key_is_refused(value: object) -> None:
    data = sign_descriptor(KEY, "DEU", "https://deu.example", NOW)
    with pytest.raises(ValidationError, match="descriptor: hpke_key must be 32 bytes"):
        verify_descriptor(_resigned(data, KEY, hpke_key=value))
    with pytest.raises(ValidationError, match="descriptor: oprf_key must be 32 bytes"):
        verify_descriptor(_resigned(data, KEY, oprf_key=value))


async def test_the_store_keeps_a_peer_s_hpke_key(node: Node) -> None:
    """On each backend."""
    store, at = PeersStore(node.db), node.clock.now()
    event = AuditEvent("admin", "peer.add", "peer/DEU")
    args = ("http://127.0.0.1:1", b"k" * 32, None, b"d", frozenset(), at, event)
    await store.add_peer("DEU", *args, hpke_key=b"h" * 32)
    await store.add_peer("ITA", *args)
    assert (await store.get_peer("DEU")).hpke_key == b"h" * 32
    assert (await store.get_peer("ITA")).hpke_key is None
    assert [p.hpke_key for p in await store.get_peers()] == [b"h" * 32, None]
    peer = await store.set_peer("ITA", {"hpke_key": b"i" * 32}, at, None)
    assert peer.hpke_key == (await store.get_peer("ITA")).hpke_key == b"i" * 32
    assert peer.to_json()["hpke_key"] == (b"i" * 32).hex()


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_path)
    for country in ("FRA", "DEU"):
        await federation.add(country)
    yield federation
    await federation.close()


def _hpke_public(fed: Federation, country: str) -> bytes:
    return fed[country].k.hpke.public_key().public_bytes_raw()


@pytest.fixture
def deu_is_old(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DEU serves its descriptor as a node from before statistics: no `hpke_key`."""
    served = FederationApi.descriptor

    def descriptor(api: FederationApi) -> bytes:
        data = served(api)
        if api.node.config.country != "DEU":
            return data
        return _resigned(data, api.fed.signing_key, hpke_key=None)

    monkeypatch.setattr(FederationApi, "descriptor", descriptor)
    yield
    monkeypatch.undo()


async def test_an_added_peer_s_hpke_key_is_stored(fed: Federation) -> None:
    deu = fed["DEU"]
    assert deu.n.hpke_public_key == _hpke_public(fed, "DEU")
    peer = await fed["FRA"].n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    assert peer.hpke_key == _hpke_public(fed, "DEU") == aggregator_key(peer)
    assert peer.hpke_key != _hpke_public(fed, "FRA")


async def test_a_peer_added_before_it_had_a_key_gets_it_fetched_again(
    fed: Federation, monkeypatch: pytest.MonkeyPatch, deu_is_old: None
) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    peer = await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    assert peer.hpke_key is None
    with pytest.raises(ValidationError, match="DEU cannot be an aggregator"):
        aggregator_key(peer)
    assert (await fra.n.peers.refresh_hpke_key("DEU")).hpke_key is None  # still old
    monkeypatch.undo()  # DEU is upgraded
    peer = await fra.n.peers.refresh_hpke_key("DEU")
    assert peer.hpke_key == _hpke_public(fed, "DEU") == (await fra.n.peers.get("DEU")).hpke_key
    [entry] = await fra.n.audit.recent(action="peer.hpke_key")
    assert (entry.actor, entry.target) == ("peer:DEU", "peer/DEU")
    assert entry.details["hpke_key"] == _hpke_public(fed, "DEU").hex()
    await fra.n.peers.refresh_hpke_key("DEU")  # unchanged: nothing written
    assert len(await fra.n.audit.recent(action="peer.hpke_key")) == 1


async def test_a_descriptor_under_another_key_is_not_taken(
    fed: Federation, monkeypatch: pytest.MonkeyPatch, deu_is_old: None
) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    monkeypatch.undo()
    impostor = Ed25519PrivateKey.generate()
    served = FederationApi.descriptor

    def descriptor(api: FederationApi) -> bytes:
        public = impostor.public_key().public_bytes_raw()
        return _resigned(served(api), impostor, signing_key=public)

    monkeypatch.setattr(FederationApi, "descriptor", descriptor)
    with pytest.raises(ValidationError, match="signed with a key this node does not trust"):
        await fra.n.peers.refresh_hpke_key("DEU")
    assert (await fra.n.peers.get("DEU")).hpke_key is None


async def test_following_a_rotation_stores_the_hpke_key(
    fed: Federation, monkeypatch: pytest.MonkeyPatch, deu_is_old: None
) -> None:
    """DEU, added while old, upgrades and rotates its signing key: FRA follows the rotation
    and takes the HPKE key from the same descriptor; the HPKE key outlives the rotation."""
    fra, deu = fed["FRA"], fed["DEU"]
    await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    monkeypatch.undo()
    before = _hpke_public(fed, "DEU")
    rotate_signing_key(
        deu.n.config.signing_key_file, None, "DEU", deu.clock.now(), timedelta(days=1)
    )
    await fed.stop("DEU")
    await fed.start("DEU")
    assert await fra.n.peers.follow_rotation("DEU")
    peer = await fra.n.peers.get("DEU")
    assert peer.signing_key == deu.n.public_key and peer.hpke_key == before
    assert _hpke_public(fed, "DEU") == before
