"""The node against docs/PROTOCOL.md's normative text (issue 7: what a second
implementation could not learn from it): the message table, field types and
sizes, record values, `ping`, descriptor validity, and docs/serials.md's table.

Real nodes over loopback (`fed` in conftest: FRA, DEU holding GLK-12345, ITA).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from node.clock import FakeClock
from node.errors import PeerRefusedError, ValidationError
from node.identity import rotate_signing_key
from node.lookup import oprf
from node.lookup.querier import RECORD_KEYS
from node.protocol.descriptor import check_current, verify_descriptor
from node.protocol.messages import Answer, Message, Request
from node.protocol.model import Service
from node.protocol.transport import DESCRIPTOR_PATH
from node.records.serials import LOOKALIKES, assigned_in_pinned_unicode, canonicalise_serial
from tests.conftest import MODULE_LOOP
from tests.harness import Federation

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FIELD = re.compile(r"`([a-z_]+)`: ([^,`]+(?:\([^)]*\))?)")


def message_table() -> dict[str, tuple[dict[str, str], str, dict[str, str]]]:
    """§2.3's table: request type → (its fields and types, answer type, answer's fields)."""
    text = (DOCS / "PROTOCOL.md").read_text(encoding="utf-8")
    block = text.split("<!-- message-table -->\n", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[2:]:
        request, body, answer, answer_body = (c.strip() for c in line.strip("|").split("|"))
        fields = {name: kind.strip() for name, kind in _FIELD.findall(body)}
        answer_fields = {name: kind.strip() for name, kind in _FIELD.findall(answer_body)}
        rows[request.strip("`")] = (fields, answer.strip("`"), answer_fields)
    return rows


def notation(info: msgspec.inspect.Type) -> str:
    """A field's type as PROTOCOL.md writes it: `bin 16`, `str (≤ 200)`, `int or nil`, `[bin]`."""
    if isinstance(info, msgspec.inspect.BytesType):
        exact = info.min_length is not None and info.min_length == info.max_length
        return f"bin {info.min_length}" if exact else "bin"
    if isinstance(info, msgspec.inspect.StrType):
        return f"str (≤ {info.max_length})" if info.max_length is not None else "str"
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        assert len(kinds) == 1 and len(info.types) == 2, info
        return f"{notation(kinds[0])} or nil"
    if isinstance(info, msgspec.inspect.ListType):
        return f"[{notation(info.item_type)}]"
    names = {
        msgspec.inspect.IntType: "int",
        msgspec.inspect.BoolType: "bool",
        msgspec.inspect.FloatType: "float",
    }
    return names.get(type(info)) or {msgspec.inspect.DictType: "map"}[type(info)]


def table_cell(cls: type[Message]) -> str:
    """A body's fields as the message table lists them (an answer's `ref` is implied)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    shown = [f for f in info.fields if not (issubclass(cls, Answer) and f.name == "ref")]
    if not shown:
        return "(only `ref`)" if issubclass(cls, Answer) else "(empty)"
    return ", ".join(f"`{f.name}`: {notation(f.type)}" for f in shown)


def table_row(request: type[Request[Any]]) -> str:
    """The message table's row of a registered request class and its answer."""
    answer = request.answer
    return (
        f"| `{request.wire_type}` | {table_cell(request)} "
        f"| `{answer.wire_type}` | {table_cell(answer)} |"
    )


def test_the_message_table_is_the_registry_s(seeded: Federation) -> None:
    """PROTOCOL.md §2.3's table, row for row, is what the node's registered classes say."""
    text = (DOCS / "PROTOCOL.md").read_text(encoding="utf-8")
    block = text.split("<!-- message-table -->\n", 1)[1].split("\n\n", 1)[0]
    documented = block.splitlines()[2:]
    registered = [table_row(r) for r in seeded["DEU"].f.dispatcher.requests]
    assert sorted(documented) == sorted(registered)


def _value(name: str, kind: str, fed: Federation) -> Any:
    """A valid value of the documented type: DEU's output of GLK-12345, a real blind."""
    serial = oprf.serial_input(canonicalise_serial("GLK-12345"))
    if name == "output":
        return oprf.evaluate_direct(fed["DEU"].k.oprf, serial, oprf.MODE_VOPRF)
    if name == "elements":
        return [oprf.blind(serial, oprf.MODE_VOPRF)[1]]
    if kind.startswith("bin 16"):
        return bytes(range(16)) if name == "lookup_id" else bytes(16)
    if kind.startswith("str"):
        return "Glock"
    assert kind == "int or nil", kind
    return None


async def test_every_message_of_the_table_is_handled_with_exactly_its_fields(
    fed: Federation,
) -> None:
    table = message_table()
    assert set(table) == set(fed["DEU"].f.dispatcher.types)
    peer = await fed["FRA"].n.peers.get("DEU")
    for request, (fields, _answer_type, answer_fields) in table.items():
        if request.startswith(("trace.", "stats.")):  # need a signed chain, a sealed share,
            continue  # a known round: tests/test_trace_hop.py, tests/test_stats_*.py
        body = {name: _value(name, kind, fed) for name, kind in fields.items()}
        if request == "hit.notice":
            body["lookup_id"] = bytes(range(1, 17))
        answer = await fed["FRA"].f.client.request(peer, request, body)
        assert set(answer) == set(answer_fields) | {"ref"}, request
        for name in fields:  # every documented field is required ...
            with pytest.raises(PeerRefusedError) as refused:
                await fed["FRA"].f.client.request(
                    peer, request, {k: v for k, v in body.items() if k != name}
                )
            assert refused.value.peer_code == "malformed", (request, name)
        with pytest.raises(PeerRefusedError) as refused:  # ... and no other is taken
            await fed["FRA"].f.client.request(peer, request, body | {"extra": 1})
        assert refused.value.peer_code == "malformed", request
    assert {answer for _f, answer, _a in table.values()} == {
        "index",
        "lookup.evaluated",
        "lookup.confirmed",
        "ack",
        "pong",
    }


async def test_ping_is_answered_pong_whatever_the_policy(fed: Federation) -> None:
    await fed["DEU"].n.peers.set_policy("FRA", set(), "test")
    peer = await fed["FRA"].n.peers.get("DEU")
    signed = await fed["FRA"].f.client.request_signed(peer, "ping", {})
    assert signed.body == {"ref": signed.body["ref"]} and len(signed.body["ref"]) == 16


@MODULE_LOOP
@pytest.mark.parametrize("count", [0, 10_001])
async def test_a_batch_outside_one_to_ten_thousand_is_malformed(
    seeded: Federation, count: int
) -> None:
    peer = await seeded["FRA"].n.peers.get("DEU")
    element = _value("elements", "", seeded)[0]
    with pytest.raises(PeerRefusedError) as refused:
        await seeded["FRA"].f.client.request(
            peer, "lookup.evaluate", {"elements": [element] * count}
        )
    assert refused.value.peer_code == "malformed"


async def test_text_limits_count_characters_not_bytes(fed: Federation) -> None:
    peer = await fed["FRA"].n.peers.get("DEU")
    output = _value("output", "", fed)
    body = {"lookup_id": bytes(16), "output": output, "make": "É" * 200, "case_reference": ""}
    answer = await fed["FRA"].f.client.request(peer, "lookup.confirm", body)  # 400 bytes
    assert answer["records"]
    long = body | {"lookup_id": b"\x01" * 16, "make": "a" * 201}
    with pytest.raises(PeerRefusedError) as refused:
        await fed["FRA"].f.client.request(peer, "lookup.confirm", long)
    assert refused.value.peer_code == "malformed"


async def test_confirmed_records_map_the_documented_keys_to_strings(fed: Federation) -> None:
    text = (DOCS / "PROTOCOL.md").read_text(encoding="utf-8")
    records_bullet = text.split("- `records`: at most 100 maps", 1)[1].split("\n- ", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", records_bullet)) >= RECORD_KEYS
    peer = await fed["FRA"].n.peers.get("DEU")
    body = {"lookup_id": bytes(16), "output": _value("output", "", fed)}
    answer = await fed["FRA"].f.client.request(
        peer, "lookup.confirm", body | {"make": "", "case_reference": ""}
    )
    [record] = answer["records"]
    assert set(record) == RECORD_KEYS and all(isinstance(v, str) for v in record.values())
    assert record["recovered_on"] == "" and record["id"].isdigit()
    assert answer["make_agrees"] is None  # no make given


async def test_a_rotation_is_not_followed_from_a_descriptor_outside_its_validity(
    tmp_path: Path,
) -> None:
    """§5.1: DEU's clock is a month behind, so the descriptor announcing its new key
    expired, by FRA's clock, before FRA fetched it: the new key is not followed."""
    fed = Federation(tmp_path)
    try:
        await fed.add("FRA")
        await fed.add("DEU")
        await fed.peer_all(Service.LOOKUPS)
        deu = fed["DEU"]
        old = (await fed["FRA"].n.peers.get("DEU")).signing_key
        deu.clock = FakeClock(fed.clock.now() - timedelta(days=31))
        rotate_signing_key(
            deu.n.config.signing_key_file, None, "DEU", deu.clock.now(), timedelta(days=1)
        )
        await fed.stop("DEU")
        await fed.start("DEU")
        with pytest.raises(ValidationError, match="is valid from"):
            await fed["FRA"].n.peers.follow_rotation("DEU")
        assert (await fed["FRA"].n.peers.get("DEU")).signing_key == old
        data = await fed["FRA"].n.transport.get(deu.url + DESCRIPTOR_PATH, 16 * 1024)
        descriptor = verify_descriptor(data)
        check_current(descriptor, "DEU", deu.url, deu.clock.now())
        with pytest.raises(ValidationError, match="says it is DEU, not ITA"):
            check_current(descriptor, "ITA", deu.url, deu.clock.now())
    finally:
        await fed.close()


def test_the_lookalike_table_of_serials_md_is_the_canonicaliser_s() -> None:
    text = (DOCS / "serials.md").read_text(encoding="utf-8")
    block = text.split("<!-- lookalike-table -->\n", 1)[1].split("\n\n", 1)[0]
    rows = [
        [c.strip().strip("`") for c in line.strip("|").split("|")]
        for line in block.splitlines()[2:]
    ]
    documented = {
        char: latin for char, point, _script, latin in rows if f"U+{ord(char):04X}" == point
    }
    assert documented == LOOKALIKES
    assert all(
        canonicalise_serial(char) == canonicalise_serial(latin)
        for char, latin in documented.items()
    )


def test_the_pinned_unicode_table_is_this_python_s_assigned_characters() -> None:
    """On Python 3.11 (Unicode 14.0.0) the shipped table is exactly what is assigned."""
    import unicodedata

    if unicodedata.unidata_version != "14.0.0":
        pytest.skip(f"this Python has Unicode {unicodedata.unidata_version}, not 14.0.0")
    for code in range(0x110000):
        char = chr(code)
        assert assigned_in_pinned_unicode(char) == (unicodedata.category(char) != "Cn"), hex(code)
    assert canonicalise_serial("AB\U0001f7d912") == "A812"  # unassigned in 14.0: removed
