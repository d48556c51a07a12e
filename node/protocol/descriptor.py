"""The node descriptor: who this node is, signed with its Ed25519 key.

Wire form (msgpack): a map `{"signed": bin, "signature": bin}` where `signed`
is the msgpack encoding of `{"country", "signing_key", "oprf_key", "rotation",
"endpoints", "protocol_versions", "valid_from", "valid_until", "hpke_key"}` and
`signature` is the Ed25519 signature over exactly those bytes by
`signing_key` (PROTOCOL.md §5.1). Descriptors of nodes older than statistics
have no `hpke_key`: they still verify, and such a peer cannot aggregate. A
descriptor proves only that its server holds that key: an admin trusts it by
comparing the key's fingerprint with the one the peer's admin gave out of band.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.errors import ValidationError
from node.protocol.keys import public_bytes

PROTOCOL_VERSIONS = ("1",)
VALIDITY = timedelta(days=30)
#: How far ahead of this node's clock a descriptor's `valid_from` may be (clock skew).
VALIDITY_SKEW_S = 300


@dataclass(frozen=True, slots=True)
class NodeDescriptor:
    """What a node says about itself."""

    country: str
    signing_key: bytes
    oprf_key: bytes | None
    rotation: bytes | None
    endpoints: dict[str, str]
    protocol_versions: tuple[str, ...]
    valid_from: int
    valid_until: int
    #: The X25519 public key statistics shares are sealed to (None: an older node).
    hpke_key: bytes | None = None


def check_node_url(text: str, what: str, field: str | None = None) -> str:
    """A node's base URL: http(s), a host, no query; trailing slash removed.

    Raises:
        ValidationError: naming `what` (and the form `field`, if given).
    """
    parts = urlsplit(str(text))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(
            f"{what}: expected an http:// or https:// URL such as "
            f"https://iarms.police.example:8443, got {text!r}",
            field,
        )
    return str(text).rstrip("/")


def sign_descriptor(
    key: Ed25519PrivateKey,
    country: str,
    public_url: str,
    now: datetime,
    oprf_key: bytes | None = None,
    rotation: bytes | None = None,
    *,
    hpke_key: bytes | None = None,
) -> bytes:
    """The signed descriptor bytes this node serves."""
    body = {
        "country": country,
        "signing_key": public_bytes(key.public_key()),
        "oprf_key": oprf_key,
        "rotation": rotation,
        "endpoints": {"federation": f"{public_url}/federation/v1"},
        "protocol_versions": list(PROTOCOL_VERSIONS),
        "valid_from": int(now.timestamp()),
        "valid_until": int((now + VALIDITY).timestamp()),
        "hpke_key": hpke_key,
    }
    signed = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb({"signed": signed, "signature": key.sign(signed)}, use_bin_type=True)


def _optional_key(body: dict[str, object], name: str) -> bytes | None:
    """A 32-byte public key the descriptor may leave out (absent or nil)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValidationError(f"descriptor: {name} must be 32 bytes")
    return value


def verify_descriptor(data: bytes) -> NodeDescriptor:
    """Check a descriptor's self-signature (before decoding its body) and decode it."""
    try:
        outer = msgpack.unpackb(data, raw=False, max_bin_len=4096, max_str_len=4096)
        signed, signature = outer["signed"], outer["signature"]
        body_key = msgpack.unpackb(signed, raw=False)["signing_key"]
        Ed25519PublicKey.from_public_bytes(body_key).verify(signature, signed)
        body = msgpack.unpackb(signed, raw=False)
        descriptor = NodeDescriptor(
            country=str(body["country"]),
            signing_key=bytes(body["signing_key"]),
            oprf_key=_optional_key(body, "oprf_key"),
            rotation=bytes(body["rotation"]) if body.get("rotation") is not None else None,
            endpoints={str(k): str(v) for k, v in dict(body["endpoints"]).items()},
            protocol_versions=tuple(str(v) for v in body["protocol_versions"]),
            valid_from=int(body["valid_from"]),
            valid_until=int(body["valid_until"]),
            hpke_key=_optional_key(body, "hpke_key"),
        )
    except InvalidSignature as e:
        raise ValidationError("descriptor: signature does not verify") from e
    except (ValueError, TypeError, KeyError, msgpack.ExtraData) as e:
        raise ValidationError(f"descriptor: malformed ({e})") from e
    if not (len(descriptor.country) == 3 and descriptor.country.isalpha()):
        raise ValidationError(f"descriptor: country {descriptor.country!r} is not alpha-3")
    if "federation" not in descriptor.endpoints:
        raise ValidationError("descriptor: no federation endpoint")
    if descriptor.valid_from > descriptor.valid_until:
        raise ValidationError("descriptor: valid_from is after valid_until")
    return descriptor


def check_current(descriptor: NodeDescriptor, country: str, url: str, now: datetime) -> None:
    """A descriptor this node may act on: of `country`, and valid at `now` (PROTOCOL.md §5.1).

    Raises:
        ValidationError: naming the country it claims, or its validity and our clock.
    """
    if descriptor.country != country:
        raise ValidationError(
            f"the node at {url} says it is {descriptor.country}, not {country}", "country"
        )
    if not descriptor.valid_from - VALIDITY_SKEW_S <= now.timestamp() <= descriptor.valid_until:
        raise ValidationError(
            f"the descriptor of {url} is valid from "
            f"{datetime.fromtimestamp(descriptor.valid_from, UTC):%Y-%m-%d %H:%M} to "
            f"{datetime.fromtimestamp(descriptor.valid_until, UTC):%Y-%m-%d %H:%M} UTC; "
            f"this node's clock says {now:%Y-%m-%d %H:%M} UTC"
        )
