"""Typed message bodies: one frozen class per message type, one strict decoder (pure).

Every body that travels in an envelope is a `Message`: a frozen msgspec
`Struct` that refuses unknown keys, whose fields carry the protocol's
constraints (`Bin16` is a byte string of exactly 16 bytes, `Text` a string of
at most 200 characters, no string holds U+0000). The sender builds the object
and `encode`s it; the receiver `decode`s the body bytes into the same class,
so the shape of a message is written once, here or in its service's
`messages.py`, and docs/PROTOCOL.md's message table is checked against these
classes (`tests/test_protocol_text.py`).

A `Request[A]` names its wire type and, through its type argument, its answer
class `A`: `PeerClient.ask(peer, Ping())` returns a `Pong`. Every answer
carries `ref`, the message id of the request it answers; the dispatcher sets
it, handlers never do. A request with an effect says by which id it takes
effect once (`once_by`, PROTOCOL.md §1.6) and whether a repeat is answered
again or refused (`refuse_repeat`).

`decode` is the one place where a body is refused: missing, unknown and
mistyped keys, over-long strings, NUL, malformed msgpack — all become
`MalformedEnvelopeError` (`malformed`) naming the field.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Generic, TypeVar, cast, get_args

import msgspec

from node.errors import MalformedEnvelopeError, ProtocolError

#: Refuses U+0000 in a string (PROTOCOL.md: no string may hold it; PostgreSQL cannot store it).
NUL_FREE = "^[^\\x00]*$"
#: The longest make, case reference or other free text in a body, in characters.
MAX_TEXT = 200
#: `once_by` value: the request takes effect once per envelope message id.
BY_MESSAGE_ID = "envelope.message_id"

Bin8 = Annotated[bytes, msgspec.Meta(min_length=8, max_length=8)]
Bin16 = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
Bin32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Bin64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
#: Any string of the protocol: no NUL.
Str = Annotated[str, msgspec.Meta(pattern=NUL_FREE)]
#: `str (≤ 200)`: free text typed by an officer.
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=NUL_FREE)]


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A message body: a msgpack map with exactly these fields."""

    #: The envelope's `type` for this body ("lookup.confirm").
    wire_type: ClassVar[str]


class Answer(Message, frozen=True, kw_only=True):
    """The body of an answer: its fields and `ref`, the request's message id.

    `ref` is unset until the dispatcher answers a request with it; a decoded
    answer without one is never for the request it was read for.
    """

    ref: Bin16 | msgspec.UnsetType = msgspec.UNSET


A = TypeVar("A", bound=Answer)
M = TypeVar("M", bound=Message)


class Request(Message, Generic[A], frozen=True, kw_only=True):
    """The body of a request whose answer is an `A` (`class Ping(Request[Pong])`)."""

    #: The answer's class, taken from the type argument.
    answer: ClassVar[type[Answer]]
    #: None: read-only, no claim. A field name: the id in the body by which it takes
    #: effect once. `BY_MESSAGE_ID`: once per envelope.
    once_by: ClassVar[str | None] = None
    #: None: a repeat gets the first answer again. An error class: a repeat is refused with it.
    refuse_repeat: ClassVar[type[ProtocolError] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], Answer):
                cls.answer = args[0]


class AnyAnswer(Message, frozen=True, forbid_unknown_fields=False):
    """Any answer, read for its `ref` alone (a receipt; an answer that fails its own class)."""

    wire_type = "answer"
    ref: Bin16


class Ack(Answer, frozen=True, kw_only=True):
    """`ack`: the request was received (and took effect, for one that has an effect)."""

    wire_type = "ack"


class Pong(Answer, frozen=True, kw_only=True):
    """`pong`: the peer is there and trusts our key."""

    wire_type = "pong"


class Hello(Request[Ack], frozen=True, kw_only=True):
    """`hello`: a node that starts greets its peers, which retry what waits for it."""

    wire_type = "hello"


class Ping(Request[Pong], frozen=True, kw_only=True):
    """`ping`: is the peer there, and does it trust our key? (PROTOCOL.md §1.8)."""

    wire_type = "ping"


class ErrorAnswer(Message, frozen=True, kw_only=True):
    """`error`: a signed refusal (PROTOCOL.md §1.7); `ref` is nil when the request was unreadable.

    The field order is the wire order of the error-body test vector.
    """

    wire_type = "error"
    code: Str
    message: Str
    ref: Bin16 | None


@functools.cache
def _decoder(cls: type[M]) -> msgspec.msgpack.Decoder[M]:
    return msgspec.msgpack.Decoder(cls)


_ENCODER = msgspec.msgpack.Encoder()


def _reason(error: msgspec.DecodeError) -> str:
    """msgspec's words, with the NUL pattern said plainly."""
    reason = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return f"not the expected msgpack ({reason})"
    if "matching regex" in reason:
        where = reason.rsplit(" - at ", 1)[1] if " - at " in reason else "$"
        return f"a string holds the NUL character (U+0000) - at {where}"
    return reason


def decode(cls: type[M], data: bytes) -> M:
    """The `cls` body encoded in `data`, checked strictly: the one decoder of every body.

    Raises:
        MalformedEnvelopeError: naming the message type and the field (`$.make`) that is
            missing, unknown, mistyped, too long or holds NUL, or saying the bytes are not
            a msgpack map.
    """
    try:
        return _decoder(cls).decode(data)
    except msgspec.DecodeError as e:
        raise MalformedEnvelopeError(f"{cls.wire_type} body: {_reason(e)}") from e


def encode(message: Message) -> bytes:
    """The msgpack encoding of a body (an unset `ref` is left out)."""
    return _ENCODER.encode(message)


def answer_class(request: Request[A]) -> type[A]:
    """The class of the answer to `request`, typed as its type argument says."""
    return cast("type[A]", type(request).answer)


def with_ref(answer: A, ref: bytes) -> A:
    """`answer` naming the request `ref` (the request's message id)."""
    return msgspec.structs.replace(answer, ref=ref)


def _strings(info: msgspec.inspect.Type, where: str) -> list[str]:
    """Where a string type without the NUL refusal hides in `info`."""
    if isinstance(info, msgspec.inspect.StrType):
        return [] if info.pattern == NUL_FREE else [where]
    if isinstance(info, msgspec.inspect.ListType):
        return _strings(info.item_type, f"{where}[]")
    if isinstance(info, msgspec.inspect.DictType):
        return _strings(info.key_type, f"{where}{{key}}") + _strings(info.value_type, where)
    if isinstance(info, msgspec.inspect.UnionType):
        return [w for member in info.types for w in _strings(member, where)]
    if isinstance(info, msgspec.inspect.StructType):
        return [w for f in info.fields for w in _strings(f.type, f"{where}.{f.name}")]
    return []


def check_strings(cls: type[Message]) -> None:
    """Refuse a body class with a string field that would take NUL (use `Str` or `Text`).

    Raises:
        TypeError: naming the fields.
    """
    loose = _strings(msgspec.inspect.type_info(cls), "$")
    if loose:
        raise TypeError(f"{cls.wire_type}: strings that would take NUL at {', '.join(loose)}")


def fields(cls: type[Message]) -> tuple[str, ...]:
    """The wire keys of a body class, in order (`ref` included for answers)."""
    return cls.__struct_fields__
