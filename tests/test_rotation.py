"""Key rotation: peers follow a new key announced under the old one; the old key expires."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import ValidationError
from node.identity import load_public_key, load_signing_key, public_bytes, rotate_signing_key
from node.lookup.querier import Query
from node.protocol.client import pack
from node.protocol.envelope import ERROR, decode_error, open_envelope, seal, to_ms
from node.protocol.model import Service
from node.protocol.receive import select_key
from node.protocol.rotation import sign_rotation, verify_rotation
from node.protocol.transport import MESSAGES_PATH
from tests.harness import Federation


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_path)
    for country in ("FRA", "DEU"):
        await federation.add(country)
    await federation.peer_all(Service.LOOKUPS)
    await federation["DEU"].n.lookup_index.refresh(federation["DEU"].k.oprf)
    yield federation
    await federation.close()


async def _post_as_deu(fed: Federation, key: object) -> str:
    fra = fed["FRA"]
    data = seal(
        key,
        "DEU",
        "FRA",
        "index.get",
        pack({"since": None}),  # type: ignore[arg-type]
        timestamp_ms=to_ms(fra.clock.now()),
    )
    answer = await fed["DEU"].n.transport.post(fra.url + MESSAGES_PATH, data, 1 << 20)
    deu_peer = await fed["DEU"].n.peers.get("FRA")
    envelope = open_envelope(
        answer,
        me="DEU",
        now_ms=to_ms(fra.clock.now()),
        keys=lambda _s, k: select_key(deu_peer, k, fra.clock.now()),
    )
    return decode_error(envelope).code if envelope.type == ERROR else envelope.type


async def test_peers_follow_a_rotation_and_refuse_the_old_key_after_grace(
    fed: Federation,
) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    old_key = deu.k.signing
    old_public = deu.n.public_key
    config = deu.n.config
    rotation = rotate_signing_key(
        config.signing_key_file, None, "DEU", deu.clock.now(), timedelta(days=1)
    )
    await fed.stop("DEU")
    await fed.start("DEU")  # now signs with the new key and serves the statement
    assert deu.n.public_key == rotation.new_key != old_public

    results = await fra.f.lookups.lookup([Query("X-1")], "c", "o")  # answers under the new key
    assert [r.result for r in results] == ["no_hit"], results
    peer = await fra.n.peers.get("DEU")
    assert (peer.signing_key, peer.previous_key) == (rotation.new_key, old_public)
    assert (await fra.n.audit.recent(action="peer.key_rotated"))[0].target == "peer/DEU"

    assert await _post_as_deu(fed, load_signing_key(config.signing_key_file, None)) == "index"
    assert await _post_as_deu(fed, old_key) == "index"  # still in the grace period
    fed.clock.advance(2 * 86400)
    assert await _post_as_deu(fed, old_key) == "unknown_sender"
    assert await _post_as_deu(fed, load_signing_key(config.signing_key_file, None)) == "index"


def test_rotation_with_a_passphrase_seals_the_new_and_the_retired_key(tmp_path: Path) -> None:
    """Even an old key in the PBKDF2 PEM of older versions is sealed as it is retired."""
    passphrase, key_file = b"a passphrase", tmp_path / "signing_key.pem"
    old = Ed25519PrivateKey.generate()
    key_file.write_bytes(
        old.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )
    key_file.chmod(0o600)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    rotation = rotate_signing_key(key_file, passphrase, "FRA", at, timedelta(days=1))
    assert rotation.old_key == public_bytes(old.public_key())
    (retired,) = tmp_path.glob("signing_key.*.retired.pem")
    for path, public in ((key_file, rotation.new_key), (retired, rotation.old_key)):
        assert path.read_bytes().startswith(b"iarms-signing-key\x01")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert public_bytes(load_signing_key(path, passphrase).public_key()) == public
    assert load_public_key(key_file) == rotation.new_key
    assert sorted(p.name for p in tmp_path.iterdir() if p != retired) == [
        "rotation.msgpack",
        "signing_key.pem",
        "signing_key.pub",
    ]


OLD = Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32)
NEW = Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32).public_key().public_bytes_raw()
T0 = 1_780_000_000


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (sign_rotation(Ed25519PrivateKey.generate(), "DEU", NEW, T0, T0 + 3600), "not signed by"),
        (sign_rotation(OLD, "DEU", NEW, T0, T0 + 91 * 86400), r"at most 7776000 s \(90 days\)"),
        (sign_rotation(OLD, "DEU", NEW, T0, T0 - 1), "a grace period of -1 s"),
        (sign_rotation(OLD, "DEU", public_bytes(OLD.public_key()), T0, T0), "is the old key"),
        (b"\x81\xa6signed\xc0", "malformed statement"),
    ],
)
def test_a_statement_the_old_key_did_not_make_or_that_overreaches_is_refused(
    statement: bytes, message: str
) -> None:
    old = public_bytes(OLD.public_key())
    assert verify_rotation(sign_rotation(OLD, "DEU", NEW, T0, T0 + 90 * 86400), old).new_key == NEW
    with pytest.raises(ValidationError, match=message):
        verify_rotation(statement, old)
