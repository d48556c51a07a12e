"""Key rotation: a node announces its new signing key in a statement signed by the old one.

Wire form (msgpack): `{"signed": bin, "signature": bin}`, `signed` being the
msgpack array `[country, old_key (bin 32), new_key (bin 32), at (int, Unix
seconds), grace_until (int, Unix seconds)]` and `signature` the Ed25519
signature by `old_key` over exactly those bytes. The node serves it in its
descriptor (field `rotation`). A peer that finds a new key in the descriptor
switches to it only if the statement verifies under the key it trusted;
messages under the old key are accepted until `grace_until`, then refused.
A statement giving the old key more than `MAX_GRACE_S` of grace is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.errors import ValidationError
from node.protocol.keys import public_bytes

#: The longest grace period a statement may give its old key (a leaked old key
#: must not stay valid for long); `rotate-key --grace-days` is capped to match.
MAX_GRACE_S = 90 * 86400


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """A verified rotation statement."""

    country: str
    old_key: bytes
    new_key: bytes
    at: int
    grace_until: int


def sign_rotation(
    old: Ed25519PrivateKey, country: str, new_key: bytes, at: int, grace_until: int
) -> bytes:
    """The statement announcing `new_key`, signed with the old key."""
    signed = msgpack.packb(
        [country, public_bytes(old.public_key()), new_key, at, grace_until], use_bin_type=True
    )
    return msgpack.packb({"signed": signed, "signature": old.sign(signed)}, use_bin_type=True)


def named_old_key(data: bytes) -> bytes:
    """The old key a statement names, unverified: to check a node's own statement, whose
    old key it held (ValidationError if malformed)."""
    try:
        outer = msgpack.unpackb(data, raw=False, max_bin_len=4096, max_str_len=64)
        return bytes(msgpack.unpackb(outer["signed"], raw=False)[1])
    except (ValueError, TypeError, KeyError, IndexError, msgpack.ExtraData) as e:
        raise ValidationError(f"key rotation: malformed statement ({e})") from e


def verify_rotation(data: bytes, old_key: bytes) -> KeyRotation:
    """Verify a statement under the key this node trusted; ValidationError otherwise."""
    try:
        outer = msgpack.unpackb(data, raw=False, max_bin_len=4096, max_str_len=64)
        signed, signature = outer["signed"], outer["signature"]
        Ed25519PublicKey.from_public_bytes(old_key).verify(signature, signed)
        country, old, new, at, grace_until = msgpack.unpackb(signed, raw=False)
        rotation = KeyRotation(str(country), bytes(old), bytes(new), int(at), int(grace_until))
    except InvalidSignature as e:
        raise ValidationError("key rotation: not signed by the key this node trusted") from e
    except (ValueError, TypeError, KeyError, msgpack.ExtraData) as e:
        raise ValidationError(f"key rotation: malformed statement ({e})") from e
    if rotation.old_key != old_key or len(rotation.new_key) != 32:
        raise ValidationError("key rotation: the statement is for another key")
    if rotation.new_key == old_key:
        raise ValidationError("key rotation: the new key is the old key")
    if not 0 <= rotation.grace_until - rotation.at <= MAX_GRACE_S:
        raise ValidationError(
            f"key rotation: a grace period of {rotation.grace_until - rotation.at} s; "
            f"at most {MAX_GRACE_S} s ({MAX_GRACE_S // 86400} days) is accepted"
        )
    return rotation
