"""docs/PROTOCOL.md §4 and §5.1: the share split and HPKE seal, the interval table and the
descriptor with its HPKE key, byte for byte.

The sealed shares are also opened by the RFC 9180 key schedule written out below from the
RFC's text (test code only, to check that the suite the document names is the one sealed
with), so that the vector does not rest on the library that made it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import msgpack
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from node.errors import SealedShareError
from node.protocol.descriptor import sign_descriptor, verify_descriptor
from node.stats.noise import describe, half_width, noise_scale
from node.stats.seal import SUITE_IDS, open_share, public_key, seal_share, share_info
from node.stats.shares import combine, decode_share, encode_share, split
from tests.test_protocol_vectors import PROTOCOL, vector


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, b"HPKE-v1" + suite + label + ikm, hashlib.sha256).digest()


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def rfc9180_open(sealed: bytes, sk: bytes, info: bytes) -> bytes:
    """Base-mode single-shot open, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM."""
    kem_suite = b"KEM" + SUITE_IDS[0].to_bytes(2, "big")
    suite = b"HPKE" + b"".join(i.to_bytes(2, "big") for i in SUITE_IDS)
    enc, ciphertext = sealed[:32], sealed[32:]
    key = X25519PrivateKey.from_private_bytes(sk)
    dh = key.exchange(X25519PublicKey.from_public_bytes(enc))
    kem_context = enc + key.public_key().public_bytes_raw()
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem_suite, eae_prk, b"shared_secret", kem_context, 32)
    context = (
        b"\x00"  # mode_base
        + _labeled_extract(suite, b"", b"psk_id_hash", b"")
        + _labeled_extract(suite, b"", b"info_hash", info)
    )
    secret = _labeled_extract(suite, shared, b"secret", b"")
    aead_key = _labeled_expand(suite, secret, b"key", context, 16)
    nonce = _labeled_expand(suite, secret, b"base_nonce", context, 12)  # sequence number 0
    return AESGCM(aead_key).decrypt(nonce, ciphertext, b"")


def test_the_share_and_seal_vector() -> None:
    v = vector("stats-share-seal")
    counts = [int(c) for c in v["counts"].split(",")]
    random = bytes.fromhex(v["random"])
    shares = split(counts, 2, lambda n: random[:n] if n == len(random) else b"")
    assert [encode_share(s).hex() for s in shares] == [v["share_DEU"], v["share_ITA"]]
    assert combine(shares) == tuple(counts)
    round_id = bytes.fromhex(v["round_id"])
    for aggregator, share in zip(("DEU", "ITA"), shares, strict=True):
        sk = bytes.fromhex(v[f"sk_{aggregator}"])
        key = X25519PrivateKey.from_private_bytes(sk)
        assert public_key(key).hex() == v[f"pk_{aggregator}"]
        info = share_info(round_id, v["query"], v["contributor"], aggregator)
        assert info.hex() == v[f"info_{aggregator}"]
        sealed = bytes.fromhex(v[f"sealed_{aggregator}"])
        assert len(sealed) == 72
        assert open_share(sealed, key, info, len(counts)) == share
        assert decode_share(rfc9180_open(sealed, sk, info), len(counts)) == share
        again = seal_share(share, public_key(key), info)  # a fresh encapsulation
        assert again != sealed and rfc9180_open(again, sk, info) == encode_share(share)
    deu = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["sk_DEU"]))
    ita_info = bytes.fromhex(v["info_ITA"])
    with pytest.raises(SealedShareError):  # ITA's share does not open at DEU
        open_share(bytes.fromhex(v["sealed_ITA"]), deu, ita_info, len(counts))


def test_the_interval_table() -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    block = text.split("<!-- stats-interval-table -->\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
    assert len(rows) == 5
    for epsilon, sensitivity, aggregators, scale, t in rows:
        assert noise_scale(float(epsilon), int(sensitivity)) == pytest.approx(float(scale))
        assert half_width(float(scale), int(aggregators)) == int(t)
        noise = describe(float(epsilon), int(sensitivity), int(aggregators))
        assert noise.to_json()["interval_half_width"] == int(t)
    described = re.search(r'`\{"distribution": "(\w+)",\n"scale"', text)
    assert described and described.group(1) == describe(1, 1, 2).distribution


def test_the_descriptor_vector() -> None:
    v = vector("descriptor-DEU")
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["seed"]))
    assert key.public_key().public_bytes_raw().hex() == v["signing_key"]
    data = sign_descriptor(
        key,
        v["country"],
        v["url"],
        datetime.fromtimestamp(int(v["now"]), UTC),
        bytes.fromhex(v["oprf_key"]),
        None,
        hpke_key=bytes.fromhex(v["hpke_key"]),
    )
    outer = msgpack.unpackb(data)
    assert (outer["signed"].hex(), outer["signature"].hex()) == (v["signed"], v["signature"])
    assert len(data) == 364
    descriptor = verify_descriptor(data)
    assert descriptor.hpke_key == bytes.fromhex(v["hpke_key"])
    assert descriptor.oprf_key == bytes.fromhex(v["oprf_key"])
    assert descriptor.valid_until - descriptor.valid_from == 30 * 86400
    stats = vector("stats-share-seal")
    assert v["hpke_key"] == stats["pk_DEU"]  # the aggregator DEU of §4.4
