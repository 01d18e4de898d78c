"""The MongoDB wire protocol, server side: framing, OP_MSG, legacy OP_QUERY/OP_REPLY.

Only what a modern driver sends is understood: ``OP_MSG`` (2013) with one
body section and any number of document sequences, and ``OP_QUERY`` (2004)
on ``<db>.$cmd`` for the legacy first ``hello``. Compression is never
offered in ``hello``, so ``OP_COMPRESSED`` is a protocol violation here.

Anything that cannot be framed or decoded raises :class:`WireProtocolError`;
the server answers that by closing the connection, as mongod does, because
after a bad length the byte stream cannot be resynchronised.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

import bson
from bson.errors import BSONError

__all__ = [
    "MAX_BSON_OBJECT_SIZE",
    "MAX_MESSAGE_SIZE",
    "OP_MSG",
    "OP_QUERY",
    "Request",
    "WireProtocolError",
    "encode_reply",
    "parse_request",
    "read_frame",
]

MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
#: mongod's ``maxMessageSizeBytes``.
MAX_MESSAGE_SIZE = 48_000_000

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

# OP_MSG flag bits. Bits 0-15 are "required": a receiver must reject unknown ones.
_CHECKSUM_PRESENT = 1
_MORE_TO_COME = 1 << 1
_EXHAUST_ALLOWED = 1 << 16
_KNOWN_REQUIRED = _CHECKSUM_PRESENT | _MORE_TO_COME

_HEADER = struct.Struct("<iiii")
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_OP_REPLY_PREFIX = struct.Struct("<iqii")
_QUERY_NUMBERS = struct.Struct("<ii")


class WireProtocolError(Exception):
    """A frame that cannot be understood; the connection must be closed."""


@dataclass(frozen=True)
class Request:
    """One decoded client message.

    ``body`` is the command document with document sequences merged in as
    lists (``documents``, ``updates``, ``deletes``). ``more_to_come`` means
    the client expects no reply (unacknowledged writes).
    """

    request_id: int
    op_code: int
    body: dict[str, Any]
    db: str | None
    more_to_come: bool = False
    exhaust_allowed: bool = False

    @property
    def command_name(self) -> str:
        """The first key of the command document ('' for an empty document)."""
        return next(iter(self.body), "")

    @property
    def legacy(self) -> bool:
        return self.op_code == OP_QUERY


async def read_frame(
    reader: asyncio.StreamReader, max_size: int = MAX_MESSAGE_SIZE
) -> tuple[int, int, bytes] | None:
    """Read one message; return ``(request_id, op_code, payload)`` or None at a clean EOF.

    The declared length is checked before the body is read, so an oversized
    or negative length costs no memory. Raises :class:`WireProtocolError`
    for a bad length and ``asyncio.IncompleteReadError`` for a frame cut short.
    """
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    length, request_id, _response_to, op_code = _HEADER.unpack(header)
    if length <= _HEADER.size or length > max_size:
        raise WireProtocolError(f"message length {length} outside 17..{max_size}")
    payload = await reader.readexactly(length - _HEADER.size)
    return request_id, op_code, payload


def parse_request(request_id: int, op_code: int, payload: bytes) -> Request:
    """Decode a frame's payload by op code; raises :class:`WireProtocolError`."""
    if op_code == OP_MSG:
        return _parse_op_msg(request_id, memoryview(payload))
    if op_code == OP_QUERY:
        return _parse_op_query(request_id, memoryview(payload))
    if op_code == OP_COMPRESSED:
        raise WireProtocolError("OP_COMPRESSED received but compression was never negotiated")
    raise WireProtocolError(f"unsupported op code {op_code}")


def _decode_doc(data: memoryview, offset: int) -> tuple[dict[str, Any], int]:
    """Decode the BSON document at ``offset``; return it and the offset after it."""
    if offset + 5 > len(data):
        raise WireProtocolError("truncated BSON document")
    (size,) = _INT32.unpack_from(data, offset)
    if size < 5 or offset + size > len(data):
        raise WireProtocolError(f"BSON document length {size} overruns the message")
    try:
        doc = bson.decode(data[offset : offset + size])
    except (BSONError, ValueError, TypeError, OverflowError) as exc:
        raise WireProtocolError(f"invalid BSON: {exc}") from exc
    return doc, offset + size


def _parse_op_msg(request_id: int, data: memoryview) -> Request:
    if len(data) < 5:
        raise WireProtocolError("OP_MSG too short")
    (flags,) = _UINT32.unpack_from(data, 0)
    if flags & 0xFFFF & ~_KNOWN_REQUIRED:
        raise WireProtocolError(f"unknown required OP_MSG flag bits 0x{flags:x}")
    end = len(data)
    if flags & _CHECKSUM_PRESENT:
        # CRC-32C is not verified (no stdlib implementation; drivers do not send it).
        end -= 4
        data = data[:end]
    body: dict[str, Any] | None = None
    sequences: dict[str, list[dict[str, Any]]] = {}
    offset = 4
    while offset < end:
        kind = data[offset]
        offset += 1
        if kind == 0:
            if body is not None:
                raise WireProtocolError("OP_MSG with more than one body section")
            body, offset = _decode_doc(data, offset)
        elif kind == 1:
            ident, docs, offset = _parse_sequence(data, offset)
            if ident in sequences:
                raise WireProtocolError(f"duplicate document sequence {ident!r}")
            sequences[ident] = docs
        else:
            raise WireProtocolError(f"unknown OP_MSG section kind {kind}")
    if body is None:
        raise WireProtocolError("OP_MSG without a body section")
    for ident, docs in sequences.items():
        if ident in body:
            raise WireProtocolError(f"document sequence {ident!r} duplicates a body field")
        body[ident] = docs
    db = body.get("$db")
    return Request(
        request_id,
        OP_MSG,
        body,
        db if isinstance(db, str) else None,
        more_to_come=bool(flags & _MORE_TO_COME),
        exhaust_allowed=bool(flags & _EXHAUST_ALLOWED),
    )


def _parse_sequence(data: memoryview, offset: int) -> tuple[str, list[dict[str, Any]], int]:
    if offset + 4 > len(data):
        raise WireProtocolError("truncated document sequence")
    (size,) = _INT32.unpack_from(data, offset)
    stop = offset + size
    if size < 5 or stop > len(data):
        raise WireProtocolError(f"document sequence length {size} overruns the message")
    nul = bytes(data[offset + 4 : stop]).find(b"\x00")
    if nul < 0:
        raise WireProtocolError("unterminated document sequence identifier")
    try:
        ident = bytes(data[offset + 4 : offset + 4 + nul]).decode()
    except UnicodeDecodeError as exc:
        raise WireProtocolError("document sequence identifier is not UTF-8") from exc
    pos = offset + 4 + nul + 1
    docs = []
    while pos < stop:
        doc, pos = _decode_doc(data[:stop], pos)
        docs.append(doc)
    return ident, docs, stop


def _parse_op_query(request_id: int, data: memoryview) -> Request:
    if len(data) < 4:
        raise WireProtocolError("OP_QUERY too short")
    nul = bytes(data[4:]).find(b"\x00")
    if nul < 0:
        raise WireProtocolError("unterminated OP_QUERY collection name")
    try:
        full_name = bytes(data[4 : 4 + nul]).decode()
    except UnicodeDecodeError as exc:
        raise WireProtocolError("OP_QUERY collection name is not UTF-8") from exc
    offset = 4 + nul + 1 + _QUERY_NUMBERS.size
    query, _ = _decode_doc(data, offset)
    # A legacy command may be wrapped as {$query: {...}, $readPreference: ...}.
    if isinstance(query.get("$query"), dict):
        query = query["$query"]
    db, sep, coll = full_name.partition(".")
    # A non-command OP_QUERY gets a db of None; the dispatcher refuses it.
    return Request(request_id, OP_QUERY, query, db if sep and coll == "$cmd" else None)


def encode_reply(
    request: Request, doc: dict[str, Any], response_id: int, *, more_to_come: bool = False
) -> bytes:
    """Encode ``doc`` as the reply to ``request`` (OP_MSG, or OP_REPLY for OP_QUERY).

    ``more_to_come`` sets the OP_MSG flag that tells the client more replies
    follow without a request (the awaitable ``hello`` stream).
    """
    encoded = bson.encode(doc)
    if request.op_code == OP_QUERY:
        body = _OP_REPLY_PREFIX.pack(0, 0, 0, 1) + encoded
        op_code = OP_REPLY
    else:
        body = _UINT32.pack(_MORE_TO_COME if more_to_come else 0) + b"\x00" + encoded
        op_code = OP_MSG
    header = _HEADER.pack(_HEADER.size + len(body), response_id, request.request_id, op_code)
    return header + body
