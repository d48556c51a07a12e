"""Sealing a share to its aggregator (node/stats/seal.py): it opens only with that
aggregator's key and the round, query, contributor and aggregator it was sealed for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import SealedShareError, ShareError, ValidationError
from node.protocol.model import Peer, PeerStatus
from node.stats.seal import (
    aggregator_key,
    generate_key,
    open_share,
    public_key,
    seal_share,
    sealed_size,
    share_info,
)

ROUND = bytes(range(16))
KEY = generate_key()
SHARE = (1, 0, (1 << 64) - 1)
INFO = share_info(ROUND, "routes", "FRA", "DEU")


def _sealed() -> bytes:
    return seal_share(SHARE, public_key(KEY), INFO)


def test_a_sealed_share_opens_with_the_aggregator_s_key_and_info() -> None:
    sealed = _sealed()
    assert len(sealed) == sealed_size(3) == 32 + 24 + 16
    assert open_share(sealed, KEY, INFO, 3) == SHARE
    assert _sealed() != sealed  # a fresh encapsulation every time


@pytest.mark.parametrize(
    "other",
    [
        share_info(bytes(16), "routes", "FRA", "DEU"),  # another round
        share_info(ROUND, "hits_by_month", "FRA", "DEU"),  # another query
        share_info(ROUND, "routes", "ITA", "DEU"),  # claimed by another contributor
        share_info(ROUND, "routes", "FRA", "ITA"),  # forwarded to another aggregator
        b"",
    ],
    ids=["round", "query", "contributor", "aggregator", "empty"],
)
def test_a_share_does_not_open_under_another_binding(other: bytes) -> None:
    with pytest.raises(SealedShareError, match="does not open with this node's HPKE key"):
        open_share(_sealed(), KEY, other, 3)


def test_a_share_does_not_open_with_another_key() -> None:
    with pytest.raises(SealedShareError) as refused:
        open_share(_sealed(), generate_key(), INFO, 3)
    assert refused.value.code == "unsealable_share" and refused.value.status == 400


@pytest.mark.parametrize("position", [0, 31, 32, 40, 55, 56, 71])
def test_an_altered_byte_is_refused(position: int) -> None:
    """In the encapsulated key, the ciphertext or the tag."""
    sealed = bytearray(_sealed())
    sealed[position] ^= 0x01
    with pytest.raises(SealedShareError):
        open_share(bytes(sealed), KEY, INFO, 3)


@pytest.mark.parametrize("size", [0, 47, 71, 73, 80])
def test_a_mis_sized_sealed_share_is_refused_before_opening(size: int) -> None:
    sealed = (_sealed() * 2)[:size]
    message = rf"is 72 bytes \(32 \+ 3 cells of 8 \+ 16\), got {size}"
    with pytest.raises(ShareError, match=message):
        open_share(sealed, KEY, INFO, 3)


def test_a_sealed_share_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(ShareError, match="got str"):
        open_share("x" * 72, KEY, INFO, 3)  # type: ignore[arg-type]


@given(st.binary(min_size=0, max_size=120))
def test_arbitrary_bytes_never_open(data: bytes) -> None:
    with pytest.raises(ShareError):  # SealedShareError is one
        open_share(data, KEY, INFO, 3)


def test_the_info_layout() -> None:
    assert INFO == b"iarms-stats-v1" + ROUND + b"FRA" + b"DEU" + b"routes"
    longest = share_info(ROUND, "q" * 28, "FRA", "DEU")
    assert len(longest) == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((bytes(15), "routes", "FRA", "DEU"), "a round id is 16 bytes"),
        ((ROUND, "", "FRA", "DEU"), "query '': 1 to 28"),
        ((ROUND, "q" * 29, "FRA", "DEU"), "1 to 28 of a-z"),
        ((ROUND, "Routes", "FRA", "DEU"), "1 to 28 of a-z"),
        ((ROUND, "routes", "fra", "DEU"), "country 'fra' is not ISO 3166-1 alpha-3"),
        ((ROUND, "routes", "FRA", "DE"), "country 'DE' is not"),
    ],
)
def test_the_info_refuses_what_it_cannot_bind(
    args: tuple[bytes, str, str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        share_info(*args)


@pytest.mark.parametrize("recipient", [bytes(31), bytes(32)], ids=["short", "low-order"])
def test_an_unusable_aggregator_key_is_a_clear_error(recipient: bytes) -> None:
    with pytest.raises(ValidationError, match="the aggregator's HPKE key cannot be used"):
        seal_share(SHARE, recipient, INFO)


def test_a_malformed_share_is_not_sealed() -> None:
    with pytest.raises(ShareError):
        seal_share((1 << 64,), public_key(KEY), INFO)


def _peer(hpke_key: bytes | None) -> Peer:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Peer(
        "DEU", "http://deu", b"k" * 32, "f" * 64, None, PeerStatus.ACTIVE, frozenset(), at,
        "admin", None, None, None, None, None, hpke_key=hpke_key,
    )  # fmt: skip


def test_a_peer_without_an_hpke_key_cannot_aggregate() -> None:
    assert aggregator_key(_peer(b"h" * 32)) == b"h" * 32
    with pytest.raises(ValidationError, match="DEU cannot be an aggregator: its descriptor") as e:
        aggregator_key(_peer(None))
    assert e.value.field == "aggregators"
