"""The typed message registry: every registered body is refused in one place, naming the field.

For every request type a real node registers (`fed`: FRA, DEU, ITA over
loopback), a body with an unknown key, a missing key, a wrong type, an
over-long string or a NUL is answered `malformed`, and the message names the
field; and no map, however random, makes the one decoder fail otherwise.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.app import Node  # noqa: F401 - registers every service's message classes
from node.errors import MalformedEnvelopeError, PeerRefusedError
from node.protocol.messages import Message, check_strings, decode
from node.protocol.model import Service
from tests.harness import Federation

Info = msgspec.inspect.Type


def _valid(info: Info) -> Any:
    """A value of the field's type (not necessarily one the handler accepts)."""
    if isinstance(info, msgspec.inspect.BytesType):
        return bytes(info.min_length or 1)
    if isinstance(info, msgspec.inspect.StrType):
        return "a"
    if isinstance(info, msgspec.inspect.UnionType):
        return _valid(info.types[0])
    if isinstance(info, msgspec.inspect.ListType):
        return [_valid(info.item_type)] * (info.min_length or 1)
    if isinstance(info, msgspec.inspect.IntType):
        return max(1, info.ge or 1, (info.gt or 0) + 1)
    return {msgspec.inspect.BoolType: True, msgspec.inspect.FloatType: 1.0}.get(type(info), {})


def _fields(cls: type[Message]) -> list[msgspec.inspect.Field]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return list(info.fields)


def _bad_bodies(cls: type[Message]) -> list[tuple[dict[str, Any], str]]:
    """(body, what the refusal must name): one fault each in an otherwise typed body."""
    valid = {f.name: _valid(f.type) for f in _fields(cls)}
    cases = [(valid | {"extra": 1}, "unknown field `extra`")]
    for field in _fields(cls):
        name, kind = field.name, field.type
        at = f"at `$.{name}`"
        cases.append(({k: v for k, v in valid.items() if k != name}, f"field `{name}`"))
        if isinstance(kind, msgspec.inspect.FloatType):
            cases.append((valid | {name: "1.5"}, f"got `str` - {at}"))
        else:
            cases.append((valid | {name: 1.5}, f"got `float` - {at}"))
        strings = [kind, *getattr(kind, "types", ())]
        for info in strings:
            if isinstance(info, msgspec.inspect.StrType):
                cases.append((valid | {name: "a\x00b"}, f"NUL character (U+0000) - {at}"))
                if info.max_length is not None:
                    cases.append((valid | {name: "é" * (info.max_length + 1)}, at))
            if isinstance(info, msgspec.inspect.BytesType) and info.max_length is not None:
                cases.append((valid | {name: bytes(info.max_length + 1)}, at))
    return cases


async def test_every_registered_type_refuses_a_bad_body_with_malformed_naming_the_field(
    fed: Federation,
) -> None:
    peer = await fed["FRA"].n.peers.get("DEU")
    # Policy is checked before the body: let FRA send everything to DEU.
    await fed["DEU"].n.peers.set_policy("FRA", set(Service), "test")
    requests = fed["DEU"].f.dispatcher.requests
    assert {r.wire_type for r in requests} >= {"hello", "ping", "hit.notice", "trace.request"}
    for request in requests:
        for body, named in _bad_bodies(request):
            with pytest.raises(PeerRefusedError) as refused:
                await fed["FRA"].f.client.request(peer, request.wire_type, body)
            assert refused.value.peer_code == "malformed", (request.wire_type, body)
            assert f"{request.wire_type} body:" in str(refused.value)
            assert named in str(refused.value), (request.wire_type, str(refused.value))


def _classes() -> list[type[Message]]:
    """Every body class defined in the node (services' included)."""
    found: list[type[Message]] = []
    pending: list[type[Message]] = [Message]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if "wire_type" in vars(sub) and sub.__module__.startswith("node."):
                found.append(sub)
    return found


def test_every_string_of_every_message_refuses_nul() -> None:
    assert len(_classes()) >= 12
    for cls in _classes():
        check_strings(cls)


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=300)
    | st.binary(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_classes()), st.data())
def test_random_maps_are_decoded_or_malformed(cls: type[Message], data: st.DataObject) -> None:
    names = [f.name for f in _fields(cls)]
    keys = st.sampled_from(names) | st.text(max_size=8) if names else st.text(max_size=8)
    body = data.draw(st.dictionaries(keys, _VALUES, max_size=len(names) + 2))
    try:
        decoded = decode(cls, msgpack.packb(body, use_bin_type=True))
    except MalformedEnvelopeError:
        return
    assert isinstance(decoded, cls)
    assert set(body) <= set(names) or not cls.__struct_config__.forbid_unknown_fields


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_classes()), st.binary(max_size=300))
def test_random_bytes_are_decoded_or_malformed(cls: type[Message], data: bytes) -> None:
    with contextlib.suppress(MalformedEnvelopeError):
        assert isinstance(decode(cls, data), cls)
