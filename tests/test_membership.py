"""Membership indexes: round trips, no false negatives, FPR, size, strict parsing, deltas."""

from __future__ import annotations

import random
import struct
import time
import tracemalloc
from hashlib import sha512

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.errors import IndexDeltaError, IndexFormatError
from node.lookup.golomb import GolombCodedSet
from node.lookup.index_builder import IndexBuilder
from node.lookup.membership import (
    MAGIC,
    FullIndex,
    IndexDelta,
    MembershipIndex,
    SortedItems,
    apply_delta,
    build_delta,
    build_full,
    encode_index,
    item_of,
    parse_index,
    should_rebuild,
    update_index,
)

U64 = st.integers(min_value=0, max_value=2**64 - 1)
SET_HEADER = struct.Struct(">BBQQI")
DOC_HEADER = struct.Struct(">4sBB3sQ")


def random_items(count: int, seed: int) -> list[int]:
    """Uniform 64-bit items, as OPRF outputs give."""
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(count)]


def full_index(country: str, version: int, items: list[int]) -> MembershipIndex:
    document = parse_index(build_full(country, version, items))
    assert isinstance(document, FullIndex)
    return MembershipIndex.from_full(document)


def delta_of(data: bytes) -> IndexDelta:
    document = parse_index(data)
    assert isinstance(document, IndexDelta)
    return document


def assert_consistent(data: bytes, document: FullIndex | IndexDelta) -> None:
    """A parsed document is canonical: it encodes back to exactly the bytes parsed."""
    assert encode_index(document) == bytes(data)
    if isinstance(document, IndexDelta):
        assert list(document.added) == sorted(set(document.added))
        assert list(document.removed) == sorted(set(document.removed))
        assert document.added.isdisjoint(document.removed)
        assert 1 <= document.base_version < document.version


# --- items, round trips, no false negatives ---------------------------------------------


def test_item_of_is_the_first_eight_bytes_big_endian() -> None:
    output = sha512(b"serial").digest()
    assert item_of(output) == int.from_bytes(output[:8], "big")
    with pytest.raises(ValueError, match="64 bytes"):
        item_of(output[:32])


@pytest.mark.parametrize("count", [0, 1, 2, 3, 1000])
def test_full_round_trip_and_every_item_found(count: int) -> None:
    items = random_items(count, seed=count)
    data = build_full("FRA", 7, items)
    document = parse_index(data)
    assert isinstance(document, FullIndex)
    assert (document.country, document.version, len(document.items)) == ("FRA", 7, count)
    assert document.items == GolombCodedSet.from_items(items)
    assert all(item in document.items for item in items)
    assert_consistent(data, document)


@settings(max_examples=60, deadline=None)
@given(st.lists(U64, max_size=60))
def test_any_items_round_trip_without_false_negatives(items: list[int]) -> None:
    data = build_full("DEU", 1, items)
    document = parse_index(data)
    assert isinstance(document, FullIndex)
    assert len(document.items) == len(set(items))
    assert all(item in document.items for item in items)
    assert_consistent(data, document)


def test_delta_round_trip() -> None:
    data = build_delta("ITA", 5, 3, added=[9, 2, 2**64 - 1], removed=[4, 0])
    delta = delta_of(data)
    assert (delta.country, delta.version, delta.base_version) == ("ITA", 5, 3)
    assert list(delta.added) == [2, 9, 2**64 - 1]
    assert list(delta.removed) == [0, 4]
    assert_consistent(data, delta)


def test_same_input_gives_same_bytes() -> None:
    items = random_items(5000, seed=1)
    shuffled = list(reversed(items)) + items[:10]
    assert build_full("FRA", 2, items) == build_full("FRA", 2, shuffled)
    assert build_delta("FRA", 3, 2, items[:5], items[5:9]) == build_delta(
        "FRA", 3, 2, reversed(items[:5]), set(items[5:9])
    )


def test_no_false_negatives_after_deltas_with_adds_and_removes() -> None:
    items = random_items(3000, seed=2)
    base, later = items[:2000], items[2000:]
    index = full_index("ESP", 1, base)
    removed = base[:300]
    index = apply_delta(index, delta_of(build_delta("ESP", 2, 1, later[:500], removed)))
    active = set(base[300:]) | set(later[:500])
    assert all(index.contains(item) for item in active)
    assert not any(index.contains(item) for item in removed)
    # The next delta replaces the previous one: cumulative since the base.
    index = apply_delta(index, delta_of(build_delta("ESP", 3, 1, later, base[:100])))
    active = set(base[100:]) | set(later)
    assert all(item in index for item in active)
    assert not any(item in index for item in base[:100])


# --- false positives, size, speed --------------------------------------------------------


def test_no_false_positive_among_a_million_non_members() -> None:
    """Each non-member matches with probability about 2^-32, so 10^6 of them give
    an expected 10^6 / 2^32 ≈ 0.00023 false positives: seeing one is a bug."""
    members = random_items(100_000, seed=3)
    index = full_index("FRA", 1, members)
    member_set = set(members)
    probes = [item for item in random_items(1_000_000, seed=4) if item not in member_set]
    contains = index.base.__contains__
    assert sum(map(contains, probes)) == 0


def test_at_most_five_bytes_per_record_at_100k_items() -> None:
    count = 100_000
    size = len(build_full("FRA", 1, random_items(count, seed=5)))
    bytes_per_record = size / count
    assert bytes_per_record <= 5
    assert 4.1 < bytes_per_record < 4.3  # 32 bits of remainder + ~1.6 of quotient


def test_bulk_check_of_ten_thousand_serials_is_fast() -> None:
    index = full_index("FRA", 1, random_items(200_000, seed=6))
    outputs = [sha512(f"SN{i}".encode()).digest() for i in range(10_000)]
    started = time.perf_counter()
    found = [index.contains(item_of(output)) for output in outputs]
    elapsed = time.perf_counter() - started
    assert not any(found)
    assert elapsed < 0.5


# --- strict parsing ----------------------------------------------------------------------

VALID_FULL = build_full("FRA", 3, random_items(20, seed=7))
VALID_DELTA = build_delta("FRA", 4, 3, random_items(3, seed=8), random_items(2, seed=9))


def full_with_set_header(n: int, quotient_len: int, tail: bytes = b"") -> bytes:
    doc = DOC_HEADER.pack(MAGIC, 1, 1, b"FRA", 1)
    return doc + SET_HEADER.pack(1, 32, 2**32, n, quotient_len) + tail


def replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


MALFORMED = [
    (b"", "header alone"),
    (replace(VALID_FULL, 0, b"XXXX"), "magic"),
    (replace(VALID_FULL, 4, b"\x02"), "index format 2"),
    (replace(VALID_FULL, 5, b"\x03"), "kind 3"),
    (replace(VALID_FULL, 6, b"fra"), "capital ASCII"),
    (replace(VALID_FULL, 6, b"F\xc9A"), "capital ASCII"),
    (replace(VALID_FULL, 9, bytes(8)), "version 0"),
    (replace(VALID_FULL, 9, b"\xff" * 8), "outside"),
    (replace(VALID_FULL, 17, b"\x02"), "set format 2"),
    (replace(VALID_FULL, 18, b"\x1f"), "P=31"),
    (full_with_set_header(10**12, 0), "more than the maximum 5000000"),
    (full_with_set_header(4, 0), "impossible for 4 items"),
    (full_with_set_header(4, 1, bytes(10)), "is 39 bytes, got 32"),
    (full_with_set_header(0, 1, b"\x00"), "impossible for 0 items"),
    (full_with_set_header(1, 1, bytes(4) + b"\xff"), "ends after 0 of 1"),
    (full_with_set_header(1, 1, bytes(4) + b"\x01"), "non-zero bits"),
    (full_with_set_header(9, 3, bytes(36) + bytes(3)), "longer than its 9 items need"),
    (full_with_set_header(1, 1, b"\xff" * 4 + b"\x80"), "outside the range"),
    (VALID_FULL[:-1], "got"),
    (VALID_FULL + b"\x00", "got"),
    (replace(VALID_DELTA, 17, struct.pack(">Q", 4)), "not older than version 4"),
    (replace(VALID_DELTA, 25, struct.pack(">I", 2**32 - 1)), "more than the maximum"),
    (replace(VALID_DELTA, 25, struct.pack(">I", 4)), "got"),
    (VALID_DELTA + bytes(8), "got"),
    (replace(VALID_DELTA, 33, b"\xff" * 8), "added items are not strictly increasing"),
    (build_delta("FRA", 4, 3, [], [1, 2])[:-8] + struct.pack(">Q", 1), "removed items"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_documents_are_refused_precisely(data: bytes, message: str) -> None:
    with pytest.raises(IndexFormatError, match=message):
        parse_index(data)


def test_item_both_added_and_removed_is_refused() -> None:
    with pytest.raises(IndexFormatError, match="both added and removed"):
        build_delta("FRA", 2, 1, [5], [5])
    forged = replace(build_delta("FRA", 2, 1, [5], [6]), 41, struct.pack(">Q", 5))
    with pytest.raises(IndexFormatError, match="both added and removed"):
        parse_index(forged)


def test_maximum_item_count_is_configurable() -> None:
    data = build_full("FRA", 1, range(11))
    assert parse_index(data, max_items=11) == parse_index(data)
    with pytest.raises(IndexFormatError, match="11 items, more than the maximum 10"):
        parse_index(data, max_items=10)
    with pytest.raises(IndexFormatError, match="more than the maximum 10"):
        parse_index(build_delta("FRA", 2, 1, range(6), range(6, 11)), max_items=10)


@pytest.mark.parametrize("n", [10**12, 4_000_000])
def test_absurd_counts_are_refused_before_allocating(n: int) -> None:
    data = full_with_set_header(n, min((2 * n + 6) // 8, 2**32 - 1), bytes(64))
    tracemalloc.start()
    try:
        with pytest.raises(IndexFormatError):
            parse_index(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def parse_or_refuse(data: bytes) -> None:
    """Untrusted bytes either raise IndexFormatError or parse to a canonical document."""
    try:
        document = parse_index(data)
    except IndexFormatError:
        return
    assert_consistent(data, document)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    parse_or_refuse(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2]), st.integers(0, 2**64 - 1), st.binary(max_size=120))
def test_random_bodies_after_a_valid_prefix(kind: int, version: int, body: bytes) -> None:
    parse_or_refuse(DOC_HEADER.pack(MAGIC, 1, kind, b"NLD", version) + body)


VALID_DOCUMENTS = st.one_of(
    st.builds(lambda items: build_full("FRA", 9, items), st.lists(U64, max_size=30)),
    st.builds(
        lambda added, removed: build_delta("FRA", 9, 8, added, set(removed) - set(added)),
        st.lists(U64, max_size=8),
        st.lists(U64, max_size=8),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_DOCUMENTS, st.data())
def test_damaged_valid_documents_never_raise_anything_else(
    data: bytes, draw: st.DataObject
) -> None:
    how = draw.draw(st.sampled_from(["truncate", "extend", "flip"]))
    if how == "truncate":
        damaged = data[: draw.draw(st.integers(0, len(data) - 1))]
    elif how == "extend":
        damaged = data + draw.draw(st.binary(min_size=1, max_size=16))
    else:
        bit = draw.draw(st.integers(0, 8 * len(data) - 1))
        damaged = replace(data, bit // 8, bytes([data[bit // 8] ^ (0x80 >> bit % 8)]))
    parse_or_refuse(damaged)


# --- deltas: refusal rules and policy ----------------------------------------------------


def test_delta_refusals() -> None:
    items = random_items(50, seed=10)
    index = apply_delta(full_index("FRA", 5, items), delta_of(build_delta("FRA", 7, 5, [1], [])))
    with pytest.raises(IndexDeltaError, match="for DEU"):
        apply_delta(index, delta_of(build_delta("DEU", 8, 5, [2], [])))
    with pytest.raises(IndexDeltaError, match="fetch the full version 6"):
        apply_delta(index, delta_of(build_delta("FRA", 8, 6, [2], [])))
    for stale in (6, 7):
        with pytest.raises(IndexDeltaError, match="not newer"):
            apply_delta(index, delta_of(build_delta("FRA", stale, 5, [2], [])))
    stranger = delta_of(build_delta("FRA", 8, 5, [], [items[0], *random_items(1, seed=99)]))
    with pytest.raises(IndexDeltaError, match="which the base does not hold"):
        apply_delta(index, stranger)
    assert 9 in apply_delta(index, delta_of(build_delta("FRA", 8, 5, [9], items[:3])))


def test_update_index_takes_newer_fulls_and_refuses_the_rest() -> None:
    full = parse_index(build_full("FRA", 4, [1, 2]))
    delta = parse_index(build_delta("FRA", 5, 4, [3], [1]))
    with pytest.raises(IndexDeltaError, match="needs full version 4 first"):
        update_index(None, delta)
    index = update_index(update_index(None, full), delta)
    assert (index.version, index.base_version) == (5, 4)
    assert [item in index for item in (1, 2, 3)] == [False, True, True]
    with pytest.raises(IndexDeltaError, match="not newer"):
        update_index(index, parse_index(build_full("FRA", 5, [7])))
    with pytest.raises(IndexDeltaError, match="expected FRA"):
        update_index(index, parse_index(build_full("DEU", 9, [7])))
    assert update_index(index, parse_index(build_full("FRA", 6, [7]))).contains(7)


@pytest.mark.parametrize(
    ("base", "delta", "rebuild"),
    [
        (0, 0, False),
        (0, 1, True),
        (100, 10, False),
        (100, 11, True),
        (10**6, 10_000, False),
        (10**6, 10_001, True),
    ],
)
def test_should_rebuild(base: int, delta: int, rebuild: bool) -> None:
    assert should_rebuild(base, delta) is rebuild


# --- the owner's builder -----------------------------------------------------------------


def test_builder_publishes_full_then_deltas_then_full_again() -> None:
    pool = random_items(400, seed=11)
    builder = IndexBuilder("FRA", last_version=41, max_delta=50)
    for item in pool[:300]:
        builder.add(item)
    first = parse_index(builder.publish())
    assert isinstance(first, FullIndex)
    assert (first.version, builder.base_version, builder.pending) == (42, 42, False)
    builder.add(pool[300])
    builder.remove(pool[0])
    second = parse_index(builder.publish())
    assert isinstance(second, IndexDelta)
    assert (second.base_version, list(second.added), list(second.removed)) == (
        42,
        [pool[300]],
        [pool[0]],
    )
    for item in pool[301:400]:
        builder.add(item)
    assert isinstance(parse_index(builder.publish()), FullIndex)  # 100 changes > 50
    assert builder.version == builder.base_version == 44


def test_builder_counts_records_that_share_a_serial() -> None:
    builder = IndexBuilder("FRA", ratio=1.0)
    builder.add(5)
    builder.publish()
    builder.add(5)
    builder.remove(5)
    assert not builder.pending
    builder.remove(5)
    assert delta_of(builder.publish()).removed == SortedItems([5])
    with pytest.raises(KeyError):
        builder.remove(5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 39), st.booleans(), st.booleans()), max_size=80))
def test_a_peer_following_the_builder_never_misses_an_active_item(
    steps: list[tuple[int, bool, bool]],
) -> None:
    pool = random_items(40, seed=12)
    builder = IndexBuilder("FRA", max_delta=6)
    active: dict[int, int] = {}
    index = update_index(None, parse_index(builder.publish()))
    for slot, adding, publish in steps:
        item = pool[slot]
        if adding:
            builder.add(item)
            active[item] = active.get(item, 0) + 1
        elif active.get(item):
            builder.remove(item)
            active[item] -= 1
        if publish:
            index = update_index(index, parse_index(builder.publish()))
            assert {item for item in pool if item in index} == {i for i, c in active.items() if c}


def test_restored_builder_continues_with_the_same_delta() -> None:
    pool = random_items(30, seed=13)
    builder = IndexBuilder("FRA")
    for item in pool[:20]:
        builder.add(item)
    builder.publish()
    builder.add(pool[20])
    builder.remove(pool[0])
    builder.publish()
    restored = IndexBuilder.restore(
        "FRA",
        version=builder.version,
        base_version=1,
        base_items=builder.base_items,
        items=pool[1:21],
    )
    assert restored.publish() == builder.publish()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 59), max_size=60),
    st.lists(st.integers(0, 59), max_size=60),
    st.booleans(),
)
def test_bulk_paths_publish_what_one_item_at_a_time_does(
    base: list[int], now: list[int], restored: bool
) -> None:
    pool = random_items(60, seed=14)
    base_items, items = [pool[i] for i in base], [pool[i] for i in now]
    assert GolombCodedSet.from_sorted(sorted(set(items))) == GolombCodedSet.from_items(items)
    assert build_full("FRA", 3, SortedItems(items)) == build_full("FRA", 3, items)
    if restored and base_items:
        kwargs = {"version": 5, "base_version": 4, "base_items": SortedItems(base_items)}
        one_by_one = IndexBuilder.restore("FRA", items=items, max_delta=8, **kwargs)
        bulk = IndexBuilder.restore("FRA", items=SortedItems(items), max_delta=8, **kwargs)
    else:
        one_by_one, bulk = IndexBuilder("FRA"), IndexBuilder("FRA")
        for item in items:
            one_by_one.add(item)
        bulk.add_all(SortedItems(items))
    assert (len(bulk), bulk.pending) == (len(one_by_one), one_by_one.pending)
    assert bulk.publish() == one_by_one.publish()
    assert bulk.base_items == one_by_one.base_items
    bulk.add_all(SortedItems(items[:3]))  # a builder with items: one at a time after all
    for item in items[:3]:
        one_by_one.add(item)
    assert bulk.publish() == one_by_one.publish()


def test_format_test_vectors_from_the_adr() -> None:
    """The worked examples of docs/adr/0004-membership-index.md, byte for byte."""
    items = [0x0123456789ABCDEF, 0xFEDCBA9876543210, 0x8000000000000000]
    assert build_full("FRA", 1, items).hex() == (
        "49414d58" "01" "01" "465241" "0000000000000001"
        "01" "20" "0000000100000000" "0000000000000003" "00000001"
        "0369d036" "7c962fca" "7c962fc9" "50"
    )  # fmt: skip
    assert build_delta("FRA", 2, 1, [0x1111111111111111], [0x8000000000000000]).hex() == (
        "49414d58" "01" "02" "465241" "0000000000000002"
        "0000000000000001" "00000001" "00000001"
        "1111111111111111" "8000000000000000"
    )  # fmt: skip
