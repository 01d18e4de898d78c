"""The limits a mongod puts on its clients, so one client cannot stall or exhaust the stand-in.

* ``max_message_size``: mongod's ``maxMessageSizeBytes`` (48,000,000), checked
  on the declared length before the body is read;
* ``max_unauthenticated_message_size``: a connection that has not
  authenticated may send only small frames (a ``hello`` or a SASL step is
  well under 16 KiB), so it cannot make the server buffer 48 MB;
* the unauthenticated command set is checked on the *raw* frame: the command
  name is read from the first key of the body section without decoding the
  body or any document sequence, and anything outside the set is answered
  ``Unauthorized`` (13) at once: a large ``insert`` from an unauthenticated
  client costs no BSON decoding;
* ``unauthenticated_idle_timeout``: an unauthenticated connection that sends
  no complete frame for that long (idle, half-open, or a byte a minute) is
  closed; PyMongo's monitor connections (unauthenticated) send a ``hello``
  every ``heartbeatFrequencyMS`` (10 s), well inside the default 60 s;
* ``max_connections``: beyond it a new connection is closed at once, as
  mongod does past ``net.maxIncomingConnections`` (Atlas M10: 1,500).

Everything is configurable through :class:`MongoLimits` (``MongoStandIn(...,
limits=MongoLimits(...))``); :class:`LimitStats` counts what was refused.
"""

from __future__ import annotations

import asyncio
import math
import struct
from dataclasses import dataclass

from pool.errors import ConfigurationError
from pool.standins.mongo.commands import _ALIASES, _UNAUTHENTICATED_OK
from pool.standins.mongo.errors import error_reply
from pool.standins.mongo.wire import MAX_MESSAGE_SIZE, OP_MSG, OP_QUERY, Request, read_frame

__all__ = [
    "LimitStats",
    "MongoLimits",
    "peek_command_name",
    "read_limited_frame",
    "refuse_unauthenticated",
]

_INT32 = struct.Struct("<i")


@dataclass(frozen=True)
class MongoLimits:
    """Per-server limits; each is checked at construction, naming the bad value."""

    max_message_size: int = MAX_MESSAGE_SIZE
    max_unauthenticated_message_size: int = 64 * 1024
    unauthenticated_idle_timeout: float = 60.0
    max_connections: int = 1500

    def __post_init__(self) -> None:
        if not 1024 <= self.max_message_size <= MAX_MESSAGE_SIZE:
            raise ConfigurationError(
                f"max_message_size must be 1024..{MAX_MESSAGE_SIZE}; got {self.max_message_size}"
            )
        if not 1024 <= self.max_unauthenticated_message_size <= self.max_message_size:
            raise ConfigurationError(
                "max_unauthenticated_message_size must be 1024..max_message_size "
                f"({self.max_message_size}); got {self.max_unauthenticated_message_size}"
            )
        idle = self.unauthenticated_idle_timeout
        if not (idle > 0 and not math.isnan(idle)):
            raise ConfigurationError(f"unauthenticated_idle_timeout must be > 0 s; got {idle}")
        if self.max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1; got {self.max_connections}")


@dataclass
class LimitStats:
    """What the limits refused, by kind."""

    connections_refused: int = 0
    idle_closed: int = 0
    unauthenticated_refused: int = 0


def _cstring_end(data: bytes, start: int) -> int:
    end = data.find(b"\x00", start)
    return end if end >= 0 else len(data)


def _first_key(data: bytes, offset: int) -> str | None:
    """The first element name of the BSON document at ``offset``, undecoded otherwise.

    None unless the document's frame is sane (its size fits, it ends with NUL,
    the name ends inside it): a malformed frame goes on to the parser, which
    closes the connection as mongod does.
    """
    if offset + 5 > len(data):
        return None
    (size,) = _INT32.unpack_from(data, offset)
    end = offset + size
    if size < 6 or end > len(data) or data[end - 1] != 0:
        return None
    start = offset + 5  # int32 size, element type byte, then the cstring name
    name_end = data.find(b"\x00", start, end - 1)
    if name_end < 0:
        return None
    return data[start:name_end].decode("utf-8", "replace")


def peek_command_name(op_code: int, payload: bytes) -> str | None:
    """The command a frame carries, read without decoding its body (None if unreadable)."""
    if op_code == OP_QUERY:
        offset = _cstring_end(payload, 4) + 1 + 8  # flags, collection, skip, return
        return _first_key(payload, offset)
    if op_code != OP_MSG or len(payload) < 5:
        return None
    offset = 4  # flag bits
    while offset < len(payload):
        kind = payload[offset]
        if kind == 0:
            return _first_key(payload, offset + 1)
        if kind != 1 or offset + 5 > len(payload):
            return None
        (size,) = _INT32.unpack_from(payload, offset + 1)
        if size < 5:
            return None
        offset += 1 + size  # skip a document sequence without reading it
    return None


async def read_limited_frame(
    reader: asyncio.StreamReader, limits: MongoLimits, *, authenticated: bool
) -> tuple[int, int, bytes] | None:
    """:func:`~.wire.read_frame` under the limits for this connection's state.

    Raises ``TimeoutError`` when an unauthenticated connection sends no whole
    frame within ``unauthenticated_idle_timeout``.
    """
    if authenticated:
        return await read_frame(reader, limits.max_message_size)
    async with asyncio.timeout(limits.unauthenticated_idle_timeout):
        return await read_frame(reader, limits.max_unauthenticated_message_size)


def refuse_unauthenticated(
    request_id: int, op_code: int, payload: bytes
) -> tuple[Request, dict[str, object]] | None:
    """For an unauthenticated connection: the Unauthorized reply to send, or None to proceed.

    Decided on the raw frame (:func:`peek_command_name`), so a refused
    command's body and document sequences are never decoded.
    """
    if op_code != OP_MSG:
        return None  # legacy OP_QUERY (small, capped): the dispatcher answers it (352 or hello)
    name = peek_command_name(op_code, payload)
    if name is None or _ALIASES.get(name, name) in _UNAUTHENTICATED_OK:
        return None  # allowed, or malformed: the parser decides (and closes on garbage)
    stub = Request(request_id, op_code, {}, None)
    return stub, error_reply(13, f"command {name} requires authentication")
